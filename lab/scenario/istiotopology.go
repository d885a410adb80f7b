package scenario

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
)

// IstioTopologyCluster is one entry of Istio's integration-test topology file
// (istio.io/istio prow/config/topology/*.json; schema in pkg/test/framework/components/cluster/config.go).
type IstioTopologyCluster struct {
	Kind               string          `json:"kind,omitempty"`
	ClusterName        string          `json:"clusterName"`
	Network            string          `json:"network,omitempty"`
	PodSubnet          string          `json:"podSubnet,omitempty"`
	SvcSubnet          string          `json:"svcSubnet,omitempty"`
	PrimaryClusterName string          `json:"primaryClusterName,omitempty"`
	ConfigClusterName  string          `json:"configClusterName,omitempty"`
	HTTPProxy          string          `json:"httpProxy,omitempty"`
	ProxyKubectlOnly   bool            `json:"proxyKubectlOnly,omitempty"`
	Meta               json.RawMessage `json:"meta,omitempty"`
}

// ImportIstioTopology converts Istio's topology JSON into a scenario named name. A cluster whose
// primaryClusterName names another cluster becomes a remote of that primary, and the model becomes
// primary-remote; otherwise every cluster is a primary (multi-primary). Decoding is strict. External
// control planes (a configClusterName other than the cluster's primary) and non-Kubernetes entries are
// rejected, naming the entry.
func ImportIstioTopology(name string, data []byte) (*Scenario, error) {
	var entries []IstioTopologyCluster
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("reading Istio topology JSON: %s; the fields are clusterName, network, podSubnet, svcSubnet, primaryClusterName, configClusterName, meta", strings.TrimPrefix(err.Error(), "json: "))
	}
	s := &Scenario{
		Name:        name,
		Description: "imported from Istio's topology format",
		Istio:       Istio{Model: MultiPrimary},
	}
	var errs []string
	for i, e := range entries {
		at := fmt.Sprintf("[%d] (clusterName %q)", i, e.ClusterName)
		if e.Kind != "" && e.Kind != "Kubernetes" {
			errs = append(errs, fmt.Sprintf("%s.kind: %q is not supported; only Kubernetes clusters can be imported", at, e.Kind))
		}
		primary := e.PrimaryClusterName
		if primary == e.ClusterName {
			primary = ""
		}
		if cfg := e.ConfigClusterName; cfg != "" && cfg != e.ClusterName && cfg != primary {
			errs = append(errs, fmt.Sprintf("%s.configClusterName: %q makes an external control plane, which mclab does not build yet; remove it or make it equal to primaryClusterName", at, cfg))
		}
		c := Cluster{
			Name:          e.ClusterName,
			Network:       e.Network,
			PodSubnet:     e.PodSubnet,
			ServiceSubnet: e.SvcSubnet,
		}
		if primary != "" {
			c.Role, c.Primary = Remote, primary
			s.Istio.Model = PrimaryRemote
		}
		s.Clusters = append(s.Clusters, c)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cannot import Istio topology:\n  %s", strings.Join(errs, "\n  "))
	}
	return s, nil
}
