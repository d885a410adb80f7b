package cli

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/train"
)

type selftestOptions struct {
	seeds    int
	provider string
	keep     bool
	parallel int
}

func newTrainSelftestCommand(g *globals, o *trainOptions) *cobra.Command {
	so := &selftestOptions{}
	cmd := &cobra.Command{
		Use: "selftest [EXERCISE...]",
		Example: `  mclab train selftest                                 # every exercise, 3 seeds, on local labs
  mclab train selftest remote-secret-missing --seeds 1 --keep
  mclab train selftest --parallel 2 --exercises ./my-exercises`,
		Short: "Prove every exercise on real labs: inject, exactly its specs fail and verify names the cause, the solution fixes it, reset restores the baseline",
		Long: `For every exercise (or those named) and every seed: on a lab that fits (created once per topology and
model, on the local provider by default), the baseline verifies clean; the faults are injected; exactly
the exercise's specs fail and verify prints its diagnosis; the reference solution, run as a learner would
type it (sh, KUBECONFIG set to the lab's, mclab on PATH), makes every baseline spec pass again; the reset
puts every touched object back and the baseline passes. Exit 1 when any step fails.`,
		RunE:              func(cmd *cobra.Command, args []string) error { return so.run(cmd.Context(), g, o, args) },
		ValidArgsFunction: exerciseNames(o),
	}
	cmd.Flags().IntVar(&so.seeds, "seeds", 3, "seeds per exercise (1..N)")
	cmd.Flags().StringVar(&so.provider, "provider", "local", "provider of the labs selftest creates")
	cmd.Flags().BoolVar(&so.keep, "keep", false, "keep the labs selftest created")
	cmd.Flags().IntVar(&so.parallel, "parallel", 1, "labs whose exercises run side by side (each lab runs its exercises in order)")
	return cmd
}

// selftestLab is the lab an exercise's selftest runs on: a composed scenario per topology and model.
func selftestLab(e *train.Exercise) (scenario.Topology, scenario.Model, int) {
	topo, model, n := scenario.MultiNetwork, scenario.MultiPrimary, 2
	if len(e.Requires.Topologies) > 0 {
		topo = e.Requires.Topologies[0]
	}
	if len(e.Requires.Models) > 0 {
		model = e.Requires.Models[0]
	}
	if e.Requires.MinClusters > n {
		n = e.Requires.MinClusters
	}
	return topo, model, n
}

// selftestLabName names the lab selftest creates for a topology, model and cluster count.
func selftestLabName(topo scenario.Topology, model scenario.Model, n int) string {
	if n != 2 {
		return fmt.Sprintf("selftest-%s-%s-%d", topo, model, n)
	}
	return fmt.Sprintf("selftest-%s-%s", topo, model)
}

