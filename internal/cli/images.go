package cli

import (
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/images"
)

func newImagesCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "images [NAME...]",
		Short: "Build the images a kind lab needs from source into Docker, for machines with no registry",
		Long: `Build, from pinned source on this host, the images an offline kind lab needs (` + strings.Join(images.All, ", ") + `):
Istio's pilot (from the local provider's pilot-discovery), an agent-only proxyv2 (pilot-agent without
Envoy, for proxyless gRPC), Istio's echo app, and MetalLB ` + images.MetalLBVersion + `'s controller and speaker, tagged as
the manifests name them. An image whose content is unchanged is not rebuilt. ` + "`mclab up --provider kind --offline-images`" + `
builds what it needs itself and loads it into the nodes.`,
		Example: `  mclab images                 # all of them
  mclab images pilot proxyv2`,
		ValidArgs: images.All,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = images.All
			}
			cache, err := binaries.DefaultCacheDir()
			if err != nil {
				return err
			}
			b := &images.Builder{CacheDir: cache, Runner: exec.OS{}, Binaries: &binaries.Builder{CacheDir: cache, Out: g.streams.Err}, Out: g.streams.Err}
			refs, err := b.Ensure(cmd.Context(), args...)
			if err != nil {
				return err
			}
			for _, r := range refs {
				fmt.Fprintln(g.streams.Out, r)
			}
			return nil
		},
	}
}
