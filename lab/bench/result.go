package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mclab.dev/mclab/reports"
	"os"
	"runtime"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"sigs.k8s.io/yaml"
)

// APIVersion and Kind of a bench result file.
const (
	APIVersion = "mclab.dev/v1alpha1"
	Kind       = "BenchResult"
)

// Result is a bench run: every figure with its raw samples, and what it ran on.
type Result struct {
	APIVersion string    `json:"apiVersion"`
	Kind       string    `json:"kind"`
	Scenario   string    `json:"scenario"`
	Started    time.Time `json:"started"`
	Took       string    `json:"took"`
	Machine    Machine   `json:"machine"`
	// Lab describes the lab(s) measured: provider, model, topology, Istio version.
	Lab map[string]string `json:"lab,omitempty"`
	// Figures are the measured figures, in the order measured.
	Figures []Figure `json:"figures"`
	// Fits are growth fits (scale): how a cost grows with clusters or endpoints.
	Fits []FitResult `json:"fits,omitempty"`
	// Steps are the bring-up steps with their durations, per lab brought up.
	Steps []StepTimes `json:"steps,omitempty"`
	// Notes say what was not measured and why, and what limited the run.
	Notes []string `json:"notes,omitempty"`
}

// Machine is what the bench ran on.
type Machine struct {
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memoryGiB"`
	OS        string  `json:"os"`
	Go        string  `json:"go"`
}

// ThisMachine describes the host.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), OS: runtime.GOOS + "/" + runtime.GOARCH, Go: runtime.Version()}
	if data, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(data), "MemTotal: %f kB", &kb); err == nil {
			m.MemoryGiB = math.Round(kb/(1<<20)*10) / 10
		}
	}
	return m
}

// Figure is one measured quantity: its samples and their summary.
type Figure struct {
	// Name identifies the figure across runs (for --compare), e.g. "propagation/up/endpoints=100/client".
	Name string `json:"name"`
	// Unit is "s", "MiB", "cpu-s", "count".
	Unit    string    `json:"unit"`
	Summary Summary   `json:"summary"`
	Samples []float64 `json:"samples"`
	// Help says what was measured, from where to where.
	Help string `json:"help,omitempty"`
}

// NewFigure summarizes samples into a figure.
func NewFigure(name, unit, help string, samples []float64) Figure {
	return Figure{Name: name, Unit: unit, Help: help, Samples: samples, Summary: Summarize(samples)}
}

// FitResult is a fitted growth: Y against X.
type FitResult struct {
	Name string `json:"name"`
	X    string `json:"x"`
	Y    string `json:"y"`
	Fit  Fit    `json:"fit"`
	// Says is the fit in words, e.g. "istiod RSS grows linearly with clusters (exponent 0.98, R² 0.99)".
	Says string    `json:"says"`
	XS   []float64 `json:"xs"`
	YS   []float64 `json:"ys"`
}

// StepTimes are one bring-up's steps.
type StepTimes struct {
	Lab   string `json:"lab"`
	Steps []Step `json:"steps"`
}

// Step is one step of a plan with its duration in seconds.
type Step struct {
	Title   string  `json:"title"`
	Seconds float64 `json:"seconds"`
}

// Add appends a figure.
func (r *Result) Add(f Figure) { r.Figures = append(r.Figures, f) }

// Figure returns the named figure.
func (r *Result) Figure(name string) (Figure, bool) {
	for _, f := range r.Figures {
		if f.Name == name {
			return f, true
		}
	}
	return Figure{}, false
}

// Table writes the figures as a table (p50, p90, p99, max, count), then the fits and the notes.
func (r *Result) Table(w io.Writer) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tUNIT\tP50\tP90\tP99\tMAX\tN")
	for _, f := range r.Figures {
		s := f.Summary
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\n", f.Name, f.Unit, num(s.P50), num(s.P90), num(s.P99), num(s.Max), s.Count)
	}
	tw.Flush()
	for _, f := range r.Fits {
		fmt.Fprintf(w, "fit: %s\n", f.Says)
	}
	for _, st := range r.Steps {
		fmt.Fprintf(w, "bring-up of %s:\n", st.Lab)
		for _, s := range st.Steps {
			fmt.Fprintf(w, "  %6.2fs  %s\n", s.Seconds, s.Title)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "note: %s\n", n)
	}
}

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "-"
	case v == math.Trunc(v) && math.Abs(v) < 1e6:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	}
	return fmt.Sprintf("%.3f", v)
}

