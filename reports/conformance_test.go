package reports

import (
	"slices"
	"strings"
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func spec(text string, state types.SpecState, verdict string, labels ...string) types.SpecReport {
	s := types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: text, LeafNodeLabels: labels, State: state}
	if verdict != "" {
		s.ReportEntries = types.ReportEntries{{Name: VerdictEntry, Value: types.WrapEntryValue(verdict)}}
	}
	if state != types.SpecStatePassed {
		s.Failure.Message = text + " failed"
	}
	return s
}

func notApplicable(s types.SpecReport) types.SpecReport {
	s.ReportEntries = append(s.ReportEntries, types.ReportEntry{Name: ApplicabilityEntry, Value: types.WrapEntryValue(NotApplicable)})
	return s
}

var (
	controlPlaneOnLocal = NewScope([]string{ControlPlane}, "", nil, []NotRun{{View: DataPlane, Reason: "provider local runs no containers"}}, false)
	everything          = NewScope([]string{ControlPlane, DataPlane}, "", nil, nil, true)
)

// TestVerdictRules pins every rule of suites/README.md "Verdicts".
func TestVerdictRules(t *testing.T) {
	profiles := []string{"MC-A", "MC-B"}
	onlyA := func(labels []string) bool { return slices.Contains(labels, "MC-A") }
	cases := []struct {
		name   string
		scope  Scope
		specs  []types.SpecReport
		stats  types.PreRunStats
		want   string
		reason string
	}{
		{"every Required spec of the scope passed; data plane out of scope", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
			spec("dp", types.SpecStateSkipped, "", "MC-A", Required, DataPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, Conformant, ""},
		{"a Required spec of the scope was skipped", everything, []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
			spec("dp", types.SpecStateSkipped, "", "MC-A", Required, DataPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, Inconclusive, `Required test "dp" (MC-A, data-plane) was not run: dp failed`},
		{"an Optional spec of the scope was skipped", everything, []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
			spec("opt", types.SpecStateSkipped, "", "MC-A", Optional, DataPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, Conformant, ""},
		{"the label filter selects no spec", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStateSkipped, "", "MC-A", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 15, SpecsThatWillRun: 0}, Inconclusive, "the label filter selects no spec"},
		{"every selected spec is not applicable: nothing was checked", controlPlaneOnLocal, []types.SpecReport{
			notApplicable(spec("pr", types.SpecStateSkipped, "", "MC-A", Required, ControlPlane)),
		}, types.PreRunStats{TotalSpecs: 1, SpecsThatWillRun: 1}, Inconclusive, "no spec ran"},
		{"a spec of another model is not applicable", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
			notApplicable(spec("pr", types.SpecStateSkipped, "", "MC-B", Required, ControlPlane)),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, Conformant, ""},
		{"specs the label filter leaves out are not gaps", NewScope([]string{ControlPlane}, "MC-A", onlyA, nil, false), []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
			spec("b", types.SpecStateSkipped, "", "MC-B", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 1}, Conformant, ""},
		{"a check says the mesh is broken", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStateFailed, NonConformant, "MC-A", Required, ControlPlane),
			spec("b", types.SpecStatePassed, "", "MC-B", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, NonConformant, ""},
		{"a violation stands even when another check could not run", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStateFailed, NonConformant, "MC-A", Required, ControlPlane),
			spec("b", types.SpecStateFailed, Inconclusive, "MC-B", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, NonConformant, ""},
		{"a check could not run", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStateFailed, Inconclusive, "MC-A", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 1, SpecsThatWillRun: 1}, Inconclusive, ""},
		{"a panic is the harness's", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStatePanicked, NonConformant, "MC-A", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 1, SpecsThatWillRun: 1}, Inconclusive, ""},
		{"a failure without a verdict (a timeout) is the harness's", controlPlaneOnLocal, []types.SpecReport{
			spec("a", types.SpecStateFailed, "", "MC-A", Required, ControlPlane),
		}, types.PreRunStats{TotalSpecs: 1, SpecsThatWillRun: 1}, Inconclusive, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := types.Report{SuiteSucceeded: tc.want == Conformant, SpecReports: tc.specs, PreRunStats: tc.stats}
			cr := Build(r, profiles, tc.scope, Implementation{}, Environment{})
			if cr.Verdict != tc.want {
				t.Errorf("verdict %s (exit %d), want %s; reasons %v", cr.Verdict, ExitCode(cr.Verdict), tc.want, cr.Reasons)
			}
			if tc.reason != "" && !strings.Contains(strings.Join(cr.Reasons, "\n"), tc.reason) {
				t.Errorf("reasons %q lack %q", cr.Reasons, tc.reason)
			}
		})
	}
}

