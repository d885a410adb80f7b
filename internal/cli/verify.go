package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/reports"
	"mclab.dev/mclab/suites"
)

type verifyOptions struct {
	closers     []func()
	name        string
	labelFilter string
	view        string
	reportDir   string
	verbose     bool
	timeout     time.Duration
	output      string
	settle      time.Duration
	window      time.Duration
}

func newVerifyCommand(g *globals) *cobra.Command {
	o := &verifyOptions{}
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Run the conformance suites against a lab and write the gate's reports",
		Long: `Run the Ginkgo conformance suites (MC-DISCOVERY, MC-MTLS, MC-CROSS-NETWORK, MC-PRIMARY-REMOTE,
MC-FEDERATION) against a lab. Each failure names its likely cause and evidence. Reports go to
--report-dir: junit.xml, ginkgo.json, conformance-report.yaml, summary.html, and an evidence/ bundle on
failure (no tokens or keys).

The scope is every view the provider can run (control plane everywhere; data plane where pods run
containers), printed with the verdict; --view picks one. A run is conformant only when at least one
spec ran and every Required spec of its scope ran and passed.

Exit codes: 0 conformant, 1 non-conformant (a finding about the mesh), 2 inconclusive (the harness or
the infrastructure failed, a Required spec of the scope did not run, the filter selects nothing) or a
usage error.`,
		Example: `  mclab verify --name multi-network
  mclab verify --name multi-network --label-filter 'MC-MTLS && Required'
  mclab verify --name multi-network -o json | jq .verdict`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd.Context(), g) },
	}
	cmd.Flags().StringVar(&o.name, "name", "", "the lab")
	cmd.Flags().StringVar(&o.labelFilter, "label-filter", "", "Ginkgo label filter, e.g. 'MC-DISCOVERY && control-plane' (labels: "+strings.Join(suites.KnownLabels(), ", ")+")")
	cmd.Flags().StringVar(&o.view, "view", "", "what to judge: control-plane, data-plane or all (default: every view the provider can run)")
	cmd.Flags().StringVar(&o.reportDir, "report-dir", "", "where reports go (default: ./mclab-reports/<lab>/<time>, kept after down)")
	cmd.Flags().BoolVar(&o.verbose, "verbose", false, "print every spec (the same as -v)")
	cmd.Flags().DurationVar(&o.timeout, "timeout", 10*time.Minute, "bound for the whole run")
	cmd.Flags().DurationVar(&o.settle, "settle", 0, "how long the lab gets to converge: a failing convergence check is retried until this much of the run has passed, and for at least a fifth of it (default 5s)")
	cmd.Flags().DurationVar(&o.window, "window", 0, "how long a safety property (mTLS enforced, cluster-local stays local, meshes apart) must hold (default 1s on provider local, whose pushes take under 0.4 s p99; 3s elsewhere)")
	cmd.Flags().StringVarP(&o.output, "output", "o", "text", "text (the verdict), or json or yaml: the conformance report (kind ConformanceReport) on stdout, Ginkgo's progress on stderr")
	return cmd
}

