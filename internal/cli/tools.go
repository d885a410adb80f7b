package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
)

func newToolsCommand(g *globals) *cobra.Command {
	var printKey bool
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Build the upstream binaries the local provider runs, once, into the shared cache",
		Long: `Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and pilot-discovery from the
pinned upstream source (lab/upstream) through the Go module proxy. The first build took 15 min 19 s on a
clean 2-core machine (kube-apiserver alone 5 min 54 s); later calls return at once. up does this itself
when needed.`,
		Example: `  mclab tools                       # build once; make lab needs nothing else
  MCLAB_BIN_DIR=/opt/mclab/bin mclab up --provider local   # or bring prebuilt binaries
  mclab tools --print-key            # the CI cache key of ~/.cache/mclab`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := binaries.DefaultCacheDir()
			if err != nil {
				return err
			}
			b := &binaries.Builder{CacheDir: cache, Out: g.streams.Err}
			if printKey {
				key, err := b.CacheKey(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintln(g.streams.Out, key)
				return nil
			}
			set, err := b.Ensure(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintln(g.streams.Out, set.Dir)
			return nil
		},
	}
	cmd.Flags().BoolVar(&printKey, "print-key", false, "print the cache key of the binaries (the pins, the Go version, the build flags) and build nothing: a CI cache keyed on it is reused exactly when mclab would reuse its own")
	return cmd
}
