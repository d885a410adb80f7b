package reports

import (
	"html/template"
	"io"
	"regexp"
)

var page = template.Must(template.New("summary").Funcs(template.FuncMap{
	"inc":   func(i int) int { return i + 1 },
	"lineY": func(i int) int { return 46 + i*20 },
}).Parse(`<!doctype html>
<html><head><meta charset="utf-8"><title>mclab conformance: {{.R.Environment.Lab}}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em;color:#222}
.conformant{color:#17803d}.non-conformant{color:#b42318}.inconclusive{color:#b54708}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}
.mesh{fill:#fafafa;stroke:#999;stroke-dasharray:6 4}.mesh-title{font-weight:bold;fill:#555}
.net{fill:#f3f6ff;stroke:#5b7fd6}.net-title{fill:#3a5bb0;font-size:13px}
.card rect{fill:#fff;stroke:#5b7fd6}.card.remote rect{stroke:#7a4fb5;stroke-dasharray:4 3}
.gw rect{fill:#fff4e0;stroke:#d08a1a}.serves{stroke:#7a4fb5;stroke-width:1.5;fill:none}.reads{stroke:#2f7d6d;stroke-width:1.5;stroke-dasharray:5 3;fill:none}.exports{stroke:#e07b00;stroke-width:2;fill:none}
.card.failed rect{stroke:#d92d20;stroke-width:2.5}.card.failed text:last-child{fill:#d92d20}.legend{color:#555;font-size:13px}
.pass{background:#e8f5e9}.fail{background:#fdecea}.skip{background:#fff8e1}pre{white-space:pre-wrap;margin:0}
</style></head><body>
<h1>mclab conformance: {{.R.Environment.Lab}} <span class="{{.R.Verdict}}">{{.R.Verdict}}</span></h1>
<p>Istio {{.R.Implementation.Version}} ({{.R.Implementation.Model}}) on provider {{.R.Environment.Provider}}, {{.R.Date}}</p>
{{with .R.Environment.IstioCharts}}<p class="source">Istio's charts: {{.}}{{range $n, $d := $.R.Environment.IstioChartDigests}} · {{$n}} <code>{{$d}}</code>{{end}}{{with $.R.Environment.IstioPilot}}; pilot-discovery: {{.}}{{end}}</p>{{end}}
{{with .Pic}}<svg width="{{.W}}" height="{{.H}}" viewBox="0 0 {{.W}} {{.H}}" role="img" aria-label="topology: meshes, networks, clusters, east-west gateways, and which primary serves which remote">
<defs><marker id="arrow-serves" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#7a4fb5"/></marker><marker id="arrow-exports" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#e07b00"/></marker></defs>
{{range .Meshes}}<rect class="mesh" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="12"/><text class="mesh-title" x="{{.X}}" y="{{.Y}}" dx="14" dy="20">{{.Title}}</text>
{{end}}{{range .Nets}}<rect class="net" x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="10"/><text class="net-title" x="{{.X}}" y="{{.Y}}" dx="12" dy="22">{{.Title}}</text>
{{end}}{{range .Serves}}<path class="{{.Class}}" d="M{{.X1}},{{.Y1}} C{{.X1}},{{.CY}} {{.X2}},{{.CY}} {{.X2}},{{.Y2}}" {{if ne .Class "reads"}}marker-end="url(#arrow-{{.Class}})"{{end}}><title>{{.Label}}</title></path>
{{end}}{{range .Cards}}<g class="{{.Class}}"><rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="8"/><text x="{{.X}}" y="{{.Y}}" dx="10" dy="22" font-weight="bold">{{.Title}}</text>{{$c := .}}{{range $i, $l := .Lines}}<text x="{{$c.X}}" y="{{$c.Y}}" dx="10" dy="{{lineY $i}}" font-size="12">{{$l}}</text>{{end}}</g>
{{end}}{{range .Gateways}}<g class="gw"><rect x="{{.X}}" y="{{.Y}}" width="{{.W}}" height="{{.H}}" rx="10"/><text x="{{.X}}" y="{{.Y}}" dx="8" dy="14" font-size="11">{{.Title}}</text></g>
{{end}}</svg>
<p class="legend">Boxes: meshes, then networks; cards: clusters (role, east-west gateway). ⇄ 15443: a network's east-west gateway. Purple arrows: a primary serving a remote (its istiod configures and certifies the remote's proxies); green dashed: primaries reading each other through remote secrets; orange: a mesh exporting services to another (federation); red cards: clusters a failed check names.</p>{{end}}
{{range .R.Profiles}}
<h2>{{.Name}}: {{.Core.Result}} ({{.Summary}})</h2>
<table><tr><th>test</th><th>view</th><th>result</th><th>why</th></tr>
{{range .Core.FailedTests}}<tr class="fail"><td>{{.Name}}</td><td>{{.View}}</td><td>{{.Verdict}}</td><td><pre>{{.Reason}}</pre></td></tr>{{end}}
{{range .Core.SkippedTests}}<tr class="skip"><td>{{.Name}}</td><td>{{.View}}</td><td>skipped</td><td><pre>{{.Reason}}</pre></td></tr>{{end}}
{{if .Core.Statistics.Passed}}<tr class="pass"><td colspan="4">{{.Core.Statistics.Passed}} passed</td></tr>{{end}}
</table>{{end}}
</body></html>
`))

// WriteHTML writes the single-file summary: the topology (clusters, networks, meshes, gateways) and
// every profile's results. links are the relations between clusters to draw (remote secrets between
// primaries, federation exports); clusters a failed test names are marked.
func WriteHTML(w io.Writer, r *ConformanceReport, clusters []TopologyCluster, links ...TopologyLink) error {
	failed := map[string]bool{}
	for _, p := range r.Profiles {
		for _, t := range p.Core.FailedTests {
			for _, c := range clusters {
				if regexp.MustCompile(`\b` + regexp.QuoteMeta(c.Name) + `\b`).MatchString(t.Reason) {
					failed[c.Name] = true
				}
			}
		}
	}
	return page.Execute(w, struct {
		R   *ConformanceReport
		Pic topologyPicture
	}{r, layout(clusters, links, failed)})
}