func TestExitCodes(t *testing.T) {
	for verdict, code := range map[string]int{Conformant: 0, NonConformant: 1, Inconclusive: 2, "": 2} {
		if got := ExitCode(verdict); got != code {
			t.Errorf("ExitCode(%q) = %d, want %d", verdict, got, code)
		}
	}
}

func TestVerdictLineNamesTheScope(t *testing.T) {
	cr := Build(types.Report{SuiteSucceeded: true, PreRunStats: types.PreRunStats{TotalSpecs: 1, SpecsThatWillRun: 1}, SpecReports: []types.SpecReport{
		spec("a", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
	}}, []string{"MC-A"}, controlPlaneOnLocal, Implementation{}, Environment{})
	if got, want := cr.VerdictLine(), "conformant (control plane; data plane not run: provider local runs no containers)"; got != want {
		t.Errorf("verdict line %q, want %q", got, want)
	}
}

func TestProfilesAndLevels(t *testing.T) {
	failing := spec("core fails", types.SpecStateFailed, NonConformant, "MC-A", Required)
	failing.ReportEntries = append(failing.ReportEntries, types.ReportEntry{Name: DiagnosisEntry, Value: types.WrapEntryValue("412ms")})
	r := types.Report{SuiteSucceeded: false, PreRunStats: types.PreRunStats{TotalSpecs: 3, SpecsThatWillRun: 3}, SpecReports: []types.SpecReport{
		failing,
		spec("extended passes", types.SpecStatePassed, "", "MC-A", Optional),
		spec("skipped", types.SpecStateSkipped, "", "MC-B", Required),
	}}
	cr := Build(r, []string{"MC-A", "MC-B"}, controlPlaneOnLocal, Implementation{}, Environment{})
	if len(cr.Profiles) != 2 || cr.Profiles[0].Name != "MC-A" {
		t.Fatalf("profiles: %+v", cr.Profiles)
	}
	a := cr.Profiles[0]
	if a.Core.Result != "failure" || len(a.Core.FailedTests) != 1 || a.Core.FailedTests[0].Reason != "core fails failed" || a.Core.FailedTests[0].Diagnosis != "412ms" {
		t.Errorf("core: %+v", a.Core)
	}
	if a.Extended == nil || a.Extended.Result != "success" {
		t.Errorf("extended: %+v", a.Extended)
	}
	if b := cr.Profiles[1]; b.Core.Result != "partial" || len(b.Core.SkippedTests) != 1 {
		t.Errorf("MC-B: %+v", b.Core)
	}
}

func TestMarkdownSummary(t *testing.T) {
	cr := Build(types.Report{PreRunStats: types.PreRunStats{TotalSpecs: 2, SpecsThatWillRun: 2}, SpecReports: []types.SpecReport{
		spec("roots | equal", types.SpecStateFailed, NonConformant, "MC-A", Required, ControlPlane),
		spec("b", types.SpecStatePassed, "", "MC-A", Required, ControlPlane),
	}}, []string{"MC-A"}, controlPlaneOnLocal, Implementation{Model: "multi-primary"}, Environment{Lab: "lab1", Provider: "local"})
	md := cr.Markdown()
	for _, want := range []string{"❌ non-conformant (control plane; data plane not run", "| MC-A | failure | 1 | 1 | 0 | 0 | 0 |", `**MC-A** roots \| equal (non-conformant): roots \| equal failed`} {
		if !strings.Contains(md, want) {
			t.Errorf("summary lacks %q:\n%s", want, md)
		}
	}
}
