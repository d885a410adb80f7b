package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
)

func newToolsCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "tools",
		Short: "Build the upstream binaries the local provider runs, once, into the shared cache",
		Long: `Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and pilot-discovery from the
pinned upstream source (lab/upstream) through the Go module proxy. The first build took 15 min 19 s on a
clean 2-core machine (kube-apiserver alone 5 min 54 s); later calls return at once. up does this itself
when needed.`,
		Example: `  mclab tools                       # build once; make lab needs nothing else
  MCLAB_BIN_DIR=/opt/mclab/bin mclab up --provider local   # or bring prebuilt binaries`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := binaries.DefaultCacheDir()
			if err != nil {
				return err
			}
			set, err := (&binaries.Builder{CacheDir: cache, Out: g.streams.Err}).Ensure(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.streams.Out, set.Dir)
			return nil
		},
	}
}
