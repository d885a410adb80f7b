package cli

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/validation"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

// scenarioFlags are the flags that choose a scenario, shared by up and plan.
type scenarioFlags struct {
	scenario      string
	topology      string
	model         string
	clusters      int
	provider      string
	name          string
	offlineImages bool
	samples       string
	contexts      []string
	istioVersion  string
	chartRepo     string
	hub           string
	g             *globals
}

func (f *scenarioFlags) add(cmd *cobra.Command, g *globals) {
	f.g = g
	fs := cmd.Flags()
	fs.StringArrayVar(&f.contexts, "context", nil, "existing provider: CLUSTER=CONTEXT maps a cluster of the scenario to a kubeconfig context (repeat per cluster; provider.existing.contexts)")
	fs.StringVar(&f.scenario, "scenario", "", "a scenario file (YAML, or Istio's topology JSON) or a built-in name (see mclab list --scenarios)")
	fs.StringVar(&f.topology, "topology", string(scenario.MultiNetwork), "composed scenario: single-network or multi-network")
	fs.StringVar(&f.model, "model", string(scenario.MultiPrimary), "composed scenario: multi-primary, primary-remote or federated")
	fs.IntVar(&f.clusters, "clusters", scenario.DefaultClusters, "composed scenario: number of clusters")
	fs.StringVar(&f.provider, "provider", "", "auto, kind, local or existing (default: the scenario's, else auto)")
	fs.StringVar(&f.name, "name", "", "lab name (default: the scenario's name)")
	fs.BoolVar(&f.offlineImages, "offline-images", false, "kind: build the images the lab needs from source and load them into the nodes (no registry needed; provider.kind.offlineImages)")
	fs.StringVar(&f.istioVersion, "istio-version", "", "Istio to install: a published release (e.g. 1.30.1: charts from Istio's chart repository, installed as Helm releases) or "+scenario.DefaultIstioVersion+", built in and offline (default: the scenario's, else "+scenario.DefaultIstioVersion+"); on a lab that exists, upgrades it in place (istio.version)")
	fs.StringVar(&f.chartRepo, "istio-chart-repository", "", "Helm chart repository of a release's charts (default https://istio-release.storage.googleapis.com/charts; istio.chartRepository)")
	fs.StringVar(&f.hub, "istio-hub", "", "registry and path of Istio's images (pilot, proxyv2), e.g. a mirror of docker.io/istio (istio.hub)")
	fs.StringVar(&f.samples, "samples", "", "sample workloads: sidecar, proxyless (gRPC without Envoy), all or none (default: the scenario's, else proxyless with --offline-images, else sidecar; istio.samples)")
}

// resolve returns the scenario the flags choose, with the provider override applied, and the lab name.
// choosesScenario reports whether the command line says which scenario to use (otherwise `up --name`
// of an existing lab reuses the lab's).
func (f *scenarioFlags) choosesScenario(cmd *cobra.Command) bool {
	for _, n := range []string{"scenario", "topology", "model", "clusters", "provider", "offline-images", "samples", "context"} {
		if cmd.Flags().Changed(n) {
			return true
		}
	}
	return false
}

func (f *scenarioFlags) resolve(cmd *cobra.Command) (*scenario.Scenario, string, error) {
	composedFlags := []string{}
	for _, n := range []string{"topology", "model", "clusters"} {
		if cmd.Flags().Changed(n) {
			composedFlags = append(composedFlags, "--"+n)
		}
	}
	var s *scenario.Scenario
	var err error
	if f.scenario != "" {
		if len(composedFlags) > 0 {
			return nil, "", fmt.Errorf("--scenario and %v choose a scenario two ways; give one or the other", composedFlags)
		}
		s, err = scenario.Load(f.scenario, scenarios.FS)
	} else {
		s, err = scenario.Compose(scenario.Topology(f.topology), scenario.Model(f.model), f.clusters)
	}
	if err != nil {
		return nil, "", err
	}
	if f.provider != "" {
		p := scenario.ProviderName(f.provider)
		if !slices.Contains(scenario.Providers, p) {
			return nil, "", fmt.Errorf("--provider %q is not supported; use one of %v", f.provider, scenario.Providers)
		}
		s.Provider.Name = p
	}
	if f.offlineImages {
		if s.Provider.Kind == nil {
			s.Provider.Kind = &scenario.KindOptions{}
		}
		s.Provider.Kind.OfflineImages = true
	}
	if f.samples != "" {
		s.Istio.Samples = f.samples
	}
	if len(f.contexts) > 0 || s.Provider.Name == scenario.ProviderExisting && f.g != nil && f.g.kubeconfig != "" {
		if s.Provider.Name != scenario.ProviderExisting {
			return nil, "", fmt.Errorf("--context maps clusters to contexts of the existing provider; add --provider existing")
		}
		if s.Provider.Existing == nil {
			s.Provider.Existing = &scenario.ExistingOptions{}
		}
		if f.g != nil && f.g.kubeconfig != "" {
			s.Provider.Existing.Kubeconfig = f.g.kubeconfig
		}
		for _, m := range f.contexts {
			cluster, ctx, ok := strings.Cut(m, "=")
			if !ok || cluster == "" || ctx == "" {
				return nil, "", fmt.Errorf("--context %q: write CLUSTER=CONTEXT, e.g. --context c1=gke_prod_east", m)
			}
			if s.Cluster(cluster) == nil {
				return nil, "", fmt.Errorf("--context %q: the scenario has no cluster %s", m, cluster)
			}
			if s.Provider.Existing.Contexts == nil {
				s.Provider.Existing.Contexts = map[string]string{}
			}
			s.Provider.Existing.Contexts[cluster] = ctx
		}
	}
	if err := f.applyIstio(s); err != nil {
		return nil, "", err
	}
	name := s.Name
	if f.name != "" {
		name = f.name
	}
	if err := validLabName(name); err != nil {
		return nil, "", err
	}
	return s, name, nil
}

// applyIstio applies --istio-version and --istio-chart-repository to s (a scenario resolved from the
// flags, or an existing lab's own), then defaults and validates it.
func (f *scenarioFlags) applyIstio(s *scenario.Scenario) error {
	if strings.Contains(f.istioVersion, ",") {
		return fmt.Errorf("--istio-version %q: a lab runs one Istio version; for a version matrix run one lab per version (ci/ workflows: the istio-version matrix)", f.istioVersion)
	}
	if f.istioVersion != "" {
		s.Istio.Version = f.istioVersion
	}
	if f.chartRepo != "" {
		s.Istio.ChartRepository = f.chartRepo
	}
	if f.hub != "" {
		s.Istio.Hub = f.hub
	}
	s.Default() // again: defaults that depend on what the flags changed (the federation's exports)
	return s.Validate("flags")
}

func validLabName(name string) error {
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("lab name %q: %s; choose another --name", name, strings.Join(msgs, "; "))
	}
	return nil
}
