package cli

import (
	"github.com/spf13/cobra"
)

type upOptions struct {
	scenarioFlags
	retain    bool
	skipIstio bool
}

func newUpCommand(g *globals) *cobra.Command {
	o := &upOptions{}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Create a lab, or converge one that exists",
		Long: `Create the scenario's clusters, install Istio across them in the scenario's model (multi-primary,
primary-remote or federated; --skip-istio for clusters only) with the samples, and merge the lab's
contexts into your kubeconfig (as kind does; down removes them). mclab plan prints every step first.
Running up again on a lab converges it: what runs is kept, what is missing is started.
A failed or interrupted up of a new lab removes everything it made (--retain keeps it).`,
		Example: `  mclab up --topology multi-network --provider local
  mclab up --scenario istio-ci
  mclab up --name multi-network            # converge an existing lab with its own scenario
  mclab up --topology multi-network --istio-version 1.30.1   # a published release, as Helm releases
  mclab up --name multi-network --istio-version 1.31.0       # upgrade the lab's Istio in place
  mclab up --scenario ./my-lab.yaml --name demo`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			m, err := g.manager(o.retain)
			if err != nil {
				return err
			}
			// `mclab up --name LAB` on a lab that exists converges it with its own scenario.
			// --istio-version on such a lab upgrades its Istio in place.
			if rec, err := m.Store.Load(o.name); err == nil && o.name != "" && !o.choosesScenario(cmd) {
				m.SkipIstio = o.skipIstio || !rec.Istio
				if err := o.applyIstio(rec.Scenario); err != nil {
					return err
				}
				return m.Up(cmd.Context(), rec.Scenario, o.name)
			}
			s, name, err := o.resolve(cmd)
			if err != nil {
				return usageError(cmd, err)
			}
			m.SkipIstio = o.skipIstio
			return m.Up(cmd.Context(), s, name)
		},
	}
	o.add(cmd, g)
	cmd.Flags().BoolVar(&o.retain, "retain", false, "keep what a failed up made, for debugging")
	cmd.Flags().BoolVar(&o.skipIstio, "skip-istio", false, "create the clusters only, without installing Istio")
	cmd.Flags().BoolVar(&o.skipIstio, "skip-install", false, "the same as --skip-istio: with --provider existing, map the clusters of an installed mesh for mclab verify")
	return cmd
}
