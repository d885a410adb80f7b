package bench

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"sort"
	"strconv"
	"strings"
)

// WriteHTML writes the result as one self-contained page (inline CSS and SVG, no scripts, nothing
// fetched): the propagation latencies per change and size (every trial as a dot, p50 and p99 marked, the
// Kubernetes and Istio legs apart), the cost of each component against clusters with the fitted growth,
// the bring-up steps, and every figure in a table.
func WriteHTML(w io.Writer, r *Result) error {
	d := htmlData{R: r}
	d.Propagation = propagationCharts(r)
	d.Scale = scaleCharts(r)
	d.Steps = stepCharts(r)
	return page.Execute(w, d)
}

type htmlData struct {
	R           *Result
	Propagation []chart
	Scale       []chart
	Steps       []chart
}

type chart struct {
	Title, Caption string
	SVG            template.HTML
}

var page = template.Must(template.New("bench").Funcs(template.FuncMap{"num": num}).Parse(`<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>mclab bench: {{.R.Scenario}}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1b1f24;background:#fff}
h1{font-size:22px;margin:0 0 4px} h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d0d7de}
.meta{color:#57606a} .charts{display:flex;flex-wrap:wrap;gap:16px}
figure{margin:0;border:1px solid #d0d7de;border-radius:6px;padding:8px;background:#f6f8fa}
figcaption{font-size:12px;color:#57606a;max-width:520px}
table{border-collapse:collapse;font-size:12px} td,th{border:1px solid #d0d7de;padding:3px 6px;text-align:right}
td:first-child,th:first-child{text-align:left} .note{color:#9a6700}
</style></head><body>
<h1>mclab bench: {{.R.Scenario}}</h1>
<p class="meta">{{.R.Started.Format "2006-01-02 15:04:05 UTC"}}, took {{.R.Took}} · {{.R.Machine.CPUs}} CPUs, {{.R.Machine.MemoryGiB}} GiB, {{.R.Machine.OS}}, {{.R.Machine.Go}}{{range $k, $v := .R.Lab}} · {{$k}} {{$v}}{{end}}</p>
{{range .R.Notes}}<p class="note">note: {{.}}</p>{{end}}
{{if .Propagation}}<h2>Propagation</h2><div class="charts">{{range .Propagation}}<figure>{{.SVG}}<figcaption><b>{{.Title}}</b> {{.Caption}}</figcaption></figure>{{end}}</div>{{end}}
{{if .Scale}}<h2>Cost as the mesh grows</h2><div class="charts">{{range .Scale}}<figure>{{.SVG}}<figcaption><b>{{.Title}}</b> {{.Caption}}</figcaption></figure>{{end}}</div>
<ul>{{range .R.Fits}}<li>{{.Says}}</li>{{end}}</ul>{{end}}
{{if .Steps}}<h2>Bring-up</h2><div class="charts">{{range .Steps}}<figure>{{.SVG}}<figcaption><b>{{.Title}}</b> {{.Caption}}</figcaption></figure>{{end}}</div>{{end}}
<h2>Figures</h2>
<table><tr><th>figure</th><th>unit</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>n</th></tr>
{{range .R.Figures}}<tr title="{{.Help}}"><td>{{.Name}}</td><td>{{.Unit}}</td><td>{{num .Summary.P50}}</td><td>{{num .Summary.P90}}</td><td>{{num .Summary.P99}}</td><td>{{num .Summary.Max}}</td><td>{{.Summary.Count}}</td></tr>
{{end}}</table>
</body></html>
`))

// plot geometry
const (
	pw, ph           = 520, 260
	left, right      = 56, 12
	top, bottomSpace = 16, 44
)

type svg struct{ b strings.Builder }

func (s *svg) f(format string, a ...any) { fmt.Fprintf(&s.b, format, a...) }

func esc(s string) string { return template.HTMLEscapeString(s) }

