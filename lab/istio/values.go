package istio

import (
	"encoding/base64"
	"fmt"

	"mclab.dev/mclab/lab/scenario"
)

// Topology answers the questions the install asks of a scenario: who serves whom, which meshes span
// networks, which clusters need east-west gateways.
type Topology struct {
	S *scenario.Scenario
}

// Primaries returns the primary clusters.
func (t Topology) Primaries() []scenario.Cluster {
	var out []scenario.Cluster
	for _, c := range t.S.Clusters {
		if c.Role == scenario.Primary {
			out = append(out, c)
		}
	}
	return out
}

// Serving returns the primary whose istiod serves cluster c: itself for a primary, its primary for a
// remote.
func (t Topology) Serving(c scenario.Cluster) scenario.Cluster {
	if c.Role == scenario.Remote {
		if p := t.S.Cluster(c.Primary); p != nil {
			return *p
		}
	}
	return c
}

// ServesRemotes reports whether a primary has remotes.
func (t Topology) ServesRemotes(primary string) bool {
	for _, c := range t.S.Clusters {
		if c.Role == scenario.Remote && c.Primary == primary {
			return true
		}
	}
	return false
}

// Watched returns the clusters a primary's istiod must discover through remote secrets: every other
// cluster of its mesh (as Istio's CI applies every cluster's secret to every config cluster). Clusters
// of other meshes are never watched: federation crosses meshes through gateways only.
func (t Topology) Watched(primary scenario.Cluster) []scenario.Cluster {
	var out []scenario.Cluster
	for _, c := range t.S.Clusters {
		if c.Name != primary.Name && c.Mesh == primary.Mesh {
			out = append(out, c)
		}
	}
	return out
}

// MultiNetworkMesh reports whether the mesh of cluster c spans more than one network.
func (t Topology) MultiNetworkMesh(mesh string) bool {
	nets := map[string]bool{}
	for _, c := range t.S.Clusters {
		if c.Mesh == mesh {
			nets[c.Network] = true
		}
	}
	return len(nets) > 1
}

// NeedsEastWestGateway reports whether cluster c gets an east-west gateway: every cluster of a
// multi-network mesh, every primary that serves remotes (to expose istiod), and every cluster of a
// federated scenario (meshes cross only through gateways).
func (t Topology) NeedsEastWestGateway(c scenario.Cluster) bool {
	return t.MultiNetworkMesh(c.Mesh) || (t.ExposesIstiodThroughGateway(c)) || t.S.Istio.Model == scenario.Federated
}

// ExposesIstiodThroughGateway reports whether c is a primary whose remotes reach its istiod through its
// east-west gateway (Istio's expose-istiod sample).
func (t Topology) ExposesIstiodThroughGateway(c scenario.Cluster) bool {
	return c.Role == scenario.Primary && t.ServesRemotes(c.Name) && scenario.IstiodExposure(t.S) == scenario.ExposeEastWestGateway
}

// ExposesIstiodThroughLoadBalancer reports whether c is a primary whose remotes reach its istiod through
// a LoadBalancer Service in front of it (fixtures/istio/expose-istiod-lb.yaml).
func (t Topology) ExposesIstiodThroughLoadBalancer(c scenario.Cluster) bool {
	return c.Role == scenario.Primary && t.ServesRemotes(c.Name) && scenario.IstiodExposure(t.S) == scenario.ExposeLoadBalancer
}

// InjectionPath is the injector path for cluster c, as Istio's CI writes it for remotes.
func InjectionPath(c scenario.Cluster) string {
	return fmt.Sprintf("/inject/cluster/%s/net/%s", c.Name, c.Network)
}

// IstiodValues are the istiod chart's values for cluster c. webhookHost, when set, is where the
// serving istiod's webhook port is reached from the API server (a local process: "localhost:PORT");
// the chart then renders url: webhooks with the mesh root as CA bundle, as for an external istiod.
// remotePilotAddress is where remotes reach the serving primary's istiod (its east-west gateway's or
// istiod-lb's address).
func IstiodValues(t Topology, c scenario.Cluster, webhookHost string, rootPEM []byte, remotePilotAddress string) map[string]any {
	mesh := t.S.Mesh(c.Name)
	global := map[string]any{
		"meshID":       mesh.ID,
		"network":      c.Network,
		"multiCluster": map[string]any{"clusterName": c.Name},
	}
	if t.S.Istio.Hub != "" {
		global["hub"] = t.S.Istio.Hub
	}
	if t.S.Istio.Tag != "" {
		global["tag"] = t.S.Istio.Tag
	}
	values := map[string]any{
		"global": global,
		"meshConfig": map[string]any{
			"trustDomain": mesh.TrustDomain,
			// One sample is cluster-local, so the lab shows (and verify checks) a service that never
			// leaves its cluster, as Istio's TestClusterLocal configures it.
			"serviceSettings": []any{map[string]any{"settings": map[string]any{"clusterLocal": true}, "hosts": []any{ClusterLocalHost}}},
		},
	}
	remote := map[string]any{}
	switch c.Role {
	case scenario.Primary:
		if t.ServesRemotes(c.Name) {
			global["externalIstiod"] = true
		}
	case scenario.Remote:
		values["profile"] = "remote"
		global["remotePilotAddress"] = remotePilotAddress
		remote["injectionPath"] = InjectionPath(c)
	}
	if webhookHost != "" {
		remote["injectionURL"] = "https://" + webhookHost + InjectionPath(c)
		remote["injectionCABundle"] = base64.StdEncoding.EncodeToString(rootPEM)
		values["base"] = ValidationWebhookValues(webhookHost, rootPEM)
	}
	if len(remote) > 0 {
		values["istiodRemote"] = remote
	}
	return values
}

// ValidationWebhookValues point the config validation webhooks of the base and istiod charts at an
// istiod reached by URL (a local process), with the mesh root as CA bundle.
func ValidationWebhookValues(webhookHost string, rootPEM []byte) map[string]any {
	return map[string]any{"validationURL": "https://" + webhookHost + "/validate", "validationCABundle": base64.StdEncoding.EncodeToString(rootPEM)}
}

// EastWestGatewayValues are the gateway chart's values for cluster c's east-west gateway: what
// samples/multicluster/gen-eastwest-gateway.sh asks for (labels istio=eastwestgateway and
// app=istio-eastwestgateway, the network label and ISTIO_META_REQUESTED_NETWORK_VIEW through
// networkGateway, ports 15021, 15443, 15012 and 15017), as Istio's Helm docs install it.
func EastWestGatewayValues(c scenario.Cluster) map[string]any {
	return map[string]any{
		"name":           EastWestGatewayName,
		"networkGateway": c.Network,
		"labels":         map[string]any{"istio": "eastwestgateway", "app": EastWestGatewayName, "topology.istio.io/network": c.Network},
		"global":         map[string]any{"network": c.Network},
	}
}

// ClusterLocalHost is the sample service every lab makes cluster-local (meshConfig.serviceSettings).
const ClusterLocalHost = "curl.sample.svc.cluster.local"

// EastWestGatewayName is the east-west gateway's Deployment and Service name.
const EastWestGatewayName = "istio-eastwestgateway"
