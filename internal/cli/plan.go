package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/scenario"
)

type planOptions struct {
	scenarioFlags
	showScenario bool
}

func newPlanCommand(g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print every step up would take, without doing anything",
		Example: `  mclab plan --topology multi-network --provider local
  mclab plan --scenario istio-ci --show-scenario`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, name, err := o.resolve(cmd)
			if err != nil {
				return err
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			if o.showScenario {
				data, err := scenario.Marshal(s)
				if err != nil {
					return err
				}
				fmt.Fprintf(g.streams.Out, "# resolved scenario\n%s\n", data)
			}
			pl, _, err := m.Plan(cmd.Context(), s, name)
			if err != nil {
				return err
			}
			pl.Print(g.streams.Out)
			return nil
		},
	}
	o.add(cmd, g)
	cmd.Flags().BoolVar(&o.showScenario, "show-scenario", false, "also print the resolved scenario (defaults filled in)")
	return cmd
}