// axes draws a y axis from 0 to ymax with ticks, x categories, and returns the y mapping.
func (s *svg) axes(ymax float64, unit string, cats []string) (func(float64) float64, func(int) float64) {
	s.f(`<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img">`, pw, ph, pw, ph)
	s.f(`<rect x="0" y="0" width="%d" height="%d" fill="#fff"/>`, pw, ph)
	if ymax <= 0 || math.IsNaN(ymax) {
		ymax = 1
	}
	ymax = niceCeil(ymax)
	y := func(v float64) float64 { return float64(top) + (1-v/ymax)*float64(ph-top-bottomSpace) }
	for i := 0; i <= 4; i++ {
		v := ymax * float64(i) / 4
		s.f(`<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#d0d7de"/>`, left, pw-right, y(v), y(v))
		s.f(`<text x="%d" y="%.1f" font-size="11" text-anchor="end" fill="#57606a">%s</text>`, left-4, y(v)+4, num(v))
	}
	s.f(`<text x="12" y="%d" font-size="11" fill="#57606a" transform="rotate(-90 12 %d)" text-anchor="middle">%s</text>`, ph/2, ph/2, esc(unit))
	step := float64(pw-left-right) / float64(max(len(cats), 1))
	x := func(i int) float64 { return float64(left) + step*(float64(i)+0.5) }
	for i, c := range cats {
		s.f(`<text x="%.1f" y="%d" font-size="11" text-anchor="middle" fill="#1b1f24">%s</text>`, x(i), ph-bottomSpace+16, esc(c))
	}
	return y, x
}

func (s *svg) end() template.HTML {
	s.f(`</svg>`)
	return template.HTML(s.b.String())
}

func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*p >= v {
			return m * p
		}
	}
	return 10 * p
}

// propagationCharts: one chart per change and client: per endpoint count, every trial's total as a grey
// dot and its Istio leg as a blue dot, p50 and p99 of the total as ticks.
func propagationCharts(r *Result) []chart {
	type series struct {
		sizes []int
		total map[int]Figure
		istio map[int]Figure
	}
	groups := map[string]*series{}
	var order []string
	for _, f := range r.Figures {
		parts := strings.Split(f.Name, "/")
		// propagation/<change>/endpoints=N/<view>/<src>-><client>/<leg>
		if len(parts) != 6 || parts[0] != "propagation" {
			continue
		}
		n, err := strconv.Atoi(strings.TrimPrefix(parts[2], "endpoints="))
		if err != nil {
			continue
		}
		key := parts[1] + " · " + parts[3] + " · " + parts[4]
		g := groups[key]
		if g == nil {
			g = &series{total: map[int]Figure{}, istio: map[int]Figure{}}
			groups[key] = g
			order = append(order, key)
		}
		switch parts[5] {
		case "total":
			g.total[n] = f
			g.sizes = append(g.sizes, n)
		case "istio":
			g.istio[n] = f
		}
	}
	var out []chart
	for _, key := range order {
		g := groups[key]
		sort.Ints(g.sizes)
		ymax := 0.0
		var cats []string
		for _, n := range g.sizes {
			ymax = max(ymax, g.total[n].Summary.Max)
			cats = append(cats, fmt.Sprintf("%d endpoints", n))
		}
		var s svg
		y, x := s.axes(ymax, "seconds", cats)
		for i, n := range g.sizes {
			cx := x(i)
			for j, v := range g.total[n].Samples {
				s.f(`<circle cx="%.1f" cy="%.1f" r="3" fill="#8c959f" fill-opacity="0.7"><title>trial %d total %.3fs</title></circle>`, cx-10+float64(j%5)*2, y(v), j+1, v)
			}
			for j, v := range g.istio[n].Samples {
				s.f(`<circle cx="%.1f" cy="%.1f" r="3" fill="#0969da" fill-opacity="0.8"><title>trial %d istio leg %.3fs</title></circle>`, cx+6+float64(j%5)*2, y(v), j+1, v)
			}
			sm := g.total[n].Summary
			s.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#1b1f24" stroke-width="2"><title>p50 %.3fs</title></line>`, cx-18, cx+22, y(sm.P50), y(sm.P50), sm.P50)
			s.f(`<line x1="%.1f" x2="%.1f" y1="%.1f" y2="%.1f" stroke="#cf222e" stroke-width="2" stroke-dasharray="4 2"><title>p99 %.3fs</title></line>`, cx-18, cx+22, y(sm.P99), y(sm.P99), sm.P99)
		}
		s.f(`<text x="%d" y="%d" font-size="11" fill="#57606a">● total  </text><text x="%d" y="%d" font-size="11" fill="#0969da">● istio leg</text><text x="%d" y="%d" font-size="11" fill="#1b1f24">— p50</text><text x="%d" y="%d" font-size="11" fill="#cf222e">-- p99</text>`,
			left, ph-8, left+70, ph-8, left+150, ph-8, left+200, ph-8)
		out = append(out, chart{Title: key, Caption: "each dot a trial; total from the write's acknowledgement to the client's EDS, the Istio leg from the source's EndpointSlices to the client's EDS", SVG: s.end()})
	}
	return out
}

