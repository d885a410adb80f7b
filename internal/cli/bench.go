package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/bench"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/reports"
	"mclab.dev/mclab/scenarios"
	"mclab.dev/mclab/suites"
)

type benchOptions struct {
	scenario  string
	name      string
	provider  string
	endpoints string
	clusters  string
	trials    int
	outDir    string
	compare   string
	threshold float64
	keep      bool
	output    string
}

func newBenchCommand(g *globals) *cobra.Command {
	o := &benchOptions{}
	names, _ := bench.BuiltinScenarios(scenarios.Bench)
	cmd := &cobra.Command{
		Use:   "bench",
		Short: "Measure how fast a change crosses clusters, and what a mesh costs as it grows",
		Long: `Run a bench scenario (built in: ` + strings.Join(names, ", ") + `; or a file of kind BenchScenario).

propagation: scales a workload in the first cluster (0 -> N at once, N -> N+1, N+1 -> N, N -> 0) and times,
per trial, from the API server's acknowledgement of the write: the Kubernetes leg (until the cluster's
EndpointSlices hold the change) and the Istio leg (until the EDS of a real sidecar in each other cluster,
connected to its istiod as pilot-agent connects, holds it). p50/p90/p99/max over the trials.

scale: brings up a lab of each size, with the step breakdown and the time until every istiod has synced
every cluster, then for each endpoint count reads every process's memory and CPU (/proc) and istiod's
own push figures (pilot_xds_pushes, pilot_xds_push_time, pilot_proxy_convergence_time from its
monitoring port), and fits how each grows with clusters and endpoints.

Every loop has a count and a deadline; what a bench creates it removes (the labs it brought up, the
bench namespace in a lab it was given). Results: a table, bench-result.json with every raw sample, and
bench.html with the plots, in --out. --compare OLD.json prints the change of every figure and exits 1
when a p99 grew by more than --threshold percent.`,
		Example: `  mclab bench --scenario propagation --endpoints 1,10,100 --trials 5
  mclab bench --scenario propagation --name multi-network      # on a lab that exists
  mclab bench --scenario scale --clusters 2,5,10
  mclab bench --scenario propagation --compare baseline/bench-result.json --threshold 25`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), g) },
	}
	f := cmd.Flags()
	f.StringVar(&o.scenario, "scenario", "propagation", "a built-in bench scenario ("+strings.Join(names, ", ")+") or a BenchScenario file")
	f.StringVar(&o.name, "name", "", "propagation: measure this existing lab instead of bringing one up (its first cluster is the source)")
	f.StringVar(&o.provider, "provider", "", "override the scenario's provider (local, kind, existing)")
	f.StringVar(&o.endpoints, "endpoints", "", "override the endpoint counts, e.g. 1,10,100,1000")
	f.StringVar(&o.clusters, "clusters", "", "override the lab sizes (scale) or the cluster count (propagation), e.g. 2,5,10")
	f.IntVar(&o.trials, "trials", 0, "override the trials per size (propagation)")
	f.StringVar(&o.outDir, "out", "", "where to write bench-result.json and bench.html (default ./mclab-bench/<scenario>/<time>)")
	f.StringVar(&o.compare, "compare", "", "a bench-result.json of an earlier run: print the change of every figure, exit 1 on a regression")
	f.Float64Var(&o.threshold, "threshold", 20, "with --compare: the p99 growth, in percent, that counts as a regression")
	f.BoolVar(&o.keep, "keep", false, "keep the labs the bench brings up (for a look after)")
	addOutputFlag(cmd, &o.output)
	_ = cmd.RegisterFlagCompletionFunc("scenario", cobra.FixedCompletions(names, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

func parseInts(flag, s string) ([]int, error) {
	var out []int
	for _, p := range strings.Split(s, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(p))
		if err != nil {
			return nil, fmt.Errorf("--%s %q: give numbers separated by commas, e.g. 1,10,100", flag, s)
		}
		out = append(out, v)
	}
	return out, nil
}

// load reads the scenario and applies the flags' overrides, then validates it again.
func (o *benchOptions) load() (*bench.Scenario, error) {
	s, err := bench.LoadScenario(o.scenario, scenarios.Bench)
	if err != nil {
		return nil, err
	}
	if o.provider != "" {
		s.Lab.Provider = scenario.ProviderName(o.provider)
	}
	if o.endpoints != "" {
		v, err := parseInts("endpoints", o.endpoints)
		if err != nil {
			return nil, err
		}
		if s.Propagation != nil {
			s.Propagation.Endpoints = v
		}
		if s.Scale != nil {
			s.Scale.Endpoints = v
		}
	}
	if o.clusters != "" {
		v, err := parseInts("clusters", o.clusters)
		if err != nil {
			return nil, err
		}
		if s.Scale != nil {
			s.Scale.Clusters = v
		} else if len(v) == 1 {
			s.Lab.Clusters = v[0]
		} else {
			return nil, fmt.Errorf("--clusters %q: propagation runs on one lab; give one count", o.clusters)
		}
	}
	if o.trials > 0 && s.Propagation != nil {
		s.Propagation.Trials = o.trials
	}
	if errs := s.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("bench scenario %s: %w", s.Name, errs.ToAggregate())
	}
	if s.Type == bench.TypeScale && s.Lab.Provider != scenario.ProviderLocal {
		return nil, fmt.Errorf("bench scenario %s: lab.provider %s: %v; use --provider local", s.Name, s.Lab.Provider, bench.ErrNotLocal)
	}
	if o.name != "" && s.Type != bench.TypePropagation {
		return nil, fmt.Errorf("--name measures an existing lab, which only the propagation bench does; scale brings its own labs up")
	}
	return s, nil
}

