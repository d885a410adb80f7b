package bench

import (
	"bytes"
	"fmt"
	"image/color"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mclab.dev/mclab/internal/chromiumtest"
)

// sampleResult is a result with every kind of figure: propagation at two sizes, scale at three sizes
// with fits, and a bring-up.
func sampleResult() *Result {
	r := &Result{APIVersion: APIVersion, Kind: Kind, Scenario: "demo", Started: time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC), Took: "1m2s",
		Machine: Machine{CPUs: 2, MemoryGiB: 23.5, OS: "linux/amd64", Go: "go1.26"}, Lab: map[string]string{"provider": "local"}}
	for _, n := range []int{10, 100} {
		for _, ch := range []string{BurstUp, StepUp} {
			base := fmt.Sprintf("propagation/%s/endpoints=%d/direct/c1->c2", ch, n)
			r.Add(NewFigure(base+"/total", "s", "", []float64{0.2 * float64(n) / 10, 0.25, 0.3, 0.22, 0.9}))
			r.Add(NewFigure(base+"/kubernetes", "s", "", []float64{0.1, 0.15, 0.2, 0.12, 0.8}))
			r.Add(NewFigure(base+"/istio", "s", "", []float64{0.1, 0.1, 0.1, 0.1, 0.1}))
		}
	}
	xs := []float64{2, 5, 10}
	addFit(r, "istiod-rss vs clusters (endpoints=0)", "clusters", "istiod-rss", xs, []float64{90, 140, 230})
	addFit(r, "istiod-rss vs clusters (endpoints=100)", "clusters", "istiod-rss", xs, []float64{95, 150, 260})
	addFit(r, "kube-apiserver-rss vs clusters (endpoints=0)", "clusters", "kube-apiserver-rss", xs, []float64{300, 302, 305})
	r.Steps = []StepTimes{{Lab: "bench-scale-2", Steps: []Step{{"Starting clusters c1, c2 (in parallel)", 5}, {"Installing Istio base in c1, c2", 5.2}, {"Starting istiod for c1, c2", 3.2}}}}
	r.Notes = []string{"a note"}
	return r
}

func TestHTMLInChromium(t *testing.T) {
	chromiumtest.Binary(t)
	dir := os.Getenv("MCLAB_SCREENSHOT_DIR")
	if dir == "" {
		dir = t.TempDir()
	}
	var b bytes.Buffer
	if err := WriteHTML(&b, sampleResult()); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, want := range []string{"burst-up · direct · c1-&gt;c2", "istiod-rss grows", "Installing Istio base in c1, c2", "<svg"} {
		if !strings.Contains(page, want) {
			t.Errorf("the page lacks %q", want)
		}
	}
	if strings.Contains(page, "<script") || strings.Contains(page, "http://") || strings.Contains(page, "https://") {
		t.Error("the page is not self-contained: it has a script or fetches something")
	}
	html := filepath.Join(dir, "bench.html")
	if err := os.WriteFile(html, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	img, log := chromiumtest.Screenshot(t, html, filepath.Join(dir, "bench.png"), 1200, 1800)
	if strings.Contains(log, "CONSOLE") {
		t.Errorf("console messages:\n%s", log)
	}
	seen := chromiumtest.Colours(img)
	if len(seen) < 20 {
		t.Errorf("the screenshot has %d colours: blank?", len(seen))
	}
	for label, c := range map[string]color.RGBA{
		"istio-leg dots and step bars (#0969da)": {0x09, 0x69, 0xda, 0xff},
		"p99 ticks and the second fit (#cf222e)": {0xcf, 0x22, 0x2e, 0xff},
	} {
		if !seen[c] {
			t.Errorf("the screenshot shows no %s", label)
		}
	}
}

func TestCompare(t *testing.T) {
	old := &Result{Figures: []Figure{
		NewFigure("a", "s", "", []float64{0.1, 0.2, 0.3}),
		NewFigure("b", "s", "", []float64{1, 1, 1}),
		NewFigure("tiny", "s", "", []float64{0.001, 0.001}),
		NewFigure("gone", "s", "", []float64{1}),
	}}
	cur := &Result{Figures: []Figure{
		NewFigure("a", "s", "", []float64{0.1, 0.2, 0.6}),   // p99 0.3 -> 0.6: +100%
		NewFigure("b", "s", "", []float64{1, 1, 1.1}),       // +10%: within 20%
		NewFigure("tiny", "s", "", []float64{0.002, 0.003}), // +200% but 2 ms: under the floor
		NewFigure("new", "s", "", []float64{1}),
	}}
	cs := Compare(old, cur, 20, 0.05)
	byName := map[string]Change{}
	for _, c := range cs {
		byName[c.Name] = c
	}
	if c := byName["a"]; !c.Regressed || c.P99Pct != 100 {
		t.Errorf("a: %+v", c)
	}
	if byName["b"].Regressed || byName["tiny"].Regressed {
		t.Errorf("b or tiny flagged: %+v %+v", byName["b"], byName["tiny"])
	}
	if !byName["new"].OnlyNew || !byName["gone"].OnlyOld {
		t.Errorf("new/gone: %+v %+v", byName["new"], byName["gone"])
	}
	if cs[0].Name != "a" {
		t.Errorf("regressions first: %v", cs[0].Name)
	}
	var out bytes.Buffer
	PrintChanges(&out, cs)
	if !strings.Contains(out.String(), "REGRESSION") || !strings.Contains(out.String(), "+100%") {
		t.Errorf("table:\n%s", out.String())
	}
}

func TestResultRoundTrip(t *testing.T) {
	r := sampleResult()
	for _, name := range []string{"r.json", "r.yaml"} {
		p := filepath.Join(t.TempDir(), name)
		if err := r.Write(p); err != nil {
			t.Fatal(err)
		}
		got, err := Read(p)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Figures) != len(r.Figures) || got.Figures[0].Samples[0] != r.Figures[0].Samples[0] || len(got.Fits) != len(r.Fits) {
			t.Errorf("%s: round trip lost data", name)
		}
	}
	p := filepath.Join(t.TempDir(), "other.json")
	_ = os.WriteFile(p, []byte(`{"kind":"ConformanceReport"}`), 0o644)
	if _, err := Read(p); err == nil || !strings.Contains(err.Error(), "not a BenchResult") {
		t.Errorf("another kind read: %v", err)
	}
}
