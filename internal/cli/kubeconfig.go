package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

func newKubeconfigCommand(g *globals) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:     "kubeconfig",
		Short:   "Print the path of a lab's kubeconfig (one context per cluster, named <lab>-<cluster>)",
		Example: `  kubectl --kubeconfig $(mclab kubeconfig --name multi-network) --context multi-network-c1 get nodes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if name == "" {
				return errors.New("give --name LAB (`mclab list` shows the labs)")
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			if _, err := m.Store.Load(name); err != nil {
				return err
			}
			path := m.Store.Kubeconfig(name)
			if _, err := os.Stat(path); err != nil {
				return fmt.Errorf("lab %q has no kubeconfig yet (its up did not finish); run `mclab up` again", name)
			}
			fmt.Fprintln(g.streams.Out, path)
			return nil
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab")
	return cmd
}
