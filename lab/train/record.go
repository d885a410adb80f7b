package train

import (
	"bufio"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"time"

	"github.com/onsi/ginkgo/v2/reporters"
)

// Outcomes of an attempt.
const (
	// OutcomeSolved: a check passed before the solution was shown.
	OutcomeSolved = "solved"
	// OutcomeSolvedWithSolution: a check passed after the learner asked for the solution.
	OutcomeSolvedWithSolution = "solved-with-solution"
	// OutcomeInProgress: the exercise is still running and unsolved.
	OutcomeInProgress = "in-progress"
	// OutcomeAbandoned: reset before any check passed.
	OutcomeAbandoned = "abandoned"
)

// Record is one attempt at an exercise, as an instructor collects it.
type Record struct {
	Lab        string    `json:"lab"`
	Exercise   string    `json:"exercise"`
	Title      string    `json:"title,omitempty"`
	Difficulty string    `json:"difficulty,omitempty"`
	Mode       string    `json:"mode"`
	Seed       uint64    `json:"seed"`
	Target     string    `json:"target"`
	Started    time.Time `json:"started"`
	// Ended is when the attempt was reset (zero while it runs).
	Ended   time.Time `json:"ended,omitzero"`
	Outcome string    `json:"outcome"`
	// TimeToGreenSeconds is from the start to the first passing check (0 when none passed).
	TimeToGreenSeconds float64 `json:"timeToGreenSeconds,omitempty"`
	TimeLimitSeconds   float64 `json:"timeLimitSeconds,omitempty"`
	// OverTime is set when the first passing check came after the time limit.
	OverTime      bool `json:"overTime,omitempty"`
	HintsUsed     int  `json:"hintsUsed"`
	SolutionShown bool `json:"solutionShown,omitempty"`
	Checks        int  `json:"checks"`
	// Collateral are the specs any check found broken that passed before the exercise: damage a
	// "fix" did elsewhere, even if later undone.
	Collateral []string `json:"collateral,omitempty"`
}

// Record summarises the session (ended: when it was reset; zero while it runs).
func (s *Session) Record(lab string, e *Exercise, ended time.Time) Record {
	r := Record{Lab: lab, Exercise: s.Exercise, Mode: s.Mode, Seed: s.Seed, Target: s.Targets.Target, Started: s.Started,
		Ended: ended, HintsUsed: s.HintsUsed, SolutionShown: s.SolutionShown, Checks: len(s.Checks)}
	if e != nil {
		r.Title, r.Difficulty, r.TimeLimitSeconds = e.Title, e.Difficulty, e.Duration().Seconds()
	}
	for _, c := range s.Checks {
		for _, x := range c.Collateral {
			if !slices.Contains(r.Collateral, x) {
				r.Collateral = append(r.Collateral, x)
			}
		}
	}
	sort.Strings(r.Collateral)
	switch {
	case s.Solved != nil:
		r.Outcome = OutcomeSolved
		r.TimeToGreenSeconds = s.Solved.Sub(s.Started).Round(time.Second).Seconds()
		r.OverTime = s.Solved.After(s.Deadline)
		// The solution shown before the first passing check?
		if s.SolutionShown && (s.SolutionAt == nil || !s.SolutionAt.After(*s.Solved)) {
			r.Outcome = OutcomeSolvedWithSolution
		}
	case ended.IsZero():
		r.Outcome = OutcomeInProgress
	default:
		r.Outcome = OutcomeAbandoned
	}
	return r
}

// HistoryFile keeps a lab's finished attempts (JSON lines, 0600).
func HistoryFile(labDir string) string { return filepath.Join(labDir, "train", "history.jsonl") }