func (so *selftestOptions) run(ctx context.Context, g *globals, o *trainOptions, names []string) error {
	if so.seeds < 1 {
		return &exitError{code: 2, err: fmt.Errorf("--seeds %d: give 1 or more (each seed draws the clusters an exercise acts on)", so.seeds)}
	}
	if so.parallel < 1 {
		return &exitError{code: 2, err: fmt.Errorf("--parallel %d: give 1 or more (labs whose exercises run side by side)", so.parallel)}
	}
	all, err := o.catalogue()
	if err != nil {
		return err
	}
	var exercises []*train.Exercise
	for _, e := range sortedExercises(all) {
		if len(names) == 0 || slicesContains(names, e.Name) {
			exercises = append(exercises, e)
		}
	}
	for _, n := range names {
		if _, ok := all[n]; !ok {
			return &exitError{code: 2, err: fmt.Errorf("no exercise %q", n)}
		}
	}
	m, err := g.manager(false)
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	created := map[string]bool{}
	defer func() {
		if so.keep {
			return
		}
		for name := range created {
			_, _ = m.Down(context.Background(), name)
		}
	}()
	// Rows are printed as each run ends, in fixed columns (a tabwriter would align only what it holds).
	width := len("EXERCISE")
	for _, e := range exercises {
		width = max(width, len(e.Name))
	}
	row := func(cols ...string) {
		fmt.Fprintf(g.streams.Out, "%-*s  %-31s  %-4s  %-6s  %-6s  %-17s  %-14s  %-6s  %s\n", width, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8])
	}
	row("EXERCISE", "LAB", "SEED", "TARGET", "INJECT", "FAILS AS EXPECTED", "SOLUTION+CHECK", "RESET", "RESULT")
	// Plan: the labs the exercises ask for (each one's first topology and model), created once, one
	// after the other (the local provider allocates ports as it starts a lab); every exercise runs on
	// every one of those labs it fits, so an exercise that supports several topologies or models is
	// proven on each of them, at no extra lab.
	var notRun []string
	var labOrder, planned []string
	scenarios := map[string]*scenario.Scenario{}
	groups := map[string][]*train.Exercise{}
	for _, e := range exercises {
		topo, model, n := selftestLab(e)
		name := selftestLabName(topo, model, n)
		if _, ok := scenarios[name]; ok {
			continue
		}
		s, err := scenario.Compose(topo, model, n)
		if err != nil {
			return err
		}
		s.Provider.Name = scenario.ProviderName(so.provider)
		s.Name = name
		scenarios[name] = s
		planned = append(planned, name)
	}
	for _, e := range exercises {
		topo, model, n := selftestLab(e)
		fits := 0
		for _, name := range planned {
			// Whether the provider runs containers is known before any lab exists: local never does.
			if e.Fits(scenarios[name], scenarios[name].Provider.Name != scenario.ProviderLocal) == "" {
				groups[name] = append(groups[name], e)
				fits++
			}
		}
		if fits == 0 {
			why := e.Fits(scenarios[selftestLabName(topo, model, n)], so.provider != string(scenario.ProviderLocal))
			row(e.Name, "-", "-", "-", "-", "-", "-", "-", "not run: "+why)
			notRun = append(notRun, e.Name)
		}
	}
	for _, name := range planned {
		if len(groups[name]) == 0 {
			continue
		}
		labOrder = append(labOrder, name)
		fmt.Fprintf(g.streams.Err, "Bringing up %s for the selftest (%d exercises) ...\n", name, len(groups[name]))
		if err := m.Up(ctx, scenarios[name], name); err != nil {
			return fmt.Errorf("selftest lab %s: %w", name, err)
		}
		created[name] = true
	}
	// Each lab's exercises run in order; labs run side by side (--parallel).
	var mu sync.Mutex
	failed, runs := 0, 0
	work := make(chan string)
	var wg sync.WaitGroup
	for range max(1, min(so.parallel, len(labOrder))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				lo := &trainOptions{name: name, exercises: o.exercises, mode: train.ModeGuided}
				for _, e := range groups[name] {
					for seed := uint64(1); seed <= uint64(so.seeds); seed++ {
						if ctx.Err() != nil {
							return
						}
						r, err := so.one(ctx, g, lo, e, seed, self)
						if err != nil {
							r.result = "FAIL: " + err.Error()
						}
						mu.Lock()
						runs++
						if err != nil {
							failed++
						}
						row(e.Name, strings.TrimPrefix(name, "selftest-"), fmt.Sprint(seed), r.target, r.inject, r.fails, r.check, r.reset, r.result)
						mu.Unlock()
						if err != nil {
							// Leave the lab clean for the next one, whatever happened: reset, else at
							// least put every touched object back and drop the session.
							if l, s, oerr := lo.open(ctx, g); oerr == nil && s != nil {
								if rerr := resetLab(ctx, g, l, s, e); rerr != nil {
									fmt.Fprintf(g.streams.Err, "reset after the failure: %v\n", rerr)
									_ = train.Revert(ctx, s, l.clients)
									_ = train.Clear(l.dir)
								}
							}
						}
					}
				}
			}
		}()
	}
	// The labs with the most exercises first, so the last to finish is a short one.
	sort.SliceStable(labOrder, func(i, j int) bool { return len(groups[labOrder[i]]) > len(groups[labOrder[j]]) })
	// The workers return on a cancelled context (SIGINT, SIGTERM): stop feeding them then, or this
	// send would block for ever with the labs still up.
feed:
	for _, name := range labOrder {
		select {
		case work <- name:
		case <-ctx.Done():
			break feed
		}
	}
	close(work)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Out, "\n%d runs of %d exercises on %d labs of provider %s (%d seeds each): %d passed, %d failed.", runs, len(exercises)-len(notRun), len(labOrder), so.provider, so.seeds, runs-failed, failed)
	if len(notRun) > 0 {
		fmt.Fprintf(g.streams.Out, " Not run here (they need another lab, see above): %s.", strings.Join(notRun, ", "))
	}
	fmt.Fprintln(g.streams.Out)
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("selftest: %d exercise runs failed", failed)}
	}
	if len(names) > 0 && len(notRun) > 0 {
		return &exitError{code: 2, err: fmt.Errorf("selftest: %s cannot run on provider %s", strings.Join(notRun, ", "), so.provider)}
	}
	return nil
}

type selftestRow struct {
	target, inject, fails, check, reset, result string
}

