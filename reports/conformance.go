// Package reports renders what the suites recorded: a conformance report shaped like Gateway API's
// ConformanceReport (a typed, versioned API), a JUnit file for setups that fail before any spec runs,
// and a single-file HTML summary. Reports never talk to clusters.
//
// The verdict rules (suites/README.md, "Verdicts") are enforced here and nowhere else:
//   - conformant only when at least one spec ran and every Required spec of the scope ran and passed;
//   - non-conformant when a check found a violation of the mesh, even if other checks could not run;
//   - inconclusive when a Required spec of the scope was skipped, the selection was empty, or the
//     harness or infrastructure failed.
package reports

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// APIVersion of the conformance report.
const APIVersion = "mclab.dev/v1alpha1"

// Verdicts and exit codes: conformant 0, non-conformant 1 (the mesh violates a property), inconclusive 2
// (the harness or the infrastructure failed, or the run did not check what it was asked to).
const (
	Conformant    = "conformant"
	NonConformant = "non-conformant"
	Inconclusive  = "inconclusive"
)

// Report entries the suites attach to a spec. VerdictEntry tells a violation from a harness failure;
// ApplicabilityEntry marks a spec that does not apply to the scenario (a model's profile on another
// model), which is neither a pass nor a gap in the scope.
const (
	VerdictEntry       = "verdict"
	ApplicabilityEntry = "applicability"
	NotApplicable      = "not-applicable"
	AttemptsEntry      = "attempts"
	// DiagnosisEntry is the time a failed spec's causes took to derive (the diagnosis chain runs only
	// for the verdict that stands, never for a pass).
	DiagnosisEntry = "diagnosis"
	// ScopeEntry "out" marks a spec the scope leaves out for a reason the scope names (e.g. the
	// samples it needs are not deployed): counted out of scope, never a gap.
	ScopeEntry = "scope"
	OutOfScope = "out"
)

// Views and levels (the labels every spec carries).
const (
	ControlPlane = "control-plane"
	DataPlane    = "data-plane"
	Required     = "Required"
	Optional     = "Optional"
)

// ExitCode maps a verdict to mclab verify's exit code.
func ExitCode(verdict string) int {
	switch verdict {
	case Conformant:
		return 0
	case NonConformant:
		return 1
	}
	return 2
}

// ConformanceReport is the gate's verdict.
type ConformanceReport struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Date       string `json:"date"`
	Verdict    string `json:"verdict"`
	// Reasons say why the verdict is not conformant when no single test says it (an empty selection,
	// a Required test of the scope that did not run).
	Reasons        []string        `json:"reasons,omitempty"`
	Scope          Scope           `json:"scope"`
	Implementation Implementation  `json:"implementation"`
	Environment    Environment     `json:"environment"`
	Statistics     Statistics      `json:"statistics"`
	Profiles       []ProfileReport `json:"profiles"`
}

// Scope is what the run was asked to judge: the views, the label filter, and the views it did not run
// with the reason.
type Scope struct {
	Views       []string `json:"views"`
	LabelFilter string   `json:"labelFilter,omitempty"`
	NotRun      []NotRun `json:"notRun,omitempty"`
	Explicit    bool     `json:"explicit,omitempty"`
	filter      func([]string) bool
}

// NotRun is a view left out of the scope, and why.
type NotRun struct {
	View   string `json:"view"`
	Reason string `json:"reason"`
}

// NewScope builds a scope; filter is the compiled label filter (nil selects every spec).
func NewScope(views []string, labelFilter string, filter func([]string) bool, notRun []NotRun, explicit bool) Scope {
	return Scope{Views: views, LabelFilter: labelFilter, filter: filter, NotRun: notRun, Explicit: explicit}
}

// Has reports whether view is in the scope.
func (s Scope) Has(view string) bool { return slices.Contains(s.Views, view) }