func (o *benchOptions) run(ctx context.Context, g *globals) error {
	if err := checkOutput(o.output); err != nil {
		return err
	}
	s, err := o.load()
	if err != nil {
		return err
	}
	var old *bench.Result
	if o.compare != "" {
		if old, err = bench.Read(o.compare); err != nil {
			return err
		}
	}
	m, err := g.manager(false)
	if err != nil {
		return err
	}
	m.UserKubeconfig = nil // bench labs stay out of the user's kubeconfig
	if o.name != "" {
		// A lab that is not there is bad input: refused before the results directory is made.
		if _, _, err := m.Open(o.name); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("bench %s: %w", s.Name, err)}
		}
	}
	r := &bench.Result{APIVersion: bench.APIVersion, Kind: bench.Kind, Scenario: s.Name, Started: time.Now().UTC().Truncate(time.Second), Machine: bench.ThisMachine(),
		Lab: map[string]string{"provider": string(s.Lab.Provider), "model": string(s.Lab.Model), "topology": string(s.Lab.Topology)}}
	dir := o.outDir
	if dir == "" {
		dir = filepath.Join("mclab-bench", s.Name, r.Started.Format("20060102T150405Z"))
	}
	// The results go only into a directory of mclab's own, checked before any lab is brought up.
	if _, err := reports.ClaimDir(dir, "bench results"); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--out: %w", err)}
	}
	fmt.Fprintf(g.streams.Err, "bench %s (%s) on %d CPUs, %.1f GiB\n", s.Name, s.Type, r.Machine.CPUs, r.Machine.MemoryGiB)
	switch s.Type {
	case bench.TypePropagation:
		err = o.propagation(ctx, g, m, s, r)
	case bench.TypeScale:
		err = bench.Scale(ctx, &bench.ManagerLabs{M: m, S: s, Keep: o.keep, Out: g.streams.Err}, bench.ScaleOptions{Clusters: s.Scale.Clusters, Endpoints: s.Scale.Endpoints,
			Settle: s.Scale.Settle.Duration, Model: string(s.Lab.Model), Out: g.streams.Err}, r)
	}
	r.Took = time.Since(r.Started).Round(time.Second).String()
	runErr := err
	if runErr != nil {
		if len(r.Figures) == 0 {
			return fmt.Errorf("bench %s: %w", s.Name, runErr)
		}
		// What was measured before the failure is kept, marked incomplete.
		r.Notes = append(r.Notes, "INCOMPLETE: the bench stopped: "+runErr.Error())
	}
	if err := r.Write(filepath.Join(dir, "bench-result.json")); err != nil {
		return err
	}
	var html bytes.Buffer
	if err := bench.WriteHTML(&html, r); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "bench.html"), reports.RedactBytes(html.Bytes()), 0o644); err != nil {
		return err
	}
	if err := printDoc(g.streams.Out, o.output, r, func() error { r.Table(g.streams.Out); return nil }); err != nil {
		return err
	}
	fmt.Fprintf(g.streams.Err, "results: %s (raw samples), %s\n", filepath.Join(dir, "bench-result.json"), filepath.Join(dir, "bench.html"))
	if runErr != nil {
		return fmt.Errorf("bench %s: %w (the figures measured before are in %s, marked incomplete)", s.Name, runErr, dir)
	}
	if old != nil {
		cs := bench.Compare(old, r, o.threshold, 0.05)
		fmt.Fprintf(g.streams.Out, "\ncompared with %s (%s):\n", o.compare, old.Started.Format(time.RFC3339))
		bench.PrintChanges(g.streams.Out, cs)
		var regressed []string
		for _, c := range cs {
			if c.Regressed {
				regressed = append(regressed, c.Name)
			}
		}
		if len(regressed) > 0 {
			return &exitError{code: 1, err: fmt.Errorf("%d figures regressed by more than %.0f%% at p99: %s", len(regressed), o.threshold, strings.Join(regressed, ", "))}
		}
	}
	return nil
}

