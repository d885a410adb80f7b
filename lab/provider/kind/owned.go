package kind

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"mclab.dev/mclab/lab/state"
)

// The lab's record of the kind clusters it created: the proof of ownership up, down and Unproven go by.

// clustersFile records the kind clusters a lab created.
func (p *Provider) clustersFile() string { return filepath.Join(p.dir, "kind-clusters.json") }

// ownedCluster is a kind cluster of the lab and the lab's name for it.
type ownedCluster struct {
	Kind    string `json:"kind"`
	Cluster string `json:"cluster"`
}

func (p *Provider) recordClusters(names []string) error {
	var owned []ownedCluster
	for i, c := range p.cfg.Scenario.Clusters {
		owned = append(owned, ownedCluster{Kind: names[i], Cluster: c.Name})
	}
	data, err := json.MarshalIndent(owned, "", "  ")
	if err != nil {
		return err
	}
	return state.WriteFile(p.clustersFile(), data)
}

// recorded returns the kind clusters the lab's record lists; a lab from before the record, whose
// earlier up left its kubeconfigs, owns the exact names its scenario gives.
func (p *Provider) recorded() []ownedCluster {
	var owned []ownedCluster
	if data, err := os.ReadFile(p.clustersFile()); err == nil && json.Unmarshal(data, &owned) == nil {
		return owned
	}
	if p.cfg.Scenario != nil {
		for _, c := range p.cfg.Scenario.Clusters {
			if _, err := os.Stat(p.kindKubeconfig(c.Name)); err == nil {
				owned = append(owned, ownedCluster{Kind: ClusterName(p.cfg.Lab, c.Name), Cluster: c.Name})
			}
		}
	}
	return owned
}

// Unproven lists the kind clusters whose names start with the lab's name and a dash but that the lab's
// record does not prove to be its own: for `down` of a lab whose lab.json is gone, which must neither
// delete them (they may be another lab's) nor orphan them silently.
func (p *Provider) Unproven() ([]string, error) {
	existing, err := p.cfg.Runtime.ListClusters()
	if err != nil {
		return nil, err
	}
	mine := map[string]bool{}
	for _, o := range p.recorded() {
		mine[o.Kind] = true
	}
	var out []string
	for _, n := range existing {
		if strings.HasPrefix(n, p.cfg.Lab+"-") && !mine[n] {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// owned returns the kind clusters this lab created, as recorded proves them: never a name the scenario
// merely gives (lab "a"'s cluster "3-c1" is lab "a-3"'s "c1"), never a prefix match.
func (p *Provider) owned() []ownedCluster { return p.recorded() }