// String is the scope as the verdict line prints it: "control plane; data plane not run: provider
// local runs no containers".
func (s Scope) String() string {
	var parts []string
	var views []string
	for _, v := range s.Views {
		views = append(views, strings.ReplaceAll(v, "-", " "))
	}
	if len(views) > 0 {
		parts = append(parts, strings.Join(views, " and "))
	}
	for _, n := range s.NotRun {
		parts = append(parts, fmt.Sprintf("%s not run: %s", strings.ReplaceAll(n.View, "-", " "), n.Reason))
	}
	if s.LabelFilter != "" {
		parts = append(parts, "label filter "+strconv.Quote(s.LabelFilter))
	}
	return strings.Join(parts, "; ")
}

// Implementation is what was tested.
type Implementation struct {
	Project string `json:"project"`
	Version string `json:"version"`
	Model   string `json:"model"`
}

// Environment is where it was tested.
type Environment struct {
	Lab               string `json:"lab"`
	Provider          string `json:"provider"`
	Topology          string `json:"topology"`
	KubernetesVersion string `json:"kubernetesVersion"`
	IstioVersion      string `json:"istioVersion"`
	// IstioCharts is where the installed Istio's charts came from (a chart repository, or built in),
	// with each verified archive's digest; IstioPilot where pilot-discovery came from.
	IstioCharts       string            `json:"istioCharts,omitempty"`
	IstioChartDigests map[string]string `json:"istioChartDigests,omitempty"`
	IstioPilot        string            `json:"istioPilot,omitempty"`
	Clusters          []string          `json:"clusters"`
}

// ProfileReport is one profile's results: core (Required) and extended (Optional) tests.
type ProfileReport struct {
	Name     string   `json:"name"`
	Summary  string   `json:"summary"`
	Core     Results  `json:"core"`
	Extended *Results `json:"extended,omitempty"`
}

// Results of a level.
type Results struct {
	Result       string       `json:"result"`
	Statistics   Statistics   `json:"statistics"`
	FailedTests  []TestResult `json:"failedTests,omitempty"`
	SkippedTests []TestResult `json:"skippedTests,omitempty"`
	// NotApplicable are tests that do not apply to the scenario (another model's profile).
	NotApplicable []TestResult `json:"notApplicable,omitempty"`
}

// Statistics counts tests. Skipped counts in-scope tests that did not run; OutOfScope the tests of
// views or filters the run was not asked to judge.
type Statistics struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
	// Inconclusive counts the Failed tests that could not be judged (not findings).
	Inconclusive  int `json:"inconclusive,omitempty"`
	NotApplicable int `json:"notApplicable,omitempty"`
	OutOfScope    int `json:"outOfScope,omitempty"`
}

func (s *Statistics) add(o Statistics) {
	s.Passed += o.Passed
	s.Failed += o.Failed
	s.Skipped += o.Skipped
	s.Inconclusive += o.Inconclusive
	s.NotApplicable += o.NotApplicable
	s.OutOfScope += o.OutOfScope
}

// TestResult names a test and why it failed or was skipped.
type TestResult struct {
	Name    string `json:"name"`
	View    string `json:"view"`
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason"`
	// Attempts is how the check went over time ("passed after 2 failures in 3s").
	Attempts string `json:"attempts,omitempty"`
	// Diagnosis is the time deriving the failure's cause took ("412ms"; empty when nothing was derived).
	Diagnosis string `json:"diagnosis,omitempty"`
	// InScope is false for a test of a view or filter the run was not asked to judge.
	InScope bool `json:"inScope"`
}

