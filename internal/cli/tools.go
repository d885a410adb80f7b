package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
)

func newToolsCommand(g *globals) *cobra.Command {
	var printKey bool
	var from string
	cmd := &cobra.Command{
		Use:   "tools",
		Short: "Build the upstream binaries the local provider runs, once, into the shared cache",
		Long: `Build kube-apiserver, kube-controller-manager, kube-scheduler, etcd, kwok and pilot-discovery from the
pinned upstream source (lab/upstream) through the Go module proxy. The first build took 15 min 19 s on a
clean 2-core machine (kube-apiserver alone 5 min 54 s), 9 min 28 s with the modules already downloaded;
later calls return at once. up does this itself when needed.

With --from release (or MCLAB_UPSTREAM_FROM=release), Kubernetes, etcd and kwok are downloaded from their
official release artifacts instead (dl.k8s.io with each binary's .sha256; etcd's GitHub release with its
SHA256SUMS; kwok's GitHub release with the digest GitHub's releases API publishes), each refused unless
its sha256 is the published one; only pilot-discovery of the built-in Istio is built. Every later up
uses whichever complete set is in the cache.`,
		Example: `  mclab tools                       # build once; make lab needs nothing else
  MCLAB_BIN_DIR=/opt/mclab/bin mclab up --provider local   # or bring prebuilt binaries
  mclab tools --from release         # Kubernetes, etcd, kwok from official release artifacts
  mclab tools --print-key            # the CI cache key of ~/.cache/mclab`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cache, err := binaries.DefaultCacheDir()
			if err != nil {
				return err
			}
			b := &binaries.Builder{CacheDir: cache, Out: g.streams.Err, From: from}
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
	cmd.Flags().StringVar(&from, "from", "", "where the programs come from: source (build from pinned source, the default) or release (official release artifacts, checksums verified; $MCLAB_UPSTREAM_FROM)")
	_ = cmd.RegisterFlagCompletionFunc("from", cobra.FixedCompletions([]string{binaries.FromSource, binaries.FromRelease}, cobra.ShellCompDirectiveNoFileComp))
	return cmd
}
