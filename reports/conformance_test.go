package reports

import (
	"testing"

	"github.com/onsi/ginkgo/v2/types"
)

func spec(text string, state types.SpecState, verdict string, labels ...string) types.SpecReport {
	s := types.SpecReport{LeafNodeType: types.NodeTypeIt, LeafNodeText: text, LeafNodeLabels: labels, State: state}
	if verdict != "" {
		s.ReportEntries = types.ReportEntries{{Name: "verdict", Value: types.WrapEntryValue(verdict)}}
	}
	if state != types.SpecStatePassed {
		s.Failure.Message = text + " failed"
	}
	return s
}

func TestVerdicts(t *testing.T) {
	profiles := []string{"MC-A", "MC-B"}
	cases := []struct {
		name  string
		specs []types.SpecReport
		want  string
		code  int
	}{
		{"all pass, data plane skipped", []types.SpecReport{
			spec("a", types.SpecStatePassed, "", "MC-A", "Required"),
			spec("dp", types.SpecStateSkipped, "", "MC-A", "Required", "data-plane"),
		}, Conformant, 0},
		{"a check says the mesh is broken", []types.SpecReport{
			spec("a", types.SpecStateFailed, NonConformant, "MC-A", "Required"),
			spec("b", types.SpecStatePassed, "", "MC-B", "Required"),
		}, NonConformant, 1},
		{"a check could not run", []types.SpecReport{
			spec("a", types.SpecStateFailed, Inconclusive, "MC-A", "Required"),
		}, Inconclusive, 2},
		{"a panic is the harness's", []types.SpecReport{
			spec("a", types.SpecStatePanicked, "", "MC-A", "Required"),
		}, Inconclusive, 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := types.Report{SuiteSucceeded: tc.want == Conformant, SpecReports: tc.specs}
			cr := Build(r, profiles, Implementation{}, Environment{})
			if cr.Verdict != tc.want || ExitCode(cr.Verdict) != tc.code {
				t.Errorf("verdict %s (exit %d), want %s (%d)", cr.Verdict, ExitCode(cr.Verdict), tc.want, tc.code)
			}
		})
	}
}

func TestProfilesAndLevels(t *testing.T) {
	r := types.Report{SuiteSucceeded: false, SpecReports: []types.SpecReport{
		spec("core fails", types.SpecStateFailed, NonConformant, "MC-A", "Required"),
		spec("extended passes", types.SpecStatePassed, "", "MC-A", "Optional"),
		spec("skipped", types.SpecStateSkipped, "", "MC-B", "Required"),
	}}
	cr := Build(r, []string{"MC-A", "MC-B"}, Implementation{}, Environment{})
	if len(cr.Profiles) != 2 || cr.Profiles[0].Name != "MC-A" {
		t.Fatalf("profiles: %+v", cr.Profiles)
	}
	a := cr.Profiles[0]
	if a.Core.Result != "failure" || len(a.Core.FailedTests) != 1 || a.Core.FailedTests[0].Reason != "core fails failed" {
		t.Errorf("core: %+v", a.Core)
	}
	if a.Extended == nil || a.Extended.Result != "success" {
		t.Errorf("extended: %+v", a.Extended)
	}
	if b := cr.Profiles[1]; b.Core.Result != "partial" || len(b.Core.SkippedTests) != 1 {
		t.Errorf("MC-B: %+v", b.Core)
	}
}
