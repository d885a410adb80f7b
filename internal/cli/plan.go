package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/scenario"
)

type planOptions struct {
	scenarioFlags
	showScenario bool
	output       string
}

// PlanDoc is what `mclab plan -o json|yaml` prints: the resolved scenario and every step.
type PlanDoc struct {
	TypeMeta
	Lab      string             `json:"lab"`
	Provider string             `json:"provider"`
	Notes    []string           `json:"notes,omitempty"`
	Steps    []PlanStep         `json:"steps"`
	Scenario *scenario.Scenario `json:"scenario"`
}

// PlanStep is one step of PlanDoc.
type PlanStep struct {
	Title   string   `json:"title"`
	Details []string `json:"details,omitempty"`
}

func newPlanCommand(g *globals) *cobra.Command {
	o := &planOptions{}
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Print every step up would take, without doing anything",
		Example: `  mclab plan --topology multi-network --provider local
  mclab plan --scenario istio-ci --show-scenario
  mclab plan --topology single-network -o yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(o.output); err != nil {
				return err
			}
			s, name, err := o.resolve(cmd)
			if err != nil {
				return usageError(cmd, err)
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			pl, _, err := m.Plan(cmd.Context(), s, name)
			if err != nil {
				return err
			}
			doc := PlanDoc{TypeMeta: typeMeta("Plan"), Lab: pl.Lab, Provider: pl.Provider, Notes: pl.Notes, Scenario: s}
			for _, st := range pl.Steps {
				doc.Steps = append(doc.Steps, PlanStep{Title: st.Title, Details: st.Details})
			}
			return printDoc(g.streams.Out, o.output, doc, func() error {
				if o.showScenario {
					data, err := scenario.Marshal(s)
					if err != nil {
						return err
					}
					fmt.Fprintf(g.streams.Out, "# resolved scenario\n%s\n", data)
				}
				pl.Print(g.streams.Out)
				return nil
			})
		},
	}
	o.add(cmd, g)
	cmd.Flags().BoolVar(&o.showScenario, "show-scenario", false, "also print the resolved scenario (defaults filled in; -o json|yaml always has it)")
	addOutputFlag(cmd, &o.output)
	return cmd
}