// propagation brings the scenario's lab up (unless --name gives one), watches from every other cluster.
func (o *benchOptions) propagation(ctx context.Context, g *globals, m *lab.Manager, s *bench.Scenario, r *bench.Result) (err error) {
	name := o.name
	if name == "" {
		name = "bench-" + s.Name
		sc, err := scenario.Compose(s.Lab.Topology, s.Lab.Model, s.Lab.Clusters)
		if err != nil {
			return err
		}
		sc.Provider.Name = s.Lab.Provider
		if err := sc.Validate("bench scenario " + s.Name); err != nil {
			return err
		}
		var steps []bench.Step
		m.OnStep = func(title string, took time.Duration, ok bool) {
			steps = append(steps, bench.Step{Title: title, Seconds: took.Seconds()})
		}
		upErr := m.Up(ctx, sc, name)
		r.Steps = append(r.Steps, bench.StepTimes{Lab: name, Steps: steps})
		if !o.keep {
			defer func() {
				if _, derr := m.Down(context.WithoutCancel(ctx), name); derr != nil && err == nil {
					err = derr
				}
			}()
		}
		if upErr != nil {
			return upErr
		}
	}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	t, env, err := suites.OpenLab(ctx, m, name, g.streams.Err, &closers)
	if err != nil {
		return err
	}
	r.Lab["lab"], r.Lab["istio"], r.Lab["kubernetes"], r.Lab["provider"] = name, env.IstioVersion, env.KubernetesVersion, string(t.Provider)
	r.Lab["model"], r.Lab["clusters"] = string(t.Scenario.Istio.Model), strconv.Itoa(len(t.Scenario.Clusters))
	srcCluster := t.Scenario.Clusters[0]
	var clients []string
	view := "direct"
	for _, c := range t.Scenario.Clusters[1:] {
		if t.Scenario.Istio.Model == scenario.Federated && c.Mesh != srcCluster.Mesh {
			continue
		}
		clients = append(clients, c.Name)
		if c.Network != srcCluster.Network {
			view = "gateway"
		}
	}
	if len(clients) == 0 {
		return fmt.Errorf("lab %s has no other cluster in %s's mesh to watch from", name, srcCluster.Name)
	}
	if view == "gateway" && len(clients) > 1 {
		r.Notes = append(r.Notes, "clients on the source's network and on others are mixed; each figure names its client")
	}
	fmt.Fprintf(g.streams.Err, "propagation: scaling %s/%s in %s, watching EDS as a sidecar in %s (%s view)\n", bench.Namespace, bench.Workload, srcCluster.Name, strings.Join(clients, ", "), view)
	po := bench.PropagationOptions{Source: srcCluster.Name, Clients: clients, Endpoints: s.Propagation.Endpoints,
		Trials: s.Propagation.Trials, View: view, Out: g.streams.Err}
	if ch := s.Propagation.Churn; ch != nil {
		po.Churn = &bench.ChurnOptions{Endpoints: ch.Endpoints, Rate: ch.Rate}
		r.Lab["churn"] = fmt.Sprintf("%d endpoints flapping at %g/s in every cluster", ch.Endpoints, ch.Rate)
	}
	return bench.Propagation(ctx, t, po, r)
}