func dur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// one runs one exercise with one seed, as a learner would, and proves each step.
func (so *selftestOptions) one(ctx context.Context, g *globals, o *trainOptions, e *train.Exercise, seed uint64, self string) (selftestRow, error) {
	row := selftestRow{target: "-", inject: "-", fails: "-", check: "-", reset: "-", result: "ok"}
	o.seed = seed
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	quiet := *g
	quiet.streams.Out, quiet.streams.Err = &strings.Builder{}, &strings.Builder{}
	start := time.Now()
	if err := o.start(ctx, &quiet, e.Name); err != nil {
		return row, fmt.Errorf("start: %v %s", err, quiet.streams.Err)
	}
	row.inject = dur(time.Since(start))
	l, s, err := o.open(ctx, g)
	if err != nil {
		return row, err
	}
	row.target = s.Targets.Target
	// Exactly the exercise's specs fail, and verify names the cause (istiod may take a push).
	var missed, extra []string
	var run *verifyRun
	start = time.Now()
	for deadline := time.Now().Add(time.Minute); ; {
		if run, err = runVerify(ctx, g, l.name, filepath.Join(l.dir, "train", "selftest-injected")); err != nil {
			return row, err
		}
		missed, extra = train.Unexpected(e, s.Baseline, run.specs)
		// Retry only while what must fail has not yet (istiod may take a push); a spec that fails
		// without being expected is a mismatch at once.
		if len(missed) == 0 && hasAll(run.output, e.RenderDiagnosis(s.Targets)) || len(extra) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	row.fails = dur(time.Since(start))
	switch {
	case run.code != 1:
		return row, fmt.Errorf("verify after the faults exited %d, want 1 (non-conformant):\n%s", run.code, verdictBlock(run.output))
	case len(missed) > 0:
		return row, fmt.Errorf("these specs did not fail: %v\n%s", missed, verdictBlock(run.output))
	case len(extra) > 0:
		return row, fmt.Errorf("these specs failed too: %v\n%s", extra, verdictBlock(run.output))
	case !hasAll(run.output, e.RenderDiagnosis(s.Targets)):
		return row, fmt.Errorf("verify does not name the cause (want %q):\n%s", e.RenderDiagnosis(s.Targets), verdictBlock(run.output))
	}
	// The reference solution, typed as a learner would, with a kubeconfig of the lab's contexts (a copy:
	// an `mclab up` in a solution merges into it, as into a learner's own).
	start = time.Now()
	userKC, err := os.CreateTemp("", "mclab-selftest-kubeconfig-*")
	if err != nil {
		return row, err
	}
	userKC.Close()
	defer os.Remove(userKC.Name())
	if data, err := os.ReadFile(l.kubeconfig); err != nil {
		return row, err
	} else if err := os.WriteFile(userKC.Name(), data, 0o600); err != nil {
		return row, err
	}
	for _, c := range e.RenderSolution(s.Targets) {
		cmd := osexec.CommandContext(ctx, "sh", "-ec", c)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+userKC.Name(), "PATH="+filepath.Dir(self)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if g.stateDir != "" {
			cmd.Env = append(cmd.Env, "MCLAB_STATE_DIR="+g.stateDir)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return row, fmt.Errorf("solution %q: %v\n%s", c, err, out)
		}
	}
	solved := false
	var rec train.CheckRecord
	for i := 0; i < 15 && !solved; i++ {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		if run, err = runVerify(ctx, g, l.name, filepath.Join(l.dir, "train", "selftest-solved")); err != nil {
			return row, err
		}
		rec = train.Judge(e, s.Baseline, run.specs)
		solved = rec.Passed
	}
	row.check = dur(time.Since(start))
	if !solved {
		return row, fmt.Errorf("the solution does not solve it (still failing %v, collateral %v):\n%s", rec.StillFailing, rec.Collateral, verdictBlock(run.output))
	}
	// Recorded as a learner's passing check would be, so the lab's history says what happened.
	rec.At = time.Now().UTC()
	shownAt := start.UTC()
	s.Checks, s.Solved, s.SolutionShown, s.SolutionAt = append(s.Checks, rec), &rec.At, true, &shownAt
	if err := s.Save(l.dir); err != nil {
		return row, err
	}
	start = time.Now()
	if err := resetLab(ctx, g, l, s, e); err != nil {
		return row, fmt.Errorf("reset: %w", err)
	}
	row.reset = dur(time.Since(start))
	return row, nil
}

func hasAll(out string, phrases []string) bool {
	for _, p := range phrases {
		if !strings.Contains(out, p) {
			return false
		}
	}
	return true
}
