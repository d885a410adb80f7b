package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

// LabList is what `mclab list -o json|yaml` prints.
type LabList struct {
	TypeMeta
	StateDir string       `json:"stateDir"`
	Items    []LabSummary `json:"items"`
}

// LabSummary is one lab of LabList.
type LabSummary struct {
	Name     string                `json:"name"`
	Provider scenario.ProviderName `json:"provider,omitempty"`
	Phase    string                `json:"phase"`
	Clusters int                   `json:"clusters"`
	Model    scenario.Model        `json:"model,omitempty"`
	Created  *time.Time            `json:"created,omitempty"`
	// Error says why the lab's record could not be read.
	Error string `json:"error,omitempty"`
}

// ScenarioList is what `mclab list --scenarios -o json|yaml` prints.
type ScenarioList struct {
	TypeMeta
	Items []ScenarioSummary `json:"items"`
}

// ScenarioSummary is one built-in scenario.
type ScenarioSummary struct {
	Name        string         `json:"name"`
	Clusters    int            `json:"clusters"`
	Model       scenario.Model `json:"model"`
	Description string         `json:"description"`
}

func newListCommand(g *globals) *cobra.Command {
	var showScenarios bool
	var output string
	cmd := &cobra.Command{
		Use:   "list",
		Short: "List the labs under the state directory (or, with --scenarios, the built-in scenarios)",
		Example: `  mclab list
  mclab list --scenarios
  mclab list -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			out := g.streams.Out
			if showScenarios {
				doc := ScenarioList{TypeMeta: typeMeta("ScenarioList"), Items: []ScenarioSummary{}}
				for _, n := range scenario.BuiltinNames(scenarios.FS) {
					s, err := scenario.Load(n, scenarios.FS)
					if err != nil {
						return fmt.Errorf("built-in scenario %s: %w", n, err)
					}
					doc.Items = append(doc.Items, ScenarioSummary{Name: n, Clusters: len(s.Clusters), Model: s.Istio.Model, Description: s.Description})
				}
				return printDoc(out, output, doc, func() error {
					tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
					fmt.Fprintln(tw, "SCENARIO\tCLUSTERS\tMODEL\tDESCRIPTION")
					for _, s := range doc.Items {
						fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", s.Name, s.Clusters, s.Model, s.Description)
					}
					fmt.Fprintln(tw, "<name>-N\tN\t\tany composed name with N clusters, e.g. multi-network-3")
					return tw.Flush()
				})
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			names, err := m.Store.List()
			if err != nil {
				return err
			}
			doc := LabList{TypeMeta: typeMeta("LabList"), StateDir: m.Store.Root, Items: []LabSummary{}}
			for _, n := range names {
				rec, err := m.Store.Load(n)
				if err != nil {
					doc.Items = append(doc.Items, LabSummary{Name: n, Phase: "unreadable", Error: err.Error()})
					continue
				}
				created := rec.Created
				doc.Items = append(doc.Items, LabSummary{Name: n, Provider: rec.Provider, Phase: string(rec.Phase), Clusters: len(rec.Scenario.Clusters), Model: rec.Scenario.Istio.Model, Created: &created})
			}
			return printDoc(out, output, doc, func() error {
				if len(names) == 0 {
					fmt.Fprintf(g.streams.Err, "No labs under %s. Create one: mclab up --topology multi-network\n", m.Store.Root)
					return nil
				}
				tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "LAB\tPROVIDER\tPHASE\tCLUSTERS\tMODEL\tCREATED")
				for _, l := range doc.Items {
					if l.Error != "" {
						fmt.Fprintf(tw, "%s\t?\tunreadable\t\t\t%s\n", l.Name, l.Error)
						continue
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", l.Name, l.Provider, l.Phase, l.Clusters, l.Model, l.Created.Format("2006-01-02 15:04"))
				}
				return tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&showScenarios, "scenarios", false, "list the built-in scenarios instead")
	addOutputFlag(cmd, &output)
	return cmd
}
