package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/train"
	"mclab.dev/mclab/reports"
)

type trainReportOptions struct {
	labs   []string
	out    string
	output string
}

func newTrainReportCommand(g *globals, o *trainOptions) *cobra.Command {
	ro := &trainReportOptions{}
	cmd := &cobra.Command{
		Use:   "report",
		Short: "Every learner's attempts: outcome, time to green, hints, collateral damage (table, YAML, JUnit)",
		Long: `Collects the attempts of one lab (--name) or of a class (--labs, names or patterns such as
'student-*'; default: every lab): each finished attempt (kept in the lab's state when it is reset) and the
one running. Prints a table; --out DIR also writes train-report.yaml and junit.xml there (a test suite
per learner, a test case per attempt, failed unless solved without the solution). Run it before
` + "`mclab down`" + `, which deletes a lab's state.`,
		Example: `  mclab train report --name student-1
  mclab train report --labs 'student-*' --out ./class-report`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return ro.run(g, o) },
	}
	cmd.Flags().StringSliceVar(&ro.labs, "labs", nil, "labs to collect, names or shell patterns (default: --name, else every lab)")
	cmd.Flags().StringVar(&ro.out, "out", "", "write train-report.yaml and junit.xml into this folder")
	addOutputFlag(cmd, &ro.output)
	return cmd
}

func (ro *trainReportOptions) run(g *globals, o *trainOptions) error {
	if err := checkOutput(ro.output); err != nil {
		return err
	}
	// The report goes only into a directory of mclab's own: checked before anything is read.
	if ro.out != "" {
		if _, err := reports.ClaimDir(ro.out, "the class report"); err != nil {
			return &exitError{code: 2, err: fmt.Errorf("--out: %w", err)}
		}
	}
	m, err := g.manager(false)
	if err != nil {
		return err
	}
	names, err := m.Store.List()
	if err != nil {
		return err
	}
	patterns := ro.labs
	if len(patterns) == 0 && o.name != "" {
		patterns = []string{o.name}
	}
	var labs []string
	for _, n := range names {
		if len(patterns) == 0 {
			labs = append(labs, n)
			continue
		}
		for _, p := range patterns {
			if ok, err := path.Match(p, n); err != nil {
				return &exitError{code: 2, err: fmt.Errorf("--labs %q: %v", p, err)}
			} else if ok {
				labs = append(labs, n)
				break
			}
		}
	}
	if len(patterns) > 0 && len(labs) == 0 {
		return &exitError{code: 2, err: fmt.Errorf("no lab matches %v (`mclab list` shows the labs)", patterns)}
	}
	all, err := o.catalogue()
	if err != nil {
		return err
	}
	var attempts []train.Record
	for _, n := range labs {
		dir := m.Store.Dir(n)
		hist, err := train.LoadHistory(dir)
		if err != nil {
			return err
		}
		attempts = append(attempts, hist...)
		s, err := train.LoadSession(dir)
		switch {
		case errors.Is(err, os.ErrNotExist):
		case err != nil:
			return err
		default:
			attempts = append(attempts, s.Record(n, all[s.Exercise], time.Time{}))
		}
	}
	rep := train.NewReport(attempts, time.Now())
	if ro.out != "" {
		if err := writeTrainReport(ro.out, rep); err != nil {
			return err
		}
		fmt.Fprintf(g.streams.Err, "Wrote %s and %s.\n", filepath.Join(ro.out, "train-report.yaml"), filepath.Join(ro.out, "junit.xml"))
	}
	if ro.output != "text" {
		// What learners' labs printed passes redaction first, as in train-report.yaml.
		var buf bytes.Buffer
		if err := printDoc(&buf, ro.output, rep, nil); err != nil {
			return err
		}
		_, err := g.streams.Out.Write(reports.RedactBytes(buf.Bytes()))
		return err
	}
	out := g.streams.Out
	if len(attempts) == 0 {
		fmt.Fprintf(out, "No attempts in %d labs yet (`mclab train start EXERCISE --name LAB`).\n", len(labs))
		return nil
	}
	width := len("LEARNER")
	for _, a := range attempts {
		width = max(width, len(a.Lab))
	}
	fmt.Fprintf(out, "%-*s  %-34s  %-20s  %-13s  %-5s  %-6s  %s\n", width, "LEARNER", "EXERCISE", "OUTCOME", "TIME TO GREEN", "HINTS", "CHECKS", "COLLATERAL DAMAGE")
	for _, a := range attempts {
		green := "-"
		if a.TimeToGreenSeconds > 0 {
			green = (time.Duration(a.TimeToGreenSeconds) * time.Second).String()
			if a.OverTime {
				green += " (late)"
			}
		}
		coll := "-"
		if len(a.Collateral) > 0 {
			coll = fmt.Sprint(a.Collateral)
		}
		fmt.Fprintf(out, "%-*s  %-34s  %-20s  %-13s  %-5d  %-6d  %s\n", width, a.Lab, a.Exercise, a.Outcome, green, a.HintsUsed, a.Checks, coll)
	}
	sm := rep.Summary
	fmt.Fprintf(out, "\n%d learners, %d attempts: %d solved, %d in progress, %d with collateral damage", sm.Learners, sm.Attempts, sm.Solved, sm.InProgress, sm.WithCollateral)
	if sm.MedianTimeToGreenSeconds > 0 {
		fmt.Fprintf(out, "; median time to green %s", time.Duration(sm.MedianTimeToGreenSeconds)*time.Second)
	}
	fmt.Fprintln(out, ".")
	return nil
}

func writeTrainReport(dir string, rep *train.Report) error {
	data, err := yaml.Marshal(rep)
	if err != nil {
		return err
	}
	// Class reports are shared (0644); what learners' labs printed passes redaction first.
	if err := os.WriteFile(filepath.Join(dir, "train-report.yaml"), reports.RedactBytes(data), 0o644); err != nil {
		return err
	}
	var junit bytes.Buffer
	if err := rep.WriteJUnit(&junit); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "junit.xml"), reports.RedactBytes(junit.Bytes()), 0o644)
}