// Build turns Ginkgo's report into a conformance report, applying the verdict rules.
func Build(r types.Report, profiles []string, scope Scope, impl Implementation, env Environment) *ConformanceReport {
	cr := &ConformanceReport{APIVersion: APIVersion, Kind: "ConformanceReport", Date: time.Now().UTC().Format(time.RFC3339), Scope: scope, Implementation: impl, Environment: env}
	byProfile := map[string]map[bool]*Results{}
	inconclusive, failed, ran := false, false, 0
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			if s.State.Is(types.SpecStateFailureStates) {
				inconclusive = true // a setup node failed
				cr.Reasons = append(cr.Reasons, fmt.Sprintf("%s failed: %s", s.LeafNodeType, s.Failure.Message))
			}
			continue
		}
		labels := s.Labels()
		profile := ""
		for _, p := range profiles {
			if slices.Contains(labels, p) {
				profile = p
			}
		}
		if profile == "" {
			continue
		}
		core := !slices.Contains(labels, Optional)
		if byProfile[profile] == nil {
			byProfile[profile] = map[bool]*Results{}
		}
		res := byProfile[profile][core]
		if res == nil {
			res = &Results{}
			byProfile[profile][core] = res
		}
		view := ControlPlane
		if slices.Contains(labels, DataPlane) {
			view = DataPlane
		}
		selected := scope.filter == nil || scope.filter(labels)
		inScope := selected && scope.Has(view)
		tr := TestResult{Name: s.LeafNodeText, View: view, InScope: inScope, Reason: s.Failure.Message, Attempts: entry(s, AttemptsEntry), Diagnosis: entry(s, DiagnosisEntry)}
		switch {
		case s.State == types.SpecStatePassed:
			res.Statistics.Passed++
			ran++
			tr.Reason = ""
		case s.State == types.SpecStateSkipped || s.State == types.SpecStatePending:
			switch {
			case entry(s, ApplicabilityEntry) == NotApplicable:
				res.Statistics.NotApplicable++
				res.NotApplicable = append(res.NotApplicable, tr)
				continue
			case !selected:
				res.Statistics.OutOfScope++
				continue // not selected by the label filter: not part of this run at all
			case !inScope || entry(s, ScopeEntry) == OutOfScope:
				tr.InScope = false
				res.Statistics.OutOfScope++
			default:
				res.Statistics.Skipped++
				if core {
					// A Required test of the scope that did not run: the run cannot vouch for it.
					inconclusive = true
					cr.Reasons = append(cr.Reasons, fmt.Sprintf("Required test %q (%s, %s) was not run: %s", s.LeafNodeText, profile, view, orUnknown(s.Failure.Message)))
				}
			}
			if tr.Reason == "" {
				tr.Reason = "not selected"
			}
			res.SkippedTests = append(res.SkippedTests, tr)
		default:
			res.Statistics.Failed++
			ran++
			// A spec fails as non-conformant only when its check said so; a panic, a timeout or an
			// unexpected error is the harness's or the infrastructure's, not the mesh's.
			tr.Verdict = Inconclusive
			if entry(s, VerdictEntry) == NonConformant {
				tr.Verdict = NonConformant
			}
			if s.State == types.SpecStateInterrupted || s.State == types.SpecStateAborted || s.State == types.SpecStatePanicked {
				tr.Verdict = Inconclusive
			}
			if tr.Verdict == NonConformant {
				failed = true
			} else {
				inconclusive = true
				res.Statistics.Inconclusive++
			}
			res.FailedTests = append(res.FailedTests, tr)
		}
	}
	for _, p := range profiles {
		levels := byProfile[p]
		if levels == nil {
			continue
		}
		pr := ProfileReport{Name: p}
		if c := levels[true]; c != nil {
			c.Result = result(c)
			pr.Core = *c
			cr.Statistics.add(c.Statistics)
		} else {
			pr.Core.Result = result(&pr.Core)
		}
		if e := levels[false]; e != nil {
			e.Result = result(e)
			pr.Extended = e
			cr.Statistics.add(e.Statistics)
		}
		pr.Summary = summary(pr)
		cr.Profiles = append(cr.Profiles, pr)
	}
	sort.SliceStable(cr.Profiles, func(i, j int) bool {
		return slices.Index(profiles, cr.Profiles[i].Name) < slices.Index(profiles, cr.Profiles[j].Name)
	})
	if r.PreRunStats.SpecsThatWillRun == 0 && r.PreRunStats.TotalSpecs > 0 {
		inconclusive = true
		cr.Reasons = append(cr.Reasons, "the label filter selects no spec")
	} else if ran == 0 {
		inconclusive = true
		cr.Reasons = append(cr.Reasons, "no spec ran: nothing was checked")
	}
	switch {
	case failed:
		cr.Verdict = NonConformant
	case inconclusive:
		cr.Verdict = Inconclusive
	default:
		cr.Verdict = Conformant
	}
	if len(r.SpecialSuiteFailureReasons) > 0 && cr.Verdict == Conformant {
		cr.Verdict = Inconclusive
		cr.Reasons = append(cr.Reasons, strings.Join(r.SpecialSuiteFailureReasons, "; "))
	}
	return cr
}

