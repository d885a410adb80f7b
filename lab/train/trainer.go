package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/scenarios"
)

// Trainer runs the training flow on the labs of a lab manager: start, status, check, hint, solution,
// reset, and the selftest that proves every exercise. It writes what a learner reads on Out and progress
// on Err; the CLI only parses flags and maps the errors to exit codes.
type Trainer struct {
	// NewManager gives a lab manager per use (a reset adjusts the one it converges with).
	NewManager func() (*lab.Manager, error)
	// Exercises is a folder of the user's own exercise files, added to the built-in ones ("" none).
	Exercises string
	Out, Err  io.Writer
	// Verify runs `mclab verify` of a lab with its reports in dir, in a process of its own.
	Verify func(ctx context.Context, lab, dir string) (*VerifyRun, error)
	// Self is the mclab binary (solutions find it on PATH); StateDir, when set, is passed to them as
	// MCLAB_STATE_DIR.
	Self, StateDir string
}

// InputError is bad input: an unknown exercise or lab, a mode, a flag value (exit 2).
type InputError struct{ Err error }

func (e *InputError) Error() string { return e.Err.Error() }
func (e *InputError) Unwrap() error { return e.Err }

// FindingError is a finding: an exercise not solved, a selftest run that failed (exit 1).
type FindingError struct{ Err error }

func (e *FindingError) Error() string { return e.Err.Error() }
func (e *FindingError) Unwrap() error { return e.Err }

// catalogue loads the built-in exercises and the user's.
func (t *Trainer) Catalogue() (map[string]*Exercise, error) {
	sub, err := fs.Sub(scenarios.Exercises, "exercises")
	if err != nil {
		return nil, err
	}
	all, err := Load(sub)
	if err != nil {
		return nil, err
	}
	if t.Exercises != "" {
		mine, err := Load(os.DirFS(t.Exercises))
		if err != nil {
			return nil, &InputError{err}
		}
		for k, v := range mine {
			all[k] = v
		}
	}
	return all, nil
}

