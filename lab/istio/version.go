package istio

import (
	"context"
	"fmt"

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

// Release returns the lab's Istio release, fetching it on first use (FetchStep does it up front).
func (in *Installer) Release(ctx context.Context) (*Release, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.rel != nil {
		return in.rel, nil
	}
	if !IsRelease(in.S) {
		in.rel = &Release{IstioRelease: state.IstioRelease{Version: scenario.DefaultIstioVersion, Charts: EmbeddedSource}, charts: EmbeddedCharts()}
		if _, process := in.processes(); process {
			in.rel.Pilot = "pilot-discovery built from source (lab/upstream)"
		}
		return in.rel, nil
	}
	f := &release.Fetcher{CacheDir: in.CacheDir, Out: in.Out}
	repo := ChartRepository(in.S)
	charts, err := f.Charts(ctx, repo, in.S.Istio.Version, ChartBase, ChartIstiod, ChartGateway)
	if err != nil {
		return nil, err
	}
	rel := &Release{IstioRelease: state.IstioRelease{Version: in.S.Istio.Version, Charts: repo, ChartDigests: map[string]string{}}, charts: LoadedCharts{}}
	for n, c := range charts {
		rel.ChartDigests[n] = c.Digest
		rel.charts.(LoadedCharts)[n] = c.Chart
	}
	if _, process := in.processes(); process {
		bin, err := f.PilotDiscovery(ctx, ImageRef(in.S, "pilot"))
		if err != nil {
			return nil, err
		}
		rel.Pilot = bin.Image + "@" + bin.Digest
		rel.PilotDiscovery = bin.Path
	}
	in.rel = rel
	return rel, nil
}

// FetchSteps fetch and verify a release's artifacts before anything is created (none for the built-in
// Istio).
func (in *Installer) FetchSteps() []plan.Step {
	if !IsRelease(in.S) {
		return nil
	}
	d := []string{fmt.Sprintf("charts %s, %s and %s %s from %s (Helm's repository index; each archive checked against the sha256 digest the index publishes; cached under %s/istio/charts)", ChartBase, ChartIstiod, ChartGateway, in.S.Istio.Version, ChartRepository(in.S), in.CacheDir)}
	if _, process := in.processes(); process {
		d = append(d, fmt.Sprintf("pilot-discovery from %s (registry API; the manifest digest recorded, every layer checked against its digest; cached by digest): the local provider's istiod processes run it", ImageRef(in.S, "pilot")))
	}
	return []plan.Step{{Title: "Fetching Istio " + in.S.Istio.Version, Details: d, Run: func(ctx context.Context) error {
		_, err := in.Release(ctx)
		return err
	}}}
}

// UpgradeNote says what `up` does when a lab's Istio version changes: an in-place upgrade with Helm, in
// the order of Istio's Helm upgrade docs.
func UpgradeNote(prev, next *scenario.Scenario) string {
	return fmt.Sprintf("upgrading Istio in place from %s to %s: `helm upgrade` of istio-base (CRDs) in every cluster, then istiod on the primaries, then the remotes' istiod release, then the east-west gateways, as istio.io's Helm upgrade docs order it "+
		"(in-place: every model; a revision-based canary upgrade, istiod-<rev> beside the old one, is not done by mclab: run it on the lab with helm as the docs show)", prev.Istio.Version, next.Istio.Version)
}
