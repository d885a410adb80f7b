// Package kind is the provider for users' laptops: kind clusters in Docker (or Podman) through
// sigs.k8s.io/kind's Go API, wired the way Istio's own CI does it (common/scripts/kind_provisioner.sh):
// per-cluster pod and service subnets, routes between the nodes of clusters on the same network only,
// MetalLB with a per-cluster pool carved from the kind network, and kubeconfigs rewritten to the
// control-plane container's IP so that istiod in one cluster can reach another's API server.
// Everything that runs a program goes through exec.Runner, so the whole path is tested with a fake.
package kind

import (
	"fmt"
	"net/netip"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"mclab.dev/mclab/lab/scenario"
)

// ClusterName is the kind cluster (and Docker container prefix) of a lab's cluster.
func ClusterName(lab, cluster string) string { return lab + "-" + cluster }

// ClusterConfig is the kind configuration of cluster c: its pod and Service subnets (as Istio's CI appends
// them to prow/config/default.yaml), a control-plane node and the asked-for workers.
func ClusterConfig(c scenario.Cluster, opts scenario.KindOptions) *v1alpha4.Cluster {
	cfg := &v1alpha4.Cluster{
		TypeMeta:   v1alpha4.TypeMeta{Kind: "Cluster", APIVersion: "kind.x-k8s.io/v1alpha4"},
		Networking: v1alpha4.Networking{PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet},
		Nodes:      []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole, Image: opts.NodeImage, Labels: map[string]string{"topology.kubernetes.io/region": c.Region, "topology.kubernetes.io/zone": c.Zone}}},
	}
	for i := 0; i < opts.Workers; i++ {
		cfg.Nodes = append(cfg.Nodes, v1alpha4.Node{Role: v1alpha4.WorkerRole, Image: opts.NodeImage, Labels: map[string]string{"topology.kubernetes.io/region": c.Region, "topology.kubernetes.io/zone": c.Zone}})
	}
	if len(opts.RegistryMirrors) > 0 {
		// containerd reads per-registry hosts.toml files from here (kind's local-registry recipe).
		cfg.ContainerdConfigPatches = []string{"[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"/etc/containerd/certs.d\""}
	}
	return cfg
}

// Route is one `ip route add Dest via Via` on a node container.
type Route struct {
	// Node is the container the route is added in.
	Node string
	// Dest is the peer cluster's pod or Service subnet.
	Dest string
	// Via is the peer cluster's control-plane container IP.
	Via string
}

func (r Route) String() string {
	return fmt.Sprintf("%s: ip route add %s via %s", r.Node, r.Dest, r.Via)
}

// Routes makes clusters on the same network reach each other's pod and Service subnets, in both
// directions, from every node; clusters on different networks get none, so only load-balancer
// addresses cross (connect_kind_clusters in Istio's kind_provisioner.sh). nodes maps a cluster to its
// node containers, via to the IP its peers route through.
func Routes(s *scenario.Scenario, nodes map[string][]string, via map[string]string) []Route {
	var out []Route
	for _, a := range s.Clusters {
		for _, b := range s.Clusters {
			if a.Name == b.Name || a.Network != b.Network {
				continue
			}
			for _, n := range nodes[a.Name] {
				out = append(out, Route{Node: n, Dest: b.PodSubnet, Via: via[b.Name]}, Route{Node: n, Dest: b.ServiceSubnet, Via: via[b.Name]})
			}
		}
	}
	return out
}

// PoolSize is how many LoadBalancer addresses each cluster's MetalLB pool gets (Istio's CI: 50).
const PoolSize = 50

// Pools carves one MetalLB pool per cluster from the kind network's subnet, as Istio's CI does: from
// host 1000 on when the subnet has more than 2000 addresses (else from its last quarter), PoolSize
// addresses per cluster, in cluster order, never overlapping. IPv4; for a dual-stack network pass the
// IPv4 subnet.
func Pools(subnet netip.Prefix, clusters []string) (map[string][2]netip.Addr, error) {
	if !subnet.Addr().Is4() {
		return nil, fmt.Errorf("kind network subnet %s is not IPv4; pass the network's IPv4 subnet", subnet)
	}
	size := uint64(1) << (32 - subnet.Bits())
	start := uint64(1000)
	if size <= 2000 {
		start = size - size/4
	}
	need := uint64(len(clusters)) * PoolSize
	if start+need >= size-1 {
		return nil, fmt.Errorf("kind network %s is too small for %d pools of %d addresses; use a larger network (docker network create --subnet ... kind)", subnet, len(clusters), PoolSize)
	}
	base := subnet.Masked().Addr().As4()
	baseN := uint64(base[0])<<24 | uint64(base[1])<<16 | uint64(base[2])<<8 | uint64(base[3])
	addr := func(n uint64) netip.Addr {
		v := baseN + n
		return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
	}
	out := map[string][2]netip.Addr{}
	for i, c := range clusters {
		first := start + uint64(i)*PoolSize
		out[c] = [2]netip.Addr{addr(first), addr(first + PoolSize - 1)}
	}
	return out, nil
}

// PoolManifest is the MetalLB IPAddressPool and L2Advertisement for a cluster's pool.
func PoolManifest(pool [2]netip.Addr) string {
	return fmt.Sprintf(`apiVersion: metallb.io/v1beta1
kind: IPAddressPool
metadata:
  name: default-pool
  namespace: metallb-system
spec:
  addresses:
  - %s-%s
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: default-l2
  namespace: metallb-system
spec:
  ipAddressPools:
  - default-pool
`, pool[0], pool[1])
}