func SortedExercises(all map[string]*Exercise) []*Exercise {
	var out []*Exercise
	for _, e := range all {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// trainLab is an opened lab, with what the commands need.
type Lab struct {
	Name, Dir, Kubeconfig string
	// DataPlane: the provider runs containers.
	DataPlane bool
	Clients   Clients
}

type labRecord struct {
	p         provider.Provider
	dataPlane bool
}

func (t *Trainer) Open(ctx context.Context, name string) (*Lab, *Session, error) {
	if name == "" {
		return nil, nil, &InputError{errors.New("give --name LAB (`mclab list` shows the labs)")}
	}
	m, err := t.NewManager()
	if err != nil {
		return nil, nil, err
	}
	rec, p, err := m.Open(name)
	if err != nil {
		return nil, nil, &InputError{err}
	}
	l := &Lab{Name: name, Dir: m.Store.Dir(name), DataPlane: p.Capabilities().RunsContainers, Clients: Clients{}}
	l.Kubeconfig = filepath.Join(l.Dir, "kubeconfig")
	for _, c := range rec.Scenario.Clusters {
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err != nil {
			return nil, nil, err
		}
		cl, err := kube.NewClientFromKubeconfig(c.Name, kc)
		if err != nil {
			return nil, nil, err
		}
		l.Clients[c.Name] = cl.Dynamic
	}
	s, err := LoadSession(l.Dir)
	if errors.Is(err, os.ErrNotExist) {
		s = nil
	} else if err != nil {
		return nil, nil, err
	}
	return l, s, nil
}

// VerifyRun is one `mclab verify` of the lab, in a process of its own (Ginkgo runs its suites once
// per process): its spec results, output and exit code.
type VerifyRun struct {
	Specs  Specs
	Output string
	Code   int
	Dir    string
}

// verdictBlock is the verdict part of verify's output.
func VerdictBlock(out string) string {
	if i := strings.Index(out, "Verdict:"); i >= 0 {
		return strings.TrimSpace(out[i:])
	}
	return strings.TrimSpace(out)
}

// Start verifies that lab is clean, injects exercise name's faults (mode, seed: 0 draws one) and prints
// its ticket on Out.
func (t *Trainer) Start(ctx context.Context, lab, name, mode string, seed uint64) error {
	all, err := t.Catalogue()
	if err != nil {
		return err
	}
	e, ok := all[name]
	if !ok {
		var names []string
		for _, x := range SortedExercises(all) {
			names = append(names, x.Name)
		}
		return &InputError{fmt.Errorf("no exercise %q; have %s (`mclab train list`)", name, strings.Join(names, ", "))}
	}
	if !slices.Contains(Modes, mode) {
		return &InputError{fmt.Errorf("--mode %q: want %s", mode, strings.Join(Modes, ", "))}
	}
	l, s, err := t.Open(ctx, lab)
	if err != nil {
		return err
	}
	if s != nil {
		return &InputError{fmt.Errorf("exercise %s is running on %s: `mclab train reset --name %s` first", s.Exercise, l.Name, l.Name)}
	}
	m, _ := t.NewManager()
	rec, _, _ := m.Open(l.Name)
	if why := e.Fits(rec.Scenario, l.DataPlane); why != "" {
		return &InputError{fmt.Errorf("exercise %s cannot run on %s: %s", e.Name, l.Name, why)}
	}
	if seed == 0 {
		seed = rand.Uint64()%100000 + 1
	}
	targets, err := e.Targets(rec.Scenario, l.Name, l.Kubeconfig, seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(t.Err, "Verifying that %s is clean before the exercise ...\n", l.Name)
	base, err := t.Verify(ctx, l.Name, filepath.Join(l.Dir, "train", "baseline"))
	if err != nil {
		return err
	}
	if base.Code != 0 {
		return &InputError{fmt.Errorf("%s does not verify clean, so an exercise could not be told apart from what is already broken:\n%s\n(`mclab up --name %s` converges it)", l.Name, VerdictBlock(base.Output), l.Name)}
	}
	now := time.Now().UTC()
	s = &Session{Exercise: e.Name, Seed: seed, Mode: mode, Targets: targets, Started: now, Deadline: now.Add(e.Duration()), Baseline: base.Specs.Passed()}
	if err := s.Save(l.Dir); err != nil {
		return err
	}
	start := time.Now()
	if err := Inject(ctx, e, s, l.Dir, l.Clients); err != nil {
		return fmt.Errorf("injecting %s: %w; `mclab train reset --name %s` puts back what was changed", e.Name, err, l.Name)
	}
	fmt.Fprintf(t.Err, "Injected in %s.\n", time.Since(start).Round(time.Millisecond))
	printTicket(t.Out, e, s)
	return nil
}

func printTicket(w io.Writer, e *Exercise, s *Session) {
	// The title names the cause; the ticket only the symptom.
	fmt.Fprintf(w, "Exercise %s (%s, %s mode, seed %d)\n\n", e.Name, e.Difficulty, s.Mode, s.Seed)
	fmt.Fprintf(w, "Ticket: %s\n\n", e.RenderTicket(s.Targets))
	fmt.Fprintf(w, "Time limit: %s (until %s). Kubeconfig: %s (contexts %s-<cluster>).\n", e.TimeLimit, s.Deadline.Local().Format("15:04"), s.Targets.Kubeconfig, s.Targets.Lab)
	fmt.Fprintf(w, "Then: mclab train check --name %s   (hint, solution, reset, status)\n", s.Targets.Lab)
}

func (t *Trainer) session(ctx context.Context, lab string) (*Lab, *Session, *Exercise, error) {
	l, s, err := t.Open(ctx, lab)
	if err != nil {
		return nil, nil, nil, err
	}
	if s == nil {
		return nil, nil, nil, &InputError{fmt.Errorf("no exercise is running on %s (`mclab train start EXERCISE --name %s`)", l.Name, l.Name)}
	}
	all, err := t.Catalogue()
	if err != nil {
		return nil, nil, nil, err
	}
	e, ok := all[s.Exercise]
	if !ok {
		return nil, nil, nil, fmt.Errorf("exercise %s of the session is not in the catalogue (give --exercises DIR)", s.Exercise)
	}
	return l, s, e, nil
}

// Status prints the running exercise: ticket, time left, hints used, checks.
func (t *Trainer) Status(lab string) error {
	_, s, e, err := t.session(context.Background(), lab)
	if err != nil {
		return err
	}
	printTicket(t.Out, e, s)
	st := statusOf(e, s, time.Now())
	fmt.Fprintf(t.Out, "\nTime left: %s. Hints used: %d of %d. Checks: %d.", st.TimeLeft, st.HintsUsed, st.Hints, len(st.Checks))
	if s.Solved != nil {
		fmt.Fprintf(t.Out, " Solved after %s.", s.Solved.Sub(s.Started).Round(time.Second))
	}
	fmt.Fprintln(t.Out)
	return nil
}

// Status is the running exercise as `train status -o json|yaml` prints it: what the text shows, as
// data. It carries the ticket (the symptom), never the exercise's title (it names the cause), the
// solution or the objects the faults touched (their pre-images may be secrets).
type Status struct {
	Lab        string    `json:"lab"`
	Exercise   string    `json:"exercise"`
	Difficulty string    `json:"difficulty"`
	Mode       string    `json:"mode"`
	Seed       uint64    `json:"seed"`
	Ticket     string    `json:"ticket"`
	Kubeconfig string    `json:"kubeconfig"`
	TimeLimit  string    `json:"timeLimit"`
	Started    time.Time `json:"started"`
	Deadline   time.Time `json:"deadline"`
	// TimeLeft is the time to the deadline when the status was read (negative past it), e.g. 14m2s.
	TimeLeft      string        `json:"timeLeft"`
	HintsUsed     int           `json:"hintsUsed"`
	Hints         int           `json:"hints"`
	SolutionShown bool          `json:"solutionShown,omitempty"`
	Checks        []CheckRecord `json:"checks"`
	Solved        *time.Time    `json:"solved,omitempty"`
}

// StatusOf reads the running exercise of lab (an InputError when none runs).
func (t *Trainer) StatusOf(lab string) (*Status, error) {
	_, s, e, err := t.session(context.Background(), lab)
	if err != nil {
		return nil, err
	}
	return statusOf(e, s, time.Now()), nil
}

func statusOf(e *Exercise, s *Session, now time.Time) *Status {
	checks := s.Checks
	if checks == nil {
		checks = []CheckRecord{}
	}
	return &Status{
		Lab: s.Targets.Lab, Exercise: e.Name, Difficulty: e.Difficulty, Mode: s.Mode, Seed: s.Seed,
		Ticket: e.RenderTicket(s.Targets), Kubeconfig: s.Targets.Kubeconfig, TimeLimit: e.TimeLimit,
		Started: s.Started, Deadline: s.Deadline, TimeLeft: s.Deadline.Sub(now).Round(time.Second).String(),
		HintsUsed: s.HintsUsed, Hints: hintCount(e, s), SolutionShown: s.SolutionShown, Checks: checks, Solved: s.Solved,
	}
}

// Check runs the suites: solved when every spec that passed before passes again (a FindingError when not).
func (t *Trainer) Check(ctx context.Context, lab string) error {
	l, s, e, err := t.session(ctx, lab)
	if err != nil {
		return err
	}
	run, err := t.Verify(ctx, l.Name, filepath.Join(l.Dir, "train", fmt.Sprintf("check-%d", len(s.Checks)+1)))
	if err != nil {
		return err
	}
	rec := Judge(e, s.Baseline, run.Specs)
	rec.At = time.Now().UTC()
	s.Checks = append(s.Checks, rec)
	if rec.Passed && s.Solved == nil {
		s.Solved = &rec.At
	}
	if err := s.Save(l.Dir); err != nil {
		return err
	}
	out := t.Out
	if rec.Passed {
		fmt.Fprintf(out, "Solved: every spec that passed before the exercise passes again (%s after the start, hints used: %d).\n", rec.At.Sub(s.Started).Round(time.Second), s.HintsUsed)
		fmt.Fprintf(out, "`mclab train reset --name %s` puts the lab back for the next exercise.\n", l.Name)
		return nil
	}
	if len(rec.StillFailing) > 0 {
		fmt.Fprintf(out, "Not solved yet; still failing:\n")
		for _, f := range rec.StillFailing {
			fmt.Fprintf(out, "  ✗ %s\n", f)
		}
	}
	if len(rec.Collateral) > 0 {
		fmt.Fprintf(out, "Collateral damage: these passed before the exercise and fail now (a fix must not weaken the mesh):\n")
		for _, f := range rec.Collateral {
			fmt.Fprintf(out, "  ✗ %s\n", f)
		}
	}
	if s.Mode == ModeGuided {
		fmt.Fprintf(out, "\n%s\n", VerdictBlock(run.Output))
	}
	return &FindingError{fmt.Errorf("exercise %s not solved", e.Name)}
}

// Hint prints the next hint (vague first).
func (t *Trainer) Hint(ctx context.Context, lab string) error {
	l, s, e, err := t.session(ctx, lab)
	if err != nil {
		return err
	}
	if s.Mode == ModeExam {
		return &InputError{errors.New("exam mode gives no hints")}
	}
	hints := e.RenderHints(s.Targets)
	if s.Mode == ModeGuided {
		// Guided mode's first rung is the verdict's own diagnosis: the last check's, else a verify run
		// now.
		first := "(mclab verify names no failing spec of this exercise now: run `mclab train check`)"
		if s.HintsUsed == 0 {
			dir := filepath.Join(l.Dir, "train", fmt.Sprintf("check-%d", len(s.Checks)))
			if len(s.Checks) == 0 {
				fmt.Fprintf(t.Err, "Running mclab verify for its diagnosis ...\n")
				dir = filepath.Join(l.Dir, "train", "hint")
				if _, err := t.Verify(ctx, l.Name, dir); err != nil {
					return err
				}
			}
			failures, err := ReadFailures(filepath.Join(dir, "ginkgo.json"))
			if err != nil {
				return err
			}
			if h := VerdictHint(e, failures); h != "" {
				first = h
			}
		}
		hints = append([]string{first}, hints...)
	}
	if s.HintsUsed >= len(hints) {
		fmt.Fprintf(t.Out, "No more hints (%d given). `mclab train solution --name %s` shows the fix.\n", len(hints), l.Name)
		return nil
	}
	fmt.Fprintf(t.Out, "Hint %d of %d: %s\n", s.HintsUsed+1, len(hints), hints[s.HintsUsed])
	s.HintsUsed++
	return s.Save(l.Dir)
}

// Solution prints the reference fix (it ends the scoring).
func (t *Trainer) Solution(lab string) error {
	l, s, e, err := t.session(context.Background(), lab)
	if err != nil {
		return err
	}
	s.SolutionShown = true
	if s.SolutionAt == nil {
		now := time.Now().UTC()
		s.SolutionAt = &now
	}
	if err := s.Save(l.Dir); err != nil {
		return err
	}
	fmt.Fprintf(t.Out, "Cause: %s\nSource: %s\nFix:\n", e.Title, e.Source)
	for _, c := range e.RenderSolution(s.Targets) {
		fmt.Fprintf(t.Out, "  %s\n", c)
	}
	return nil
}

// Reset puts every touched object back, converges the lab and proves the baseline.
func (t *Trainer) Reset(ctx context.Context, lab string) error {
	l, s, err := t.Open(ctx, lab)
	if err != nil {
		return err
	}
	if s == nil {
		fmt.Fprintf(t.Err, "No exercise is running on %s; nothing to reset.\n", l.Name)
		return nil
	}
	start := time.Now()
	var e *Exercise
	if all, err := t.Catalogue(); err == nil {
		e = all[s.Exercise]
	}
	if err := t.resetLab(ctx, l, s, e); err != nil {
		return err
	}
	fmt.Fprintf(t.Out, "Reset %s in %s: every touched object is as before, and the baseline passes.\n", l.Name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// resetLab converges the lab with its scenario (what a learner's fix may have changed elsewhere), puts
// every touched object back as it was, then proves it: the snapshot of the touched objects equals the
// one taken at start, and every baseline spec passes.
func (t *Trainer) resetLab(ctx context.Context, l *Lab, s *Session, e *Exercise) error {
	m, err := t.NewManager()
	if err != nil {
		return err
	}
	rec, _, err := m.Open(l.Name)
	if err != nil {
		return err
	}
	m.Out = io.Discard
	m.SkipIstio = !rec.Istio
	// The lab's contexts are in the user's kubeconfig since its up; a reset does not switch contexts.
	m.UserKubeconfig = nil
	if err := m.Up(ctx, rec.Scenario, l.Name); err != nil {
		return fmt.Errorf("converging %s: %w", l.Name, err)
	}
	if err := Revert(ctx, s, l.Clients); err != nil {
		return err
	}
	if diff, err := SnapshotDiff(ctx, s, l.Clients); err != nil {
		return err
	} else if len(diff) > 0 {
		return fmt.Errorf("reset incomplete: %s", strings.Join(diff, "; "))
	}
	var run *VerifyRun
	for i := 0; i < 10; i++ {
		if run, err = t.Verify(ctx, l.Name, filepath.Join(l.Dir, "train", "reset")); err != nil {
			return err
		}
		if rec := Judge(&Exercise{}, s.Baseline, run.Specs); rec.Passed {
			// The attempt goes to the lab's history (what `train report` collects), then the
			// session ends.
			if err := AppendHistory(l.Dir, s.Record(l.Name, e, time.Now().UTC())); err != nil {
				return err
			}
			return Clear(l.Dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("after the reset, the baseline does not pass:\n%s", VerdictBlock(run.Output))
}

// hintCount is how many hints the session offers: guided mode adds the verdict's diagnosis first.
func hintCount(e *Exercise, s *Session) int {
	if s.Mode == ModeGuided {
		return len(e.Hints) + 1
	}
	return len(e.Hints)
}