// AppendHistory adds a finished attempt to the lab's history.
func AppendHistory(labDir string, r Record) error {
	if err := os.MkdirAll(filepath.Dir(HistoryFile(labDir)), 0o700); err != nil {
		return err
	}
	f, err := os.OpenFile(HistoryFile(labDir), os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	data, err := json.Marshal(r)
	if err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(append(data, '\n')); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// LoadHistory reads a lab's finished attempts, oldest first (none when it has no history).
func LoadHistory(labDir string) ([]Record, error) {
	f, err := os.Open(HistoryFile(labDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []Record
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		var r Record
		if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
			return nil, fmt.Errorf("%s line %d: %w", HistoryFile(labDir), n, err)
		}
		out = append(out, r)
	}
	return out, sc.Err()
}

// Report is what `mclab train report` writes: every attempt of every learner's lab.
type Report struct {
	APIVersion string        `json:"apiVersion"`
	Kind       string        `json:"kind"`
	Generated  time.Time     `json:"generated"`
	Summary    ReportSummary `json:"summary"`
	Attempts   []Record      `json:"attempts"`
}

// ReportSummary counts the attempts.
type ReportSummary struct {
	Learners   int `json:"learners"`
	Attempts   int `json:"attempts"`
	Solved     int `json:"solved"`
	InProgress int `json:"inProgress"`
	// MedianTimeToGreenSeconds is over the solved attempts.
	MedianTimeToGreenSeconds float64 `json:"medianTimeToGreenSeconds,omitempty"`
	WithCollateral           int     `json:"withCollateral"`
}

// NewReport builds the report of the attempts.
func NewReport(attempts []Record, now time.Time) *Report {
	if attempts == nil {
		attempts = []Record{} // "attempts": [], not null
	}
	r := &Report{APIVersion: APIVersion, Kind: "TrainReport", Generated: now.UTC(), Attempts: attempts}
	labs := map[string]bool{}
	var greens []float64
	for _, a := range attempts {
		labs[a.Lab] = true
		switch a.Outcome {
		case OutcomeSolved, OutcomeSolvedWithSolution:
			r.Summary.Solved++
			greens = append(greens, a.TimeToGreenSeconds)
		case OutcomeInProgress:
			r.Summary.InProgress++
		}
		if len(a.Collateral) > 0 {
			r.Summary.WithCollateral++
		}
	}
	r.Summary.Learners, r.Summary.Attempts = len(labs), len(attempts)
	if len(greens) > 0 {
		sort.Float64s(greens)
		r.Summary.MedianTimeToGreenSeconds = greens[len(greens)/2]
		if len(greens)%2 == 0 {
			r.Summary.MedianTimeToGreenSeconds = (greens[len(greens)/2-1] + greens[len(greens)/2]) / 2
		}
	}
	return r
}

// WriteJUnit writes the attempts as JUnit XML: a test suite per learner's lab, a test case per
// attempt, failed unless solved without the solution (the message says how it ended, with the
// collateral damage any check found).
func (r *Report) WriteJUnit(w io.Writer) error {
	suites := reporters.JUnitTestSuites{}
	byLab := map[string]*reporters.JUnitTestSuite{}
	var order []string
	for _, a := range r.Attempts {
		s, ok := byLab[a.Lab]
		if !ok {
			s = &reporters.JUnitTestSuite{Name: "mclab train " + a.Lab, Package: a.Lab, Timestamp: a.Started.UTC().Format(time.RFC3339)}
			byLab[a.Lab] = s
			order = append(order, a.Lab)
		}
		tc := reporters.JUnitTestCase{Name: fmt.Sprintf("%s (seed %d, %s)", a.Exercise, a.Seed, a.Mode), Classname: a.Lab, Status: a.Outcome, Time: a.TimeToGreenSeconds}
		detail := fmt.Sprintf("started %s, %d checks, %d hints, solution shown: %t", a.Started.UTC().Format(time.RFC3339), a.Checks, a.HintsUsed, a.SolutionShown)
		if len(a.Collateral) > 0 {
			detail += fmt.Sprintf("; collateral damage seen: %v", a.Collateral)
		}
		switch a.Outcome {
		case OutcomeSolved:
			tc.SystemOut = fmt.Sprintf("solved in %.0fs; %s", a.TimeToGreenSeconds, detail)
		case OutcomeInProgress:
			tc.Skipped = &reporters.JUnitSkipped{Message: "in progress: " + detail}
			s.Skipped++
		default:
			tc.Failure = &reporters.JUnitFailure{Type: "failed", Message: a.Outcome, Description: detail}
			s.Failures++
		}
		s.Tests++
		s.Time += a.TimeToGreenSeconds
		s.TestCases = append(s.TestCases, tc)
	}
	for _, l := range order {
		s := byLab[l]
		suites.TestSuites = append(suites.TestSuites, *s)
		suites.Tests += s.Tests
		suites.Failures += s.Failures
		suites.Disabled += s.Skipped
		suites.Time += s.Time
	}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(suites); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
