package cli

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/kube"
)

func newKubeconfigCommand(g *globals) *cobra.Command {
	var name string
	var path bool
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print a lab's kubeconfig (one context per cluster, named <lab>-<cluster>), as kind get kubeconfig does",
		Long: `Prints the lab's kubeconfig (0600 in the lab's state; it holds client keys), or its path with --path.
up already merged the lab's contexts into your kubeconfig (see --kubeconfig), so kubectl --context
<lab>-<cluster> works without it; mclab export kubeconfig merges them again.`,
		Example: `  mclab kubeconfig --name multi-network > lab.kubeconfig
  kubectl --kubeconfig $(mclab kubeconfig --name multi-network --path) --context multi-network-c1 get nodes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := labKubeconfig(g, name)
			if err != nil {
				return err
			}
			if path {
				fmt.Fprintln(g.streams.Out, p)
				return nil
			}
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			_, err = g.streams.Out.Write(data)
			return err
		},
	}
	cmd.Flags().StringVar(&name, "name", "", "the lab")
	cmd.Flags().BoolVar(&path, "path", false, "print the file's path instead of its content")
	return cmd
}

// labKubeconfig is the path of a lab's kubeconfig, once its up wrote it.
func labKubeconfig(g *globals, name string) (string, error) {
	if name == "" {
		return "", &exitError{code: 2, err: errors.New("give --name LAB (`mclab list` shows the labs)")}
	}
	m, err := g.manager(false)
	if err != nil {
		return "", err
	}
	if _, err := m.Store.Load(name); err != nil {
		return "", &exitError{code: 2, err: err}
	}
	p := m.Store.Kubeconfig(name)
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("lab %q has no kubeconfig yet (its up did not finish); run `mclab up` again", name)
	}
	return p, nil
}

// newExportCommand is kind's `export kubeconfig` verb: merge a lab's contexts into the user's
// kubeconfig (again) and make its first cluster current.
func newExportCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "export", Short: "Export a lab's kubeconfig (kind's verb)"}
	var name string
	kc := &cobra.Command{
		Use:     "kubeconfig",
		Short:   "Merge a lab's contexts into your kubeconfig and make its first cluster current",
		Example: `  mclab export kubeconfig --name multi-network && kubectl --context multi-network-c2 get nodes`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := labKubeconfig(g, name)
			if err != nil {
				return err
			}
			cfg, err := clientcmd.LoadFromFile(p)
			if err != nil {
				return err
			}
			into, err := kube.MergeIntoUserKubeconfig(cfg, g.kubeconfig)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.streams.Err, "Set kubectl context to %q (in %s).\n", cfg.CurrentContext, into)
			return nil
		},
	}
	kc.Flags().StringVar(&name, "name", "", "the lab")
	cmd.AddCommand(kc)
	return cmd
}
