package train

import (
	"bytes"
	"encoding/xml"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
)

func TestRecordOutcomes(t *testing.T) {
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	at := func(m int) *time.Time { x := t0.Add(time.Duration(m) * time.Minute); return &x }
	e := &Exercise{Name: "x", Title: "X", Difficulty: "easy", TimeLimit: "15m"}
	base := func() *Session {
		return &Session{Exercise: "x", Mode: ModeGuided, Seed: 7, Targets: Targets{Target: "c2"}, Started: t0, Deadline: t0.Add(15 * time.Minute),
			Checks: []CheckRecord{{Collateral: []string{"mtls"}}, {Collateral: []string{"discovery", "mtls"}}}}
	}
	s := base()
	s.Solved = at(12)
	r := s.Record("student-1", e, t0.Add(20*time.Minute))
	if r.Outcome != OutcomeSolved || r.TimeToGreenSeconds != 720 || r.OverTime || strings.Join(r.Collateral, ",") != "discovery,mtls" || r.TimeLimitSeconds != 900 {
		t.Errorf("solved: %+v", r)
	}
	s = base()
	s.Solved, s.SolutionShown, s.SolutionAt = at(20), true, at(18)
	if r := s.Record("l", e, t0.Add(30*time.Minute)); r.Outcome != OutcomeSolvedWithSolution || !r.OverTime {
		t.Errorf("solved after the solution, late: %+v", r)
	}
	s = base()
	s.Solved, s.SolutionShown, s.SolutionAt = at(5), true, at(9)
	if r := s.Record("l", e, time.Time{}); r.Outcome != OutcomeSolved {
		t.Errorf("solution asked for after solving: %+v", r)
	}
	if r := base().Record("l", e, time.Time{}); r.Outcome != OutcomeInProgress {
		t.Errorf("running: %+v", r)
	}
	if r := base().Record("l", e, t0.Add(time.Hour)); r.Outcome != OutcomeAbandoned {
		t.Errorf("reset unsolved: %+v", r)
	}
}

func TestHistoryAndReport(t *testing.T) {
	dir := t.TempDir()
	if h, err := LoadHistory(dir); err != nil || h != nil {
		t.Fatalf("no history yet: %v %v", h, err)
	}
	t0 := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	recs := []Record{
		{Lab: "student-1", Exercise: "a", Outcome: OutcomeSolved, TimeToGreenSeconds: 300, Started: t0},
		{Lab: "student-1", Exercise: "b", Outcome: OutcomeAbandoned, Collateral: []string{"mtls"}, Started: t0},
	}
	for _, r := range recs {
		if err := AppendHistory(dir, r); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err := os.Stat(HistoryFile(dir)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("history file: %v %v", fi, err)
	}
	got, err := LoadHistory(dir)
	if err != nil || len(got) != 2 || got[1].Collateral[0] != "mtls" {
		t.Fatalf("history: %+v %v", got, err)
	}
	all := append(got, Record{Lab: "student-2", Exercise: "a", Outcome: OutcomeSolved, TimeToGreenSeconds: 500, Started: t0},
		Record{Lab: "student-2", Exercise: "c", Outcome: OutcomeInProgress, Started: t0})
	rep := NewReport(all, t0)
	if s := rep.Summary; s.Learners != 2 || s.Attempts != 4 || s.Solved != 2 || s.InProgress != 1 || s.WithCollateral != 1 || s.MedianTimeToGreenSeconds != 400 {
		t.Errorf("summary: %+v", s)
	}
	var b bytes.Buffer
	if err := rep.WriteJUnit(&b); err != nil {
		t.Fatal(err)
	}
	var suites reporters.JUnitTestSuites
	if err := xml.Unmarshal(b.Bytes(), &suites); err != nil {
		t.Fatalf("%v\n%s", err, b.String())
	}
	if len(suites.TestSuites) != 2 || suites.Tests != 4 || suites.Failures != 1 || suites.Disabled != 1 ||
		suites.TestSuites[0].TestCases[1].Failure == nil || !strings.Contains(suites.TestSuites[0].TestCases[1].Failure.Description, "collateral damage seen: [mtls]") {
		t.Errorf("junit:\n%s", b.String())
	}
}

func TestVerdictHint(t *testing.T) {
	e := &Exercise{Expect: Expect{Failing: []string{"synced", "credentials"}}}
	got := VerdictHint(e, map[string]string{"credentials": "istiod of c1 has no remote secret for c2\nIn [It] at: specs.go:89", "other": "x"})
	if got != `mclab verify says that "credentials" fails: istiod of c1 has no remote secret for c2` {
		t.Errorf("%q", got)
	}
	if got := VerdictHint(e, map[string]string{"other": "x"}); got != "" {
		t.Errorf("no spec of the exercise fails: %q", got)
	}
}
