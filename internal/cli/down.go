package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab"
)

type downOptions struct {
	name string
	all  bool
}

func newDownCommand(g *globals) *cobra.Command {
	o := &downOptions{}
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Delete a lab: stop everything it runs and remove its state",
		Example: `  mclab down --name multi-network
  mclab down --all`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if (o.name == "") == !o.all {
				return usageError(cmd, errors.New("give --name LAB or --all"))
			}
			m, err := g.manager(false)
			if err != nil {
				return err
			}
			names := []string{o.name}
			if o.all {
				if names, err = m.Store.List(); err != nil {
					return err
				}
				if len(names) == 0 {
					fmt.Fprintln(g.streams.Err, "No labs to delete.")
				}
			}
			var errs []error
			for _, n := range names {
				existed, err := m.Down(cmd.Context(), n)
				switch {
				case errors.Is(err, lab.ErrUnproven):
					errs = append(errs, &exitError{code: 2, err: fmt.Errorf("lab %s: %w", n, err)})
				case err != nil:
					errs = append(errs, fmt.Errorf("lab %s: %w", n, err))
				case existed:
					fmt.Fprintf(g.streams.Err, "Deleted lab %q.\n", n)
				default:
					fmt.Fprintf(g.streams.Err, "No lab %q under %s; nothing to delete.\n", n, m.Store.Root)
				}
			}
			if len(errs) == 1 {
				return errs[0]
			}
			return errors.Join(errs...)
		},
	}
	cmd.Flags().StringVar(&o.name, "name", "", "the lab to delete")
	cmd.Flags().BoolVar(&o.all, "all", false, "delete every lab under the state directory")
	return cmd
}
