package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/train"
	"mclab.dev/mclab/scenarios"
)

type trainOptions struct {
	name      string
	exercises string
	mode      string
	seed      uint64
}

func newTrainCommand(g *globals) *cobra.Command {
	o := &trainOptions{}
	cmd := &cobra.Command{
		Use:   "train",
		Short: "Break/fix exercises on a lab, checked by the conformance suites",
		Long: `Training sandboxes: an exercise breaks the lab the way operators break real meshes (a remote
secret missing, a network label gone, a gateway without its Gateway, ...) and states only the symptom.
You diagnose and fix it with kubectl and mclab; ` + "`train check`" + ` runs the conformance suites and passes
when every spec that passed before the exercise passes again, so a "fix" that weakens the mesh
elsewhere fails, named. ` + "`train reset`" + ` puts every touched object back and proves it.

Built-in exercises are in scenarios/exercises; --exercises DIR adds your own (kind: Exercise).`,
		Example: `  mclab train list --name lab
  mclab train start remote-secret-missing --name lab
  mclab train check --name lab
  mclab train hint --name lab
  mclab train reset --name lab`,
	}
	cmd.PersistentFlags().StringVar(&o.name, "name", "", "the lab")
	cmd.PersistentFlags().StringVar(&o.exercises, "exercises", "", "a folder of your own exercise files, added to the built-in ones")
	start := &cobra.Command{
		Use: "start EXERCISE",
		Example: `  mclab train start remote-secret-missing --name lab
  mclab train start gateway-network-label --name lab --mode exam --seed 7
  mclab train start my-exercise --name lab --exercises ./my-exercises`,
		Short: "Verify the lab is clean, inject the exercise's faults and print its ticket",
		Args:  cobra.ExactArgs(1),
		RunE:  func(cmd *cobra.Command, args []string) error { return o.start(cmd.Context(), g, args[0]) },
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return exerciseNames(o)(cmd, args, s)
		},
	}
	start.Flags().StringVar(&o.mode, "mode", train.ModeGuided, "guided (check shows the diagnosis), challenge (only which specs fail) or exam (no hints)")
	start.Flags().Uint64Var(&o.seed, "seed", 0, "draws the clusters the faults hit (default: random; the same seed gives the same exercise)")
	cmd.AddCommand(
		&cobra.Command{Use: "list", Short: "The exercises, and whether the lab can run each", Example: "  mclab train list --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.list(cmd.Context(), g) }},
		start,
		&cobra.Command{Use: "status", Short: "The running exercise: ticket, time left, hints used, checks", Example: "  mclab train status --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.status(g) }},
		&cobra.Command{Use: "check", Short: "Run the suites: solved when every spec that passed before passes again", Example: "  mclab train check --name lab   # exit 0 solved, 1 not yet", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.check(cmd.Context(), g) }},
		&cobra.Command{Use: "hint", Short: "The next hint (vague first)", Example: "  mclab train hint --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.hint(cmd.Context(), g) }},
		&cobra.Command{Use: "solution", Short: "The reference fix (ends the scoring)", Example: "  mclab train solution --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.solution(g) }},
		&cobra.Command{Use: "reset", Short: "Put every touched object back, converge the lab and prove the baseline", Example: "  mclab train reset --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.reset(cmd.Context(), g) }},
		newTrainSelftestCommand(g, o),
		newTrainReportCommand(g, o),
	)
	return cmd
}

// catalogue loads the built-in exercises and the user's.
func (o *trainOptions) catalogue() (map[string]*train.Exercise, error) {
	sub, err := fs.Sub(scenarios.Exercises, "exercises")
	if err != nil {
		return nil, err
	}
	all, err := train.Load(sub)
	if err != nil {
		return nil, err
	}
	if o.exercises != "" {
		mine, err := train.Load(os.DirFS(o.exercises))
		if err != nil {
			return nil, &exitError{code: 2, err: err}
		}
		for k, v := range mine {
			all[k] = v
		}
	}
	return all, nil
}

func sortedExercises(all map[string]*train.Exercise) []*train.Exercise {
	var out []*train.Exercise
	for _, e := range all {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// trainLab is an opened lab, with what the commands need.
type trainLab struct {
	name, dir, kubeconfig string
	rec                   *labRecord
	clients               train.Clients
}

type labRecord struct {
	p         provider.Provider
	dataPlane bool
}

func (o *trainOptions) open(ctx context.Context, g *globals) (*trainLab, *train.Session, error) {
	if o.name == "" {
		return nil, nil, &exitError{code: 2, err: errors.New("give --name LAB (`mclab list` shows the labs)")}
	}
	m, err := g.manager(false)
	if err != nil {
		return nil, nil, err
	}
	rec, p, err := m.Open(o.name)
	if err != nil {
		return nil, nil, &exitError{code: 2, err: err}
	}
	l := &trainLab{name: o.name, dir: m.Store.Dir(o.name), rec: &labRecord{p: p, dataPlane: p.Capabilities().RunsContainers}, clients: train.Clients{}}
	l.kubeconfig = filepath.Join(l.dir, "kubeconfig")
	for _, c := range rec.Scenario.Clusters {
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err != nil {
			return nil, nil, err
		}
		cl, err := kube.NewClientFromKubeconfig(c.Name, kc)
		if err != nil {
			return nil, nil, err
		}
		l.clients[c.Name] = cl.Dynamic
	}
	s, err := train.LoadSession(l.dir)
	if errors.Is(err, os.ErrNotExist) {
		s = nil
	} else if err != nil {
		return nil, nil, err
	}
	return l, s, nil
}

func (o *trainOptions) list(ctx context.Context, g *globals) error {
	all, err := o.catalogue()
	if err != nil {
		return err
	}
	var fits func(e *train.Exercise) string
	if o.name != "" {
		m, err := g.manager(false)
		if err != nil {
			return err
		}
		rec, p, err := m.Open(o.name)
		if err != nil {
			return &exitError{code: 2, err: err}
		}
		fits = func(e *train.Exercise) string { return e.Fits(rec.Scenario, p.Capabilities().RunsContainers) }
	}
	w := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "EXERCISE\tDIFFICULTY\tTIME\tTITLE\tON THIS LAB")
	for _, e := range sortedExercises(all) {
		on := "-"
		if fits != nil {
			on = "yes"
			if why := fits(e); why != "" {
				on = "no: " + why
			}
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Difficulty, e.TimeLimit, e.Title, on)
	}
	return w.Flush()
}

// verifyRun is one `mclab verify` of the lab, in a process of its own (Ginkgo runs its suites once
// per process).
type verifyRun struct {
	specs  train.Specs
	output string
	code   int
	dir    string
}

func runVerify(ctx context.Context, g *globals, name, dir string) (*verifyRun, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	// dir is under the lab's own state (train/...): an earlier run's reports there (also one an older
	// mclab wrote, without the marker) are replaced, so verify finds the directory new.
	if err := os.RemoveAll(dir); err != nil {
		return nil, err
	}
	args := []string{"verify", "--name", name, "--report-dir", dir}
	if g.stateDir != "" {
		args = append(args, "--state-dir", g.stateDir)
	}
	cmd := osexec.CommandContext(ctx, self, args...)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err = cmd.Run()
	r := &verifyRun{output: out.String(), dir: dir}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		return nil, err
	}
	specs, err := train.ReadSpecs(filepath.Join(dir, "ginkgo.json"))
	if err != nil {
		return nil, fmt.Errorf("verify wrote no spec report (exit %d): %v\n%s", r.code, err, r.output)
	}
	r.specs = specs
	return r, nil
}

// verdictBlock is the verdict part of verify's output.
func verdictBlock(out string) string {
	if i := strings.Index(out, "Verdict:"); i >= 0 {
		return strings.TrimSpace(out[i:])
	}
	return strings.TrimSpace(out)
}

func (o *trainOptions) start(ctx context.Context, g *globals, name string) error {
	all, err := o.catalogue()
	if err != nil {
		return err
	}
	e, ok := all[name]
	if !ok {
		var names []string
		for _, x := range sortedExercises(all) {
			names = append(names, x.Name)
		}
		return &exitError{code: 2, err: fmt.Errorf("no exercise %q; have %s (`mclab train list`)", name, strings.Join(names, ", "))}
	}
	if !slicesContains(train.Modes, o.mode) {
		return &exitError{code: 2, err: fmt.Errorf("--mode %q: want %s", o.mode, strings.Join(train.Modes, ", "))}
	}
	l, s, err := o.open(ctx, g)
	if err != nil {
		return err
	}
	if s != nil {
		return &exitError{code: 2, err: fmt.Errorf("exercise %s is running on %s: `mclab train reset --name %s` first", s.Exercise, l.name, l.name)}
	}
	m, _ := g.manager(false)
	rec, _, _ := m.Open(l.name)
	if why := e.Fits(rec.Scenario, l.rec.dataPlane); why != "" {
		return &exitError{code: 2, err: fmt.Errorf("exercise %s cannot run on %s: %s", e.Name, l.name, why)}
	}
	seed := o.seed
	if seed == 0 {
		seed = rand.Uint64()%100000 + 1
	}
	targets, err := e.Targets(rec.Scenario, l.name, l.kubeconfig, seed)
	if err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "Verifying that %s is clean before the exercise ...\n", l.name)
	base, err := runVerify(ctx, g, l.name, filepath.Join(l.dir, "train", "baseline"))
	if err != nil {
		return err
	}
	if base.code != 0 {
		return &exitError{code: 2, err: fmt.Errorf("%s does not verify clean, so an exercise could not be told apart from what is already broken:\n%s\n(`mclab up --name %s` converges it)", l.name, verdictBlock(base.output), l.name)}
	}
	now := time.Now().UTC()
	s = &train.Session{Exercise: e.Name, Seed: seed, Mode: o.mode, Targets: targets, Started: now, Deadline: now.Add(e.Duration()), Baseline: base.specs.Passed()}
	if err := s.Save(l.dir); err != nil {
		return err
	}
	start := time.Now()
	if err := train.Inject(ctx, e, s, l.dir, l.clients); err != nil {
		return fmt.Errorf("injecting %s: %w; `mclab train reset --name %s` puts back what was changed", e.Name, err, l.name)
	}
	fmt.Fprintf(g.streams.Err, "Injected in %s.\n", time.Since(start).Round(time.Millisecond))
	printTicket(g.streams.Out, e, s)
	return nil
}

func printTicket(w io.Writer, e *train.Exercise, s *train.Session) {
	// The title names the cause; the ticket only the symptom.
	fmt.Fprintf(w, "Exercise %s (%s, %s mode, seed %d)\n\n", e.Name, e.Difficulty, s.Mode, s.Seed)
	fmt.Fprintf(w, "Ticket: %s\n\n", e.RenderTicket(s.Targets))
	fmt.Fprintf(w, "Time limit: %s (until %s). Kubeconfig: %s (contexts %s-<cluster>).\n", e.TimeLimit, s.Deadline.Local().Format("15:04"), s.Targets.Kubeconfig, s.Targets.Lab)
	fmt.Fprintf(w, "Then: mclab train check --name %s   (hint, solution, reset, status)\n", s.Targets.Lab)
}

func (o *trainOptions) session(ctx context.Context, g *globals) (*trainLab, *train.Session, *train.Exercise, error) {
	l, s, err := o.open(ctx, g)
	if err != nil {
		return nil, nil, nil, err
	}
	if s == nil {
		return nil, nil, nil, &exitError{code: 2, err: fmt.Errorf("no exercise is running on %s (`mclab train start EXERCISE --name %s`)", l.name, l.name)}
	}
	all, err := o.catalogue()
	if err != nil {
		return nil, nil, nil, err
	}
	e, ok := all[s.Exercise]
	if !ok {
		return nil, nil, nil, fmt.Errorf("exercise %s of the session is not in the catalogue (give --exercises DIR)", s.Exercise)
	}
	return l, s, e, nil
}

func (o *trainOptions) status(g *globals) error {
	l, s, e, err := o.session(context.Background(), g)
	if err != nil {
		return err
	}
	printTicket(g.streams.Out, e, s)
	left := time.Until(s.Deadline).Round(time.Second)
	fmt.Fprintf(g.streams.Out, "\nTime left: %s. Hints used: %d of %d. Checks: %d.", left, s.HintsUsed, hintCount(e, s), len(s.Checks))
	if s.Solved != nil {
		fmt.Fprintf(g.streams.Out, " Solved after %s.", s.Solved.Sub(s.Started).Round(time.Second))
	}
	fmt.Fprintln(g.streams.Out)
	_ = l
	return nil
}

func (o *trainOptions) check(ctx context.Context, g *globals) error {
	l, s, e, err := o.session(ctx, g)
	if err != nil {
		return err
	}
	run, err := runVerify(ctx, g, l.name, filepath.Join(l.dir, "train", fmt.Sprintf("check-%d", len(s.Checks)+1)))
	if err != nil {
		return err
	}
	rec := train.Judge(e, s.Baseline, run.specs)
	rec.At = time.Now().UTC()
	s.Checks = append(s.Checks, rec)
	if rec.Passed && s.Solved == nil {
		s.Solved = &rec.At
	}
	if err := s.Save(l.dir); err != nil {
		return err
	}
	out := g.streams.Out
	if rec.Passed {
		fmt.Fprintf(out, "Solved: every spec that passed before the exercise passes again (%s after the start, hints used: %d).\n", rec.At.Sub(s.Started).Round(time.Second), s.HintsUsed)
		fmt.Fprintf(out, "`mclab train reset --name %s` puts the lab back for the next exercise.\n", l.name)
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
	if s.Mode == train.ModeGuided {
		fmt.Fprintf(out, "\n%s\n", verdictBlock(run.output))
	}
	return &exitError{code: 1, err: fmt.Errorf("exercise %s not solved", e.Name)}
}

func (o *trainOptions) hint(ctx context.Context, g *globals) error {
	l, s, e, err := o.session(ctx, g)
	if err != nil {
		return err
	}
	if s.Mode == train.ModeExam {
		return &exitError{code: 2, err: errors.New("exam mode gives no hints")}
	}
	hints := e.RenderHints(s.Targets)
	if s.Mode == train.ModeGuided {
		// Guided mode's first rung is the verdict's own diagnosis: the last check's, else a verify run
		// now.
		first := "(mclab verify names no failing spec of this exercise now: run `mclab train check`)"
		if s.HintsUsed == 0 {
			dir := filepath.Join(l.dir, "train", fmt.Sprintf("check-%d", len(s.Checks)))
			if len(s.Checks) == 0 {
				fmt.Fprintf(g.streams.Err, "Running mclab verify for its diagnosis ...\n")
				dir = filepath.Join(l.dir, "train", "hint")
				if _, err := runVerify(ctx, g, l.name, dir); err != nil {
					return err
				}
			}
			failures, err := train.ReadFailures(filepath.Join(dir, "ginkgo.json"))
			if err != nil {
				return err
			}
			if h := train.VerdictHint(e, failures); h != "" {
				first = h
			}
		}
		hints = append([]string{first}, hints...)
	}
	if s.HintsUsed >= len(hints) {
		fmt.Fprintf(g.streams.Out, "No more hints (%d given). `mclab train solution --name %s` shows the fix.\n", len(hints), l.name)
		return nil
	}
	fmt.Fprintf(g.streams.Out, "Hint %d of %d: %s\n", s.HintsUsed+1, len(hints), hints[s.HintsUsed])
	s.HintsUsed++
	return s.Save(l.dir)
}

func (o *trainOptions) solution(g *globals) error {
	l, s, e, err := o.session(context.Background(), g)
	if err != nil {
		return err
	}
	s.SolutionShown = true
	if s.SolutionAt == nil {
		now := time.Now().UTC()
		s.SolutionAt = &now
	}
	if err := s.Save(l.dir); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Out, "Cause: %s\nSource: %s\nFix:\n", e.Title, e.Source)
	for _, c := range e.RenderSolution(s.Targets) {
		fmt.Fprintf(g.streams.Out, "  %s\n", c)
	}
	return nil
}

func (o *trainOptions) reset(ctx context.Context, g *globals) error {
	l, s, err := o.open(ctx, g)
	if err != nil {
		return err
	}
	if s == nil {
		fmt.Fprintf(g.streams.Err, "No exercise is running on %s; nothing to reset.\n", l.name)
		return nil
	}
	start := time.Now()
	var e *train.Exercise
	if all, err := o.catalogue(); err == nil {
		e = all[s.Exercise]
	}
	if err := resetLab(ctx, g, l, s, e); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Out, "Reset %s in %s: every touched object is as before, and the baseline passes.\n", l.name, time.Since(start).Round(100*time.Millisecond))
	return nil
}

// resetLab converges the lab with its scenario (what a learner's fix may have changed elsewhere), puts
// every touched object back as it was, then proves it: the snapshot of the touched objects equals the
// one taken at start, and every baseline spec passes.
func resetLab(ctx context.Context, g *globals, l *trainLab, s *train.Session, e *train.Exercise) error {
	m, err := g.manager(false)
	if err != nil {
		return err
	}
	rec, _, err := m.Open(l.name)
	if err != nil {
		return err
	}
	m.Out = io.Discard
	m.SkipIstio = !rec.Istio
	// The lab's contexts are in the user's kubeconfig since its up; a reset does not switch contexts.
	m.UserKubeconfig = nil
	if err := m.Up(ctx, rec.Scenario, l.name); err != nil {
		return fmt.Errorf("converging %s: %w", l.name, err)
	}
	if err := train.Revert(ctx, s, l.clients); err != nil {
		return err
	}
	if diff, err := train.SnapshotDiff(ctx, s, l.clients); err != nil {
		return err
	} else if len(diff) > 0 {
		return fmt.Errorf("reset incomplete: %s", strings.Join(diff, "; "))
	}
	var run *verifyRun
	for i := 0; i < 10; i++ {
		if run, err = runVerify(ctx, g, l.name, filepath.Join(l.dir, "train", "reset")); err != nil {
			return err
		}
		if rec := train.Judge(&train.Exercise{}, s.Baseline, run.specs); rec.Passed {
			// The attempt goes to the lab's history (what `train report` collects), then the
			// session ends.
			if err := train.AppendHistory(l.dir, s.Record(l.name, e, time.Now().UTC())); err != nil {
				return err
			}
			return train.Clear(l.dir)
		}
		time.Sleep(500 * time.Millisecond)
	}
	return fmt.Errorf("after the reset, the baseline does not pass:\n%s", verdictBlock(run.output))
}

// hintCount is how many hints the session offers: guided mode adds the verdict's diagnosis first.
func hintCount(e *train.Exercise, s *train.Session) int {
	if s.Mode == train.ModeGuided {
		return len(e.Hints) + 1
	}
	return len(e.Hints)
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