// scaleCharts: memory per cluster of each component against clusters, one line each, with the fit.
func scaleCharts(r *Result) []chart {
	var out []chart
	byY := map[string][]FitResult{}
	var ys []string
	for _, f := range r.Fits {
		if f.X != "clusters" {
			continue
		}
		if _, ok := byY[f.Y]; !ok {
			ys = append(ys, f.Y)
		}
		byY[f.Y] = append(byY[f.Y], f)
	}
	colors := []string{"#0969da", "#cf222e", "#1a7f37", "#9a6700", "#8250df"}
	for _, yname := range ys {
		fits := byY[yname]
		var xsAll []float64
		ymax := 0.0
		for _, f := range fits {
			xsAll = append(xsAll, f.XS...)
			for _, v := range f.YS {
				ymax = max(ymax, v)
			}
		}
		xsAll = uniq(xsAll)
		var cats []string
		for _, x := range xsAll {
			cats = append(cats, fmt.Sprintf("%g clusters", x))
		}
		var s svg
		y, x := s.axes(ymax, unitOf(yname), cats)
		idx := func(v float64) int {
			for i, x := range xsAll {
				if x == v {
					return i
				}
			}
			return 0
		}
		var caption []string
		for k, f := range fits {
			c := colors[k%len(colors)]
			var pts []string
			for i := range f.XS {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", x(idx(f.XS[i])), y(f.YS[i])))
				s.f(`<circle cx="%.1f" cy="%.1f" r="3.5" fill="%s"><title>%g clusters: %.1f</title></circle>`, x(idx(f.XS[i])), y(f.YS[i]), c, f.XS[i], f.YS[i])
			}
			s.f(`<polyline points="%s" fill="none" stroke="%s" stroke-width="2"/>`, strings.Join(pts, " "), c)
			caption = append(caption, fmt.Sprintf("%s: exponent %.2f", strings.TrimPrefix(f.Name, yname+" vs clusters "), f.Fit.Exponent))
		}
		out = append(out, chart{Title: yname, Caption: strings.Join(caption, "; "), SVG: s.end()})
	}
	return out
}

func unitOf(y string) string {
	switch {
	case strings.HasSuffix(y, "-rss"):
		return "MiB"
	case strings.HasSuffix(y, "-cpu"):
		return "CPU seconds"
	}
	return "count"
}

func uniq(v []float64) []float64 {
	sort.Float64s(v)
	var out []float64
	for i, x := range v {
		if i == 0 || x != v[i-1] {
			out = append(out, x)
		}
	}
	return out
}

// stepCharts: each bring-up's steps as horizontal bars.
func stepCharts(r *Result) []chart {
	var out []chart
	for _, st := range r.Steps {
		if len(st.Steps) == 0 {
			continue
		}
		total, longest := 0.0, 0.0
		for _, s := range st.Steps {
			total += s.Seconds
			longest = max(longest, s.Seconds)
		}
		h := 20*len(st.Steps) + 24
		var s svg
		s.f(`<svg width="%d" height="%d" viewBox="0 0 %d %d" role="img"><rect width="%d" height="%d" fill="#fff"/>`, pw, h, pw, h, pw, h)
		for i, step := range st.Steps {
			w := 0.0
			if longest > 0 {
				w = step.Seconds / longest * 150
			}
			yy := 8 + i*20
			title := step.Title
			if len(title) > 52 {
				title = title[:51] + "…"
			}
			s.f(`<text x="4" y="%d" font-size="11" fill="#1b1f24">%s</text>`, yy+12, esc(title))
			s.f(`<rect x="330" y="%d" width="%.1f" height="14" fill="#0969da"><title>%s: %.2fs</title></rect>`, yy+1, max(w, 1), esc(step.Title), step.Seconds)
			s.f(`<text x="%.1f" y="%d" font-size="11" fill="#57606a">%.2fs</text>`, 334+w, yy+12, step.Seconds)
		}
		out = append(out, chart{Title: st.Lab, Caption: fmt.Sprintf("%.1fs in all", total), SVG: s.end()})
	}
	return out
}