// VerdictLine is the one-line verdict with its scope: "conformant (control plane; data plane not run:
// provider local runs no containers)".
func (cr *ConformanceReport) VerdictLine() string {
	return fmt.Sprintf("%s (%s)", cr.Verdict, cr.Scope.String())
}

func entry(s types.SpecReport, name string) string {
	for _, e := range s.ReportEntries {
		if e.Name == name {
			return e.StringRepresentation()
		}
	}
	return ""
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

func result(r *Results) string {
	switch {
	case r.Statistics.Failed > r.Statistics.Inconclusive:
		return "failure"
	case r.Statistics.Inconclusive > 0:
		// Tests that could not be judged: neither a finding nor a pass (Gateway API's "partial").
		return "partial"
	case r.Statistics.Skipped > 0:
		return "partial"
	case r.Statistics.Passed == 0:
		return "not-run"
	}
	return "success"
}

func summary(p ProfileReport) string {
	s := p.Core.Statistics
	out := []string{itoa(s.Passed) + " passed", itoa(s.Failed) + " failed", itoa(s.Skipped) + " skipped"}
	if s.Inconclusive > 0 {
		out[1] = itoa(s.Failed) + " failed (" + itoa(s.Inconclusive) + " inconclusive)"
	}
	if s.NotApplicable > 0 {
		out = append(out, itoa(s.NotApplicable)+" not applicable")
	}
	if s.OutOfScope > 0 {
		out = append(out, itoa(s.OutOfScope)+" out of scope")
	}
	return strings.Join(out, ", ")
}

func itoa(n int) string { return strconv.Itoa(n) }

// Markdown renders the verdict as a Markdown table, for CI job summaries ($GITHUB_STEP_SUMMARY).
func (cr *ConformanceReport) Markdown() string {
	var b strings.Builder
	icon := map[string]string{Conformant: "✅", NonConformant: "❌", Inconclusive: "⚠️"}[cr.Verdict]
	fmt.Fprintf(&b, "### mclab verify: %s %s\n\n", icon, cr.VerdictLine())
	fmt.Fprintf(&b, "Lab `%s` (provider %s, %s), Istio %s, Kubernetes %s\n\n", cr.Environment.Lab, cr.Environment.Provider, cr.Implementation.Model, orUnknown(cr.Environment.IstioVersion), orUnknown(cr.Environment.KubernetesVersion))
	if e := cr.Environment; e.IstioCharts != "" {
		fmt.Fprintf(&b, "Istio's charts: %s%s; pilot-discovery: %s\n\n", e.IstioCharts, digestList(e.IstioChartDigests), orUnknown(e.IstioPilot))
	}
	for _, r := range cr.Reasons {
		fmt.Fprintf(&b, "- %s\n", mdEscape(r))
	}
	if len(cr.Reasons) > 0 {
		b.WriteString("\n")
	}
	b.WriteString("| profile | result | passed | failed | skipped | not applicable | out of scope |\n|---|---|---|---|---|---|---|\n")
	for _, p := range cr.Profiles {
		s := p.Core.Statistics
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %d | %d | %d |\n", p.Name, p.Core.Result, s.Passed, s.Failed, s.Skipped, s.NotApplicable, s.OutOfScope)
	}
	var failed []string
	for _, p := range cr.Profiles {
		for _, f := range p.Core.FailedTests {
			failed = append(failed, fmt.Sprintf("- **%s** %s (%s): %s", p.Name, mdEscape(f.Name), f.Verdict, mdEscape(firstLine(f.Reason))))
		}
	}
	if len(failed) > 0 {
		b.WriteString("\n" + strings.Join(failed, "\n") + "\n")
	}
	return b.String()
}

func mdEscape(s string) string { return strings.NewReplacer("|", `\|`, "\n", " ").Replace(s) }

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

func digestList(d map[string]string) string {
	if len(d) == 0 {
		return ""
	}
	var parts []string
	for _, n := range slices.Sorted(maps.Keys(d)) {
		parts = append(parts, n+" "+d[n])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
