package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/istio/release"
	"mclab.dev/mclab/lab/scenario"
)

// Version is mclab's version, set at build time with -ldflags "-X mclab.dev/mclab/internal/cli.Version=...".
var Version = "dev"

// VersionInfo is what `mclab version -o json|yaml` prints.
type VersionInfo struct {
	TypeMeta `json:",inline"`
	Mclab    string `json:"mclab"`
	Revision string `json:"revision,omitempty"`
	Go       string `json:"go"`
	Platform string `json:"platform"`
	// Upstream are the versions mclab pins (Kubernetes, etcd, kwok, Istio).
	Upstream map[string]string `json:"upstream"`
	// Istio says which Istio `up` installs by default and where its charts and istiod come from, and
	// where a release's come from.
	Istio IstioSources `json:"istio"`
}

// IstioSources are where Istio's charts and programs come from.
type IstioSources struct {
	Default string `json:"default"`
	Charts  string `json:"charts"`
	// Releases is where --istio-version's charts and pilot images come from.
	Releases string `json:"releases"`
}

func newVersionCommand(g *globals) *cobra.Command {
	var output string
	cmd := &cobra.Command{
		Use:     "version",
		Short:   "Print mclab's version and the upstream versions it pins",
		Example: "  mclab version\n  mclab version -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output); err != nil {
				return err
			}
			v := VersionInfo{TypeMeta: typeMeta("Version"), Mclab: Version, Go: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH, Upstream: map[string]string{}}
			if bi, ok := debug.ReadBuildInfo(); ok {
				for _, s := range bi.Settings {
					if s.Key == "vcs.revision" {
						v.Revision = s.Value
					}
				}
			}
			for _, k := range []string{"kubernetes", "etcd", "kwok", "istio"} {
				v.Upstream[k] = binaries.Versions[k]
			}
			v.Istio = IstioSources{Default: scenario.DefaultIstioVersion, Charts: istio.EmbeddedSource,
				Releases: "--istio-version X.Y.Z: charts from " + release.DefaultChartRepository + " (digest-checked), images and the local provider's pilot-discovery from " + release.DefaultHub + "/pilot:X.Y.Z (digest-checked)"}
			return printDoc(g.streams.Out, output, v, func() error {
				rev := ""
				if v.Revision != "" {
					rev = " (" + v.Revision + ")"
				}
				out := g.streams.Out
				fmt.Fprintf(out, "mclab %s%s %s %s\n", v.Mclab, rev, v.Go, v.Platform)
				for _, k := range []string{"kubernetes", "etcd", "kwok", "istio"} {
					fmt.Fprintf(out, "  %-10s %s\n", k, v.Upstream[k])
				}
				fmt.Fprintf(out, "Istio installed by default: %s, %s\nOther Istio releases: %s\n", v.Istio.Default, v.Istio.Charts, v.Istio.Releases)
				return nil
			})
		},
	}
	addOutputFlag(cmd, &output)
	return cmd
}
