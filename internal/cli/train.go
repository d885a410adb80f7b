package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/train"
)

type trainOptions struct {
	name      string
	exercises string
	mode      string
	seed      uint64
}

func newTrainCommand(g *globals) *cobra.Command {
	o := &trainOptions{}
	var listOutput, statusOutput string
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
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.trainer(g).Start(cmd.Context(), o.name, args[0], o.mode, o.seed)
		},
		ValidArgsFunction: func(cmd *cobra.Command, args []string, s string) ([]string, cobra.ShellCompDirective) {
			if len(args) > 0 {
				return nil, cobra.ShellCompDirectiveNoFileComp
			}
			return exerciseNames(o)(cmd, args, s)
		},
	}
	start.Flags().StringVar(&o.mode, "mode", train.ModeGuided, "guided (check shows the diagnosis), challenge (only which specs fail) or exam (no hints)")
	start.Flags().Uint64Var(&o.seed, "seed", 0, "draws the clusters the faults hit (default: random; the same seed gives the same exercise)")
	list := &cobra.Command{Use: "list", Short: "The exercises, and whether the lab can run each", Example: "  mclab train list --name lab\n  mclab train list -o json", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.list(g, listOutput) }}
	addOutputFlag(list, &listOutput)
	status := &cobra.Command{Use: "status", Short: "The running exercise: ticket, time left, hints used, checks", Example: "  mclab train status --name lab\n  mclab train status --name lab -o yaml", Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return o.status(g, statusOutput) }}
	addOutputFlag(status, &statusOutput)
	cmd.AddCommand(
		list,
		start,
		status,
		&cobra.Command{Use: "check", Short: "Run the suites: solved when every spec that passed before passes again", Example: "  mclab train check --name lab   # exit 0 solved, 1 not yet", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.trainer(g).Check(cmd.Context(), o.name) }},
		&cobra.Command{Use: "hint", Short: "The next hint (vague first)", Example: "  mclab train hint --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.trainer(g).Hint(cmd.Context(), o.name) }},
		&cobra.Command{Use: "solution", Short: "The reference fix (ends the scoring)", Example: "  mclab train solution --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.trainer(g).Solution(o.name) }},
		&cobra.Command{Use: "reset", Short: "Put every touched object back, converge the lab and prove the baseline", Example: "  mclab train reset --name lab", Args: cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error { return o.trainer(g).Reset(cmd.Context(), o.name) }},
		newTrainSelftestCommand(g, o),
		newTrainReportCommand(g, o),
	)
	return cmd
}

// trainer is the training flow (lab/train) on g's labs, with verify run as a process of its own.
func (o *trainOptions) trainer(g *globals) *train.Trainer {
	self, _ := os.Executable()
	return &train.Trainer{
		NewManager: func() (*lab.Manager, error) { return g.manager(false) },
		Exercises:  o.exercises,
		Out:        g.streams.Out,
		Err:        g.streams.Err,
		Verify: func(ctx context.Context, name, dir string) (*train.VerifyRun, error) {
			return runVerify(ctx, g, name, dir)
		},
		Self:     self,
		StateDir: g.stateDir,
	}
}

// catalogue loads the built-in exercises and the user's (--exercises).
func (o *trainOptions) catalogue() (map[string]*train.Exercise, error) {
	return (&train.Trainer{Exercises: o.exercises}).Catalogue()
}

// ExerciseList is `mclab train list -o json|yaml`.
type ExerciseList struct {
	TypeMeta
	// Lab is the lab the exercises were matched against (--name), if any.
	Lab   string            `json:"lab,omitempty"`
	Items []ExerciseSummary `json:"items"`
}

// ExerciseSummary is one exercise of the catalogue.
type ExerciseSummary struct {
	Name       string `json:"name"`
	Difficulty string `json:"difficulty"`
	TimeLimit  string `json:"timeLimit"`
	Title      string `json:"title"`
	// Fits says whether the lab (--name) can run the exercise; absent without --name.
	Fits *ExerciseFit `json:"fits,omitempty"`
}

// ExerciseFit is whether a lab can run an exercise, and why not.
type ExerciseFit struct {
	OK     bool   `json:"ok"`
	Reason string `json:"reason,omitempty"`
}

// ExerciseStatus is `mclab train status -o json|yaml`.
type ExerciseStatus struct {
	TypeMeta
	train.Status `json:",inline"`
}

func (o *trainOptions) list(g *globals, output string) error {
	if err := checkOutput(output); err != nil {
		return err
	}
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
	doc := ExerciseList{TypeMeta: typeMeta("ExerciseList"), Lab: o.name, Items: []ExerciseSummary{}}
	for _, e := range train.SortedExercises(all) {
		item := ExerciseSummary{Name: e.Name, Difficulty: e.Difficulty, TimeLimit: e.TimeLimit, Title: e.Title}
		if fits != nil {
			why := fits(e)
			item.Fits = &ExerciseFit{OK: why == "", Reason: why}
		}
		doc.Items = append(doc.Items, item)
	}
	return printDoc(g.streams.Out, output, doc, func() error {
		w := tabwriter.NewWriter(g.streams.Out, 0, 4, 2, ' ', 0)
		fmt.Fprintln(w, "EXERCISE\tDIFFICULTY\tTIME\tTITLE\tON THIS LAB")
		for _, e := range doc.Items {
			on := "-"
			if e.Fits != nil {
				on = "yes"
				if !e.Fits.OK {
					on = "no: " + e.Fits.Reason
				}
			}
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", e.Name, e.Difficulty, e.TimeLimit, e.Title, on)
		}
		return w.Flush()
	})
}

func (o *trainOptions) status(g *globals, output string) error {
	if err := checkOutput(output); err != nil {
		return err
	}
	t := o.trainer(g)
	if output == "text" {
		return t.Status(o.name)
	}
	st, err := t.StatusOf(o.name)
	if err != nil {
		return err
	}
	return printDoc(g.streams.Out, output, ExerciseStatus{typeMeta("ExerciseStatus"), *st}, nil)
}

// runVerify runs `mclab verify` of lab name into dir, in a process of its own (Ginkgo runs its suites
// once per process): what the Trainer's Verify does.
func runVerify(ctx context.Context, g *globals, name, dir string) (*train.VerifyRun, error) {
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
	r := &train.VerifyRun{Output: out.String(), Dir: dir}
	var ee *osexec.ExitError
	switch {
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	case err != nil:
		return nil, err
	}
	specs, err := train.ReadSpecs(filepath.Join(dir, "ginkgo.json"))
	if err != nil {
		return nil, fmt.Errorf("verify wrote no spec report (exit %d): %v\n%s", r.Code, err, r.Output)
	}
	r.Specs = specs
	return r, nil
}
