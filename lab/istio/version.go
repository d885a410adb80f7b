package istio

import (
	"context"
	"fmt"
	"slices"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/istio/release"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// EmbeddedSource says where the built-in Istio's charts and pilot-discovery come from.
var EmbeddedSource = "built into mclab: istio.io/istio " + binaries.Versions["istio"] + " (manifests/charts; pilot-discovery built from the same module)"

// IsRelease reports whether the scenario asks for a published Istio release rather than the built-in one.
func IsRelease(s *scenario.Scenario) bool {
	return s.Istio.Version != "" && s.Istio.Version != scenario.DefaultIstioVersion
}

// ChartRepository is the chart repository a release's charts come from.
func ChartRepository(s *scenario.Scenario) string {
	if s.Istio.ChartRepository != "" {
		return s.Istio.ChartRepository
	}
	return release.DefaultChartRepository
}

// Release is the Istio a lab installs: its version, where it came from, and its charts.
type Release struct {
	state.IstioRelease
	charts Charts
}

// Release returns the lab's Istio release (istio.version), fetching it on first use (FetchSteps does it
// up front).
func (in *Installer) Release(ctx context.Context) (*Release, error) {
	return in.release(ctx, in.S.Istio.Version, in.hasProcessPrimary(in.S.Istio.Version))
}

// releaseFor is the release cluster c runs: its own istioVersion, else the lab's.
func (in *Installer) releaseFor(ctx context.Context, c scenario.Cluster) (*Release, error) {
	v := ClusterVersion(in.S, c)
	return in.release(ctx, v, in.hasProcessPrimary(v))
}

// ClusterVersion is the Istio version of cluster c: clusters[].istioVersion, else istio.version.
func ClusterVersion(s *scenario.Scenario, c scenario.Cluster) string {
	if c.IstioVersion != "" {
		return c.IstioVersion
	}
	return s.Istio.Version
}

// Versions are the distinct Istio versions of the lab's clusters, the lab's own first.
func Versions(s *scenario.Scenario) []string {
	out := []string{s.Istio.Version}
	for _, c := range s.Clusters {
		if v := ClusterVersion(s, c); !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

// hasProcessPrimary says whether a primary running version v runs istiod as a host process (then its
// pilot-discovery is the release's, taken from its pilot image).
func (in *Installer) hasProcessPrimary(v string) bool {
	if _, process := in.processes(); !process {
		return false
	}
	for _, c := range in.S.Clusters {
		if c.Role == scenario.Primary && ClusterVersion(in.S, c) == v {
			return true
		}
	}
	return false
}

func (in *Installer) release(ctx context.Context, version string, pilot bool) (*Release, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if rel, ok := in.rels[version]; ok {
		return rel, nil
	}
	if in.rels == nil {
		in.rels = map[string]*Release{}
	}
	if version == "" || version == scenario.DefaultIstioVersion {
		rel := &Release{IstioRelease: state.IstioRelease{Version: scenario.DefaultIstioVersion, Charts: EmbeddedSource}, charts: EmbeddedCharts()}
		if pilot {
			rel.Pilot = "pilot-discovery built from source (lab/upstream)"
		}
		in.rels[version] = rel
		return rel, nil
	}
	f := &release.Fetcher{CacheDir: in.CacheDir, Out: in.Out}
	repo := ChartRepository(in.S)
	charts, err := f.Charts(ctx, repo, version, ChartBase, ChartIstiod, ChartGateway)
	if err != nil {
		return nil, err
	}
	rel := &Release{IstioRelease: state.IstioRelease{Version: version, Charts: repo, ChartDigests: map[string]string{}}, charts: LoadedCharts{}}
	for n, c := range charts {
		rel.ChartDigests[n] = c.Digest
		rel.charts.(LoadedCharts)[n] = c.Chart
	}
	if pilot {
		bin, err := f.PilotDiscovery(ctx, imageRefVersion(in.S, "pilot", version))
		if err != nil {
			return nil, err
		}
		rel.Pilot = bin.Image + "@" + bin.Digest
		rel.PilotDiscovery = bin.Path
	}
	in.rels[version] = rel
	return rel, nil
}

// FetchSteps fetch and verify the releases' artifacts before anything is created (none for the
// built-in Istio).
func (in *Installer) FetchSteps() []plan.Step {
	var steps []plan.Step
	for _, v := range Versions(in.S) {
		if v == scenario.DefaultIstioVersion {
			continue
		}
		d := []string{fmt.Sprintf("charts %s, %s and %s %s from %s (Helm's repository index; each archive checked against the sha256 digest the index publishes; cached under %s/istio/charts)", ChartBase, ChartIstiod, ChartGateway, v, ChartRepository(in.S), in.CacheDir)}
		if in.hasProcessPrimary(v) {
			d = append(d, fmt.Sprintf("pilot-discovery from %s (registry API; the manifest digest recorded, every layer checked against its digest; cached by digest): the local provider's istiod processes run it", imageRefVersion(in.S, "pilot", v)))
		}
		steps = append(steps, plan.Step{Title: "Fetching Istio " + v, Details: d, Run: func(ctx context.Context) error {
			_, err := in.release(ctx, v, in.hasProcessPrimary(v))
			return err
		}})
	}
	return steps
}

// UpgradeNote says what `up` does when a lab's Istio version changes: an in-place upgrade with Helm, in
// the order of Istio's Helm upgrade docs.
func UpgradeNote(prev, next *scenario.Scenario) string {
	return fmt.Sprintf("upgrading Istio in place from %s to %s: `helm upgrade` of istio-base (CRDs) in every cluster, then istiod on the primaries, then the remotes' istiod release, then the east-west gateways, as istio.io's Helm upgrade docs order it "+
		"(in-place: every model; a revision-based canary upgrade, istiod-<rev> beside the old one, is not done by mclab: run it on the lab with helm as the docs show)", prev.Istio.Version, next.Istio.Version)
}
