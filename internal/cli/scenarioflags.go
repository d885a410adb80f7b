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
}

func (f *scenarioFlags) add(cmd *cobra.Command) {
	fs := cmd.Flags()
	fs.StringVar(&f.scenario, "scenario", "", "a scenario file (YAML, or Istio's topology JSON) or a built-in name (`mclab list --scenarios`)")
	fs.StringVar(&f.topology, "topology", string(scenario.MultiNetwork), "composed scenario: single-network or multi-network")
	fs.StringVar(&f.model, "model", string(scenario.MultiPrimary), "composed scenario: multi-primary, primary-remote or federated")
	fs.IntVar(&f.clusters, "clusters", scenario.DefaultClusters, "composed scenario: number of clusters")
	fs.StringVar(&f.provider, "provider", "", "auto, kind, local or existing (default: the scenario's, else auto)")
	fs.StringVar(&f.name, "name", "", "lab name (default: the scenario's name)")
	fs.BoolVar(&f.offlineImages, "offline-images", false, "kind: build the images the lab needs from source and load them into the nodes (no registry needed; provider.kind.offlineImages)")
	fs.StringVar(&f.samples, "samples", "", "sample workloads: sidecar, proxyless (gRPC without Envoy), all or none (default: the scenario's, else proxyless with --offline-images, else sidecar; istio.samples)")
}

// resolve returns the scenario the flags choose, with the provider override applied, and the lab name.
// choosesScenario reports whether the command line says which scenario to use (otherwise `up --name`
// of an existing lab reuses the lab's).
func (f *scenarioFlags) choosesScenario(cmd *cobra.Command) bool {
	for _, n := range []string{"scenario", "topology", "model", "clusters", "provider", "offline-images", "samples"} {
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
	s.Default() // again: defaults that depend on what the flags changed (the federation's exports)
	if err := s.Validate("flags"); err != nil {
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

func validLabName(name string) error {
	if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
		return fmt.Errorf("lab name %q: %s; choose another --name", name, strings.Join(msgs, "; "))
	}
	return nil
}
