package suites

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/reports"
)

// WriteReports writes the conformance report and the HTML summary of a run against t into dir (0600).
func WriteReports(dir string, cr *reports.ConformanceReport, t *Target) error {
	data, err := yaml.Marshal(cr)
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "conformance-report.yaml"), reports.RedactBytes(data), 0o600); err != nil {
		return err
	}
	var clusters []reports.TopologyCluster
	for _, c := range t.Scenario.Clusters {
		tc := reports.TopologyCluster{Name: c.Name, Network: c.Network, Mesh: c.Mesh, Role: string(c.Role)}
		if c.Role == scenario.Remote {
			tc.Primary = c.Primary
		}
		if addr, err := GatewayAddress(context.Background(), t, c.Name); err == nil {
			tc.Gateway = addr
		}
		clusters = append(clusters, tc)
	}
	f, err := os.OpenFile(filepath.Join(dir, "summary.html"), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return reports.WriteHTML(f, cr, clusters, topologyLinks(t.Scenario)...)
}

// topologyLinks are the relations the HTML picture draws besides a remote's primary: primaries of a
// mesh reading each other through remote secrets, and federated meshes' exports.
func topologyLinks(s *scenario.Scenario) []reports.TopologyLink {
	var out []reports.TopologyLink
	for i, a := range s.Clusters {
		for _, b := range s.Clusters[i+1:] {
			if a.Role == scenario.Primary && b.Role == scenario.Primary && a.Mesh == b.Mesh {
				out = append(out, reports.TopologyLink{From: a.Name, To: b.Name, Kind: "reads", Label: a.Name + " and " + b.Name + " read each other through remote secrets"})
			}
		}
	}
	if f := s.Istio.Federation; f != nil {
		for _, e := range f.Exports {
			from := ""
			for _, c := range s.Clusters {
				if c.Mesh == e.Mesh && from == "" {
					from = c.Name
				}
			}
			seen := map[string]bool{}
			for _, c := range s.Clusters {
				if c.Mesh != e.Mesh && c.Role == scenario.Primary && !seen[c.Mesh] && from != "" {
					seen[c.Mesh] = true
					out = append(out, reports.TopologyLink{From: from, To: c.Name, Kind: "exports", Label: fmt.Sprintf("mesh %s exports %s to mesh %s", e.Mesh, strings.Join(e.Hosts, ", "), c.Mesh)})
				}
			}
		}
	}
	return out
}
