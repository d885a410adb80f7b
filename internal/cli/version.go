package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
)

// Version is mclab's version, set at build time with -ldflags "-X mclab.dev/mclab/internal/cli.Version=...".
var Version = "dev"

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print mclab's version and the upstream versions it pins",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			rev := ""
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						rev = " (" + s.Value + ")"
					}
				}
			}
			out := g.streams.Out
			fmt.Fprintf(out, "mclab %s%s %s %s/%s\n", Version, rev, runtime.Version(), runtime.GOOS, runtime.GOARCH)
			for _, k := range []string{"kubernetes", "etcd", "kwok", "istio"} {
				fmt.Fprintf(out, "  %-10s %s\n", k, binaries.Versions[k])
			}
			return nil
		},
	}
}