func (o *verifyOptions) run(ctx context.Context, g *globals) error {
	if o.name == "" {
		return &exitError{code: 2, err: errors.New("give --name LAB (`mclab list` shows the labs)\nUsage: mclab verify --name LAB [--view control-plane|data-plane|all] [--label-filter F] [--report-dir D]")}
	}
	if err := checkOutput(o.output); err != nil {
		return err
	}
	if g.verbosity > 0 {
		o.verbose = true
	}
	// The flags are checked before the lab is touched: a mistake is a usage error (2).
	// (0 is the provider's default, so only a negative duration is wrong.)
	if err := (suites.Timing{Settle: cmp.Or(o.settle, 1), Window: cmp.Or(o.window, 1), Poll: 1}).Validate(); err != nil {
		return &exitError{code: 2, err: err}
	}
	if _, _, err := suites.ResolveScope(&suites.Target{}, o.view, o.labelFilter); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("%w\nUsage: mclab verify --name LAB [--view control-plane|data-plane|all] [--label-filter F]", err)}
	}
	m, err := g.manager(false)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.reportDir == "" {
		// Never write reports for a lab that is not there.
		if _, err := m.Store.Load(o.name); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("%w\nUsage: mclab verify --name LAB (`mclab list` shows the labs; --report-dir writes the JUnit of a failed setup elsewhere)", err)}
		}
		// In the working directory, as test runners write theirs, and outside the lab's state, so
		// `down` keeps them.
		o.reportDir = filepath.Join("mclab-reports", o.name, time.Now().UTC().Format("20060102T150405Z"))
	}
	// Reports go only into a directory of mclab's own (new, empty, or an earlier run's); everything
	// this run writes there is redacted on every way out, and nothing else is touched.
	out, err := reports.ClaimDir(o.reportDir, "verify's reports")
	if err != nil {
		return &exitError{code: 2, err: fmt.Errorf("--report-dir: %w", err)}
	}
	defer func() {
		if _, err := out.Redact(); err != nil {
			fmt.Fprintf(g.streams.Err, "redacting the reports: %v\n", err)
		}
	}()
	target, env, err := o.target(ctx, g)
	defer o.close()
	if err != nil {
		_ = reports.WriteSetupFailure(o.reportDir, err)
		return &exitError{code: 2, err: fmt.Errorf("inconclusive: %w (JUnit in %s)", err, o.reportDir)}
	}
	scope, filter, err := suites.ResolveScope(target, o.view, o.labelFilter)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	restore := func() {}
	switch {
	case o.output != "text":
		restore = stdoutToStderr(g.streams.Out)
	case !o.verbose:
		// Concise by default: Ginkgo's own blocks (most of them for specs that do not apply) go to a
		// file in the reports; the verdict below has a line per spec group and each failure's cause.
		path := filepath.Join(o.reportDir, "ginkgo-output.txt")
		if f, ok := g.streams.Out.(*os.File); ok && f.Fd() == 1 {
			fmt.Fprintf(g.streams.Out, "Verifying lab %s; Ginkgo's own output goes to %s (-v prints it here) ...\n", o.name, path)
			restore, _ = stdoutToFile(g.streams.Out, path)
		}
	}
	timing := suites.DefaultTiming(target.Provider)
	if o.settle != 0 {
		timing.Settle = o.settle
	}
	if o.window != 0 {
		timing.Window = o.window
		timing.Poll = min(timing.Poll, o.window)
	}
	report, err := suites.Run(target, suites.Options{ReportDir: o.reportDir, LabelFilter: filter, Timeout: o.timeout, Verbose: o.verbose, Timing: timing})
	restore()
	if err != nil {
		_ = reports.WriteSetupFailure(o.reportDir, err)
		return &exitError{code: 2, err: err}
	}
	cr := reports.Build(report, suites.Profiles, scope, reports.Implementation{Project: "istio", Version: env.IstioVersion, Model: string(target.Scenario.Istio.Model)}, env)
	if err := suites.WriteReports(o.reportDir, cr, target); err != nil {
		return &exitError{code: 2, err: err}
	}
	// Ginkgo's own files carry the spec output: redact them like everything else verify writes.
	if _, err := out.Redact(); err != nil {
		return &exitError{code: 2, err: fmt.Errorf("redacting the reports: %w", err)}
	}
	if cr.Verdict != reports.Conformant {
		evidence := filepath.Join(o.reportDir, "evidence")
		// An earlier run's bundle (the directory is mclab's, ClaimDir checked) is replaced whole.
		_ = os.RemoveAll(evidence)
		_ = os.Remove(evidence + ".tar.gz")
		if err := suites.CollectEvidence(ctx, target, evidence); err != nil {
			fmt.Fprintf(g.streams.Err, "evidence bundle incomplete: %v\n", err)
		}
		o.collectLogs(ctx, g, filepath.Join(evidence, "logs"))
		if _, err := out.Redact(); err != nil {
			fmt.Fprintf(g.streams.Err, "redacting the evidence bundle: %v\n", err)
		} else if err := reports.Tarball(evidence, evidence+".tar.gz"); err != nil {
			fmt.Fprintf(g.streams.Err, "evidence tarball: %v\n", err)
		}
	}
	if err := printDoc(g.streams.Out, o.output, cr, func() error { printVerdict(g.streams.Out, cr, o.reportDir); return nil }); err != nil {
		return &exitError{code: 2, err: err}
	}
	if o.output != "text" {
		fmt.Fprintf(g.streams.Err, "%s\nReports: %s\n", cr.VerdictLine(), o.reportDir)
	}
	// In GitHub Actions, the verdict table goes to the job's summary page too.
	if path := os.Getenv("GITHUB_STEP_SUMMARY"); path != "" {
		if f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
			_, _ = f.WriteString(cr.Markdown() + "\n")
			_ = f.Close()
		}
	}
	if code := reports.ExitCode(cr.Verdict); code != 0 {
		return &exitError{code: code, err: fmt.Errorf("lab %s is %s", o.name, cr.Verdict)}
	}
	return nil
}

func (o *verifyOptions) target(ctx context.Context, g *globals) (*suites.Target, reports.Environment, error) {
	m, err := g.manager(false)
	if err != nil {
		return nil, reports.Environment{}, err
	}
	return suites.OpenLab(ctx, m, o.name, g.streams.Err, &o.closers)
}

// collectLogs adds the provider's logs (component logs, `kind export logs`) to the evidence bundle.
func (o *verifyOptions) collectLogs(ctx context.Context, g *globals, dir string) {
	m, err := g.manager(false)
	if err != nil {
		return
	}
	_, p, err := m.Open(o.name)
	if err != nil {
		return
	}
	if lc, ok := p.(provider.LogCollector); ok {
		if err := lc.CollectLogs(ctx, dir); err != nil {
			fmt.Fprintf(g.streams.Err, "logs for the evidence bundle: %v\n", err)
		}
	}
}

func (o *verifyOptions) close() {
	for _, c := range o.closers {
		c()
	}
}

func printVerdict(w io.Writer, cr *reports.ConformanceReport, dir string) {
	fmt.Fprintf(w, "\nVerdict: %s\n", cr.VerdictLine())
	for _, r := range cr.Reasons {
		if strings.Contains(r, "selects no spec") {
			r += fmt.Sprintf(" (filter %q; labels: %s)", cr.Scope.LabelFilter, strings.Join(suites.KnownLabels(), ", "))
		}
		fmt.Fprintf(w, "  ! %s\n", r)
	}
	for _, p := range cr.Profiles {
		fmt.Fprintf(w, "  %-18s %-8s %s\n", p.Name, p.Core.Result, p.Summary)
		for _, f := range p.Core.FailedTests {
			fmt.Fprintf(w, "    ✗ %s [%s]\n      %s\n", f.Name, f.Verdict, indent(f.Reason))
		}
	}
	extra := ""
	if cr.Verdict != reports.Conformant {
		extra = ", evidence/ and evidence.tar.gz"
	}
	fmt.Fprintf(w, "Reports: %s (junit.xml, ginkgo.json, ginkgo-output.txt, conformance-report.yaml, summary.html%s)\n", dir, extra)
}

func indent(s string) string {
	out := ""
	for i, line := range splitLines(s) {
		if i > 0 {
			out += "\n      "
		}
		out += line
	}
	return out
}

func splitLines(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}