// Write writes the result as JSON (path ending .json) or YAML.
func (r *Result) Write(path string) error {
	var data []byte
	var err error
	if strings.HasSuffix(path, ".json") {
		data, err = json.MarshalIndent(r, "", "  ")
	} else {
		data, err = yaml.Marshal(r)
	}
	if err != nil {
		return err
	}
	// Results are shared (0644): notes carry error texts from the lab, so they pass redaction too.
	return os.WriteFile(path, reports.RedactBytes(data), 0o644)
}

// Read reads a result written by Write (JSON or YAML), strictly.
func Read(path string) (*Result, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r Result
	if err := yaml.UnmarshalStrict(data, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if r.Kind != Kind {
		return nil, fmt.Errorf("%s is a %q, not a %s (mclab bench --out writes one)", path, r.Kind, Kind)
	}
	return &r, nil
}

// Change is one figure compared across two runs.
type Change struct {
	Name, Unit       string
	OldP50, NewP50   float64
	OldP99, NewP99   float64
	P50Pct, P99Pct   float64
	Regressed        bool
	OnlyOld, OnlyNew bool
}

// Compare compares every figure of two runs by name: the change of p50 and p99 in percent; a figure
// whose p99 grew by more than threshold percent (and by more than floor in its unit, so noise on tiny
// figures does not count) is a regression.
func Compare(old, cur *Result, threshold, floor float64) []Change {
	var out []Change
	seen := map[string]bool{}
	for _, nf := range cur.Figures {
		seen[nf.Name] = true
		of, ok := old.Figure(nf.Name)
		if !ok {
			out = append(out, Change{Name: nf.Name, Unit: nf.Unit, NewP50: nf.Summary.P50, NewP99: nf.Summary.P99, OnlyNew: true})
			continue
		}
		c := Change{Name: nf.Name, Unit: nf.Unit, OldP50: of.Summary.P50, NewP50: nf.Summary.P50, OldP99: of.Summary.P99, NewP99: nf.Summary.P99,
			P50Pct: pct(of.Summary.P50, nf.Summary.P50), P99Pct: pct(of.Summary.P99, nf.Summary.P99)}
		c.Regressed = c.P99Pct > threshold && nf.Summary.P99-of.Summary.P99 > floor
		out = append(out, c)
	}
	for _, of := range old.Figures {
		if !seen[of.Name] {
			out = append(out, Change{Name: of.Name, Unit: of.Unit, OldP50: of.Summary.P50, OldP99: of.Summary.P99, OnlyOld: true})
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Regressed && !out[j].Regressed })
	return out
}

func pct(old, cur float64) float64 {
	if old == 0 {
		if cur == 0 {
			return 0
		}
		return math.Inf(1)
	}
	return (cur - old) / old * 100
}

// PrintChanges writes the comparison as a table.
func PrintChanges(w io.Writer, cs []Change) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "FIGURE\tUNIT\tP50 OLD\tP50 NEW\tCHANGE\tP99 OLD\tP99 NEW\tCHANGE\t")
	for _, c := range cs {
		switch {
		case c.OnlyNew:
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\tnew\t-\t%s\tnew\t\n", c.Name, c.Unit, num(c.NewP50), num(c.NewP99))
		case c.OnlyOld:
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\tgone\t%s\t-\tgone\t\n", c.Name, c.Unit, num(c.OldP50), num(c.OldP99))
		default:
			mark := ""
			if c.Regressed {
				mark = "REGRESSION"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%+.0f%%\t%s\t%s\t%+.0f%%\t%s\n", c.Name, c.Unit, num(c.OldP50), num(c.NewP50), c.P50Pct, num(c.OldP99), num(c.NewP99), c.P99Pct, mark)
		}
	}
	tw.Flush()
}
