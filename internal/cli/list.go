package cli

import (
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

func newListCommand(g *globals) *cobra.Command {
	var showScenarios bool
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the labs under the state directory (or, with --scenarios, the built-in scenarios)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			out := g.streams.Out
			if showScenarios {
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SCENARIO\tCLUSTERS\tMODEL\tDESCRIPTION")
				for _, n := range scenario.BuiltinNames(scenarios.FS) {
					s, err := scenario.Load(n, scenarios.FS)
					if err != nil {
						return fmt.Errorf("built-in scenario %s: %w", n, err)
					}
					fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", n, len(s.Clusters), s.Istio.Model, s.Description)
				}
				fmt.Fprintln(tw, "<name>-N\tN\t\tany composed name with N clusters, e.g. multi-network-3")
				return tw.Flush()
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			names, err := m.Store.List()
			if err != nil {
				return err
			}
			if len(names) == 0 {
				fmt.Fprintf(g.streams.Err, "No labs under %s. Create one: mclab up --topology multi-network\n", m.Store.Root)
				return nil
			}
			tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "LAB\tPROVIDER\tPHASE\tCLUSTERS\tMODEL\tCREATED")
			for _, n := range names {
				rec, err := m.Store.Load(n)
				if err != nil {
					fmt.Fprintf(tw, "%s\t?\tunreadable\t\t\t%v\n", n, err)
					continue
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", n, rec.Provider, rec.Phase, len(rec.Scenario.Clusters), rec.Scenario.Istio.Model, rec.Created.Format("2006-01-02 15:04"))
			}
			return tw.Flush()
		},
	}
	cmd.Flags().BoolVar(&showScenarios, "scenarios", false, "list the built-in scenarios instead")
	return cmd
}
