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
pinned upstream source (lab/upstream) through the Go module proxy. The first build takes about 11 minutes
on 2 cores; later calls return at once. up does this itself when needed.`,
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
