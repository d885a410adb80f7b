package train

import (
	"context"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"mclab.dev/mclab/lab/scenario"
)

// SelftestOptions: how many seeds per exercise, the provider of the labs, whether to keep them, and
// how many labs run side by side.
type SelftestOptions struct {
	Seeds    int
	Provider string
	Keep     bool
	Parallel int
}

// selftestLab is the lab an exercise's selftest runs on: a composed scenario per topology and model.
func selftestLab(e *Exercise) (scenario.Topology, scenario.Model, int) {
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

// Selftest proves the exercises named (every one when none) on labs it creates: see SelftestOptions.
func (t *Trainer) Selftest(ctx context.Context, so SelftestOptions, names []string) error {
	if so.Seeds < 1 {
		return &InputError{fmt.Errorf("--seeds %d: give 1 or more (each seed draws the clusters an exercise acts on)", so.Seeds)}
	}
	if so.Parallel < 1 {
		return &InputError{fmt.Errorf("--parallel %d: give 1 or more (labs whose exercises run side by side)", so.Parallel)}
	}
	all, err := t.Catalogue()
	if err != nil {
		return err
	}
	var exercises []*Exercise
	for _, e := range SortedExercises(all) {
		if len(names) == 0 || slices.Contains(names, e.Name) {
			exercises = append(exercises, e)
		}
	}
	for _, n := range names {
		if _, ok := all[n]; !ok {
			return &InputError{fmt.Errorf("no exercise %q", n)}
		}
	}
	m, err := t.NewManager()
	if err != nil {
		return err
	}
	created := map[string]bool{}
	defer func() {
		if so.Keep {
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
		fmt.Fprintf(t.Out, "%-*s  %-31s  %-4s  %-6s  %-6s  %-17s  %-14s  %-6s  %s\n", width, cols[0], cols[1], cols[2], cols[3], cols[4], cols[5], cols[6], cols[7], cols[8])
	}
	row("EXERCISE", "LAB", "SEED", "TARGET", "INJECT", "FAILS AS EXPECTED", "SOLUTION+CHECK", "RESET", "RESULT")
	// Plan: the labs the exercises ask for (each one's first topology and model), created once, one
	// after the other (the local provider allocates ports as it starts a lab); every exercise runs on
	// every one of those labs it fits, so an exercise that supports several topologies or models is
	// proven on each of them, at no extra lab.
	var notRun []string
	var labOrder, planned []string
	scenarios := map[string]*scenario.Scenario{}
	groups := map[string][]*Exercise{}
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
		s.Provider.Name = scenario.ProviderName(so.Provider)
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
			why := e.Fits(scenarios[selftestLabName(topo, model, n)], so.Provider != string(scenario.ProviderLocal))
			row(e.Name, "-", "-", "-", "-", "-", "-", "-", "not run: "+why)
			notRun = append(notRun, e.Name)
		}
	}
	for _, name := range planned {
		if len(groups[name]) == 0 {
			continue
		}
		labOrder = append(labOrder, name)
		fmt.Fprintf(t.Err, "Bringing up %s for the selftest (%d exercises) ...\n", name, len(groups[name]))
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
	for range max(1, min(so.Parallel, len(labOrder))) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				for _, e := range groups[name] {
					for seed := uint64(1); seed <= uint64(so.Seeds); seed++ {
						if ctx.Err() != nil {
							return
						}
						r, err := t.one(ctx, name, e, seed)
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
							if l, s, oerr := t.Open(ctx, name); oerr == nil && s != nil {
								if rerr := t.resetLab(ctx, l, s, e); rerr != nil {
									fmt.Fprintf(t.Err, "reset after the failure: %v\n", rerr)
									_ = Revert(ctx, s, l.Clients)
									_ = Clear(l.Dir)
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
	fmt.Fprintf(t.Out, "\n%d runs of %d exercises on %d labs of provider %s (%d seeds each): %d passed, %d failed.", runs, len(exercises)-len(notRun), len(labOrder), so.Provider, so.Seeds, runs-failed, failed)
	if len(notRun) > 0 {
		fmt.Fprintf(t.Out, " Not run here (they need another lab, see above): %s.", strings.Join(notRun, ", "))
	}
	fmt.Fprintln(t.Out)
	if failed > 0 {
		return &FindingError{fmt.Errorf("selftest: %d exercise runs failed", failed)}
	}
	if len(names) > 0 && len(notRun) > 0 {
		return &InputError{fmt.Errorf("selftest: %s cannot run on provider %s", strings.Join(notRun, ", "), so.Provider)}
	}
	return nil
}

type selftestRow struct {
	target, inject, fails, check, reset, result string
}

func dur(d time.Duration) string { return d.Round(100 * time.Millisecond).String() }

// one runs one exercise with one seed, as a learner would, and proves each step.
func (t *Trainer) one(ctx context.Context, lab string, e *Exercise, seed uint64) (selftestRow, error) {
	row := selftestRow{target: "-", inject: "-", fails: "-", check: "-", reset: "-", result: "ok"}
	quiet := *t
	var progress strings.Builder
	quiet.Out, quiet.Err = &strings.Builder{}, &progress
	start := time.Now()
	if err := quiet.Start(ctx, lab, e.Name, ModeGuided, seed); err != nil {
		return row, fmt.Errorf("start: %v %s", err, progress.String())
	}
	row.inject = dur(time.Since(start))
	l, s, err := t.Open(ctx, lab)
	if err != nil {
		return row, err
	}
	row.target = s.Targets.Target
	// Exactly the exercise's specs fail, and verify names the cause (istiod may take a push).
	var missed, extra []string
	var run *VerifyRun
	start = time.Now()
	for deadline := time.Now().Add(time.Minute); ; {
		if run, err = t.Verify(ctx, l.Name, filepath.Join(l.Dir, "train", "selftest-injected")); err != nil {
			return row, err
		}
		missed, extra = Unexpected(e, s.Baseline, run.Specs)
		// Retry only while what must fail has not yet (istiod may take a push); a spec that fails
		// without being expected is a mismatch at once.
		if len(missed) == 0 && hasAll(run.Output, e.RenderDiagnosis(s.Targets)) || len(extra) > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	row.fails = dur(time.Since(start))
	switch {
	case run.Code != 1:
		return row, fmt.Errorf("verify after the faults exited %d, want 1 (non-conformant):\n%s", run.Code, VerdictBlock(run.Output))
	case len(missed) > 0:
		return row, fmt.Errorf("these specs did not fail: %v\n%s", missed, VerdictBlock(run.Output))
	case len(extra) > 0:
		return row, fmt.Errorf("these specs failed too: %v\n%s", extra, VerdictBlock(run.Output))
	case !hasAll(run.Output, e.RenderDiagnosis(s.Targets)):
		return row, fmt.Errorf("verify does not name the cause (want %q):\n%s", e.RenderDiagnosis(s.Targets), VerdictBlock(run.Output))
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
	if data, err := os.ReadFile(l.Kubeconfig); err != nil {
		return row, err
	} else if err := os.WriteFile(userKC.Name(), data, 0o600); err != nil {
		return row, err
	}
	for _, c := range e.RenderSolution(s.Targets) {
		cmd := osexec.CommandContext(ctx, "sh", "-ec", c)
		cmd.Env = append(os.Environ(), "KUBECONFIG="+userKC.Name(), "PATH="+filepath.Dir(t.Self)+string(os.PathListSeparator)+os.Getenv("PATH"))
		if t.StateDir != "" {
			cmd.Env = append(cmd.Env, "MCLAB_STATE_DIR="+t.StateDir)
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return row, fmt.Errorf("solution %q: %v\n%s", c, err, out)
		}
	}
	solved := false
	var rec CheckRecord
	for i := 0; i < 15 && !solved; i++ {
		if i > 0 {
			time.Sleep(500 * time.Millisecond)
		}
		if run, err = t.Verify(ctx, l.Name, filepath.Join(l.Dir, "train", "selftest-solved")); err != nil {
			return row, err
		}
		rec = Judge(e, s.Baseline, run.Specs)
		solved = rec.Passed
	}
	row.check = dur(time.Since(start))
	if !solved {
		return row, fmt.Errorf("the solution does not solve it (still failing %v, collateral %v):\n%s", rec.StillFailing, rec.Collateral, VerdictBlock(run.Output))
	}
	// Recorded as a learner's passing check would be, so the lab's history says what happened.
	rec.At = time.Now().UTC()
	shownAt := start.UTC()
	s.Checks, s.Solved, s.SolutionShown, s.SolutionAt = append(s.Checks, rec), &rec.At, true, &shownAt
	if err := s.Save(l.Dir); err != nil {
		return row, err
	}
	start = time.Now()
	if err := t.resetLab(ctx, l, s, e); err != nil {
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
