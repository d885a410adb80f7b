package cli

import (
	"github.com/spf13/cobra"

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
		RunE: func(cmd *cobra.Command, args []string) error {
			return o.trainer(g).Selftest(cmd.Context(), train.SelftestOptions{Seeds: so.seeds, Provider: so.provider, Keep: so.keep, Parallel: so.parallel}, args)
		},
		ValidArgsFunction: exerciseNames(o),
	}
	cmd.Flags().IntVar(&so.seeds, "seeds", 3, "seeds per exercise (1..N)")
	cmd.Flags().StringVar(&so.provider, "provider", "local", "provider of the labs selftest creates")
	cmd.Flags().BoolVar(&so.keep, "keep", false, "keep the labs selftest created")
	cmd.Flags().IntVar(&so.parallel, "parallel", 1, "labs whose exercises run side by side (each lab runs its exercises in order)")
	return cmd
}
