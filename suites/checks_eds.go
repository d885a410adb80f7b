package suites

import (
	"context"
	"fmt"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/probe/xds"
)

// HelloworldCluster is the EDS cluster the discovery and routing checks read.
const HelloworldCluster = "outbound|5000||helloworld.sample.svc.cluster.local"

// edsFor asks the istiod serving cluster c for the endpoints of edsCluster, as c's curl pod's sidecar.
func (t *Target) edsFor(ctx context.Context, c scenario.Cluster, edsCluster string) ([]xds.Endpoint, error) {
	pod, err := t.pod(ctx, c.Name, "curl")
	if err != nil {
		return nil, err
	}
	node, err := xds.SidecarNode(pod, t.Scenario.Istio.Version)
	if err != nil {
		return nil, err
	}
	serving := t.topo().Serving(c)
	ep, err := t.Istiod(serving.Name)
	if err != nil {
		return nil, err
	}
	// As the pod's agent: the secure xDS port, istiod verified against the mesh root, authenticated with
	// the pod's service account token (audience istio-ca).
	root, _, err := t.clusterRoot(ctx, serving.Name)
	if err != nil {
		return nil, err
	}
	tok, err := t.Clients[c.Name].Kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("TokenRequest for %s/%s in %s: %w", pod.Namespace, pod.Spec.ServiceAccountName, c.Name, err)
	}
	snap, err := xds.Fetch(ctx, xds.Conn{Addr: ep.XDSTLS, Roots: root, Token: tok.Status.Token, ClusterID: c.Name}, node, edsCluster)
	if err != nil {
		return nil, err
	}
	return snap.Endpoints[edsCluster], nil
}

// CheckEndpoints: a client in every cluster sees helloworld's endpoints from every cluster of its mesh,
// split-horizon: same-network endpoints as pod IPs, other networks' endpoints only as their east-west
// gateway's address on 15443, with weight equal to the number of endpoints behind it, never as pod
// IPs.
func CheckEndpoints(ctx context.Context, t *Target) Verdict {
	var v Verdict
	ips := map[string]map[string]bool{}
	for _, c := range t.Scenario.Clusters {
		got, err := t.podIPs(ctx, c.Name, "helloworld")
		if err != nil {
			v.Inconclusive = err
			return v
		}
		ips[c.Name] = got
	}
	for _, client := range t.Scenario.Clusters {
		eps, err := t.edsFor(ctx, client, HelloworldCluster)
		if err != nil {
			v.fail("cannot read the endpoints a client in %s gets: %v", client.Name, err)
			continue
		}
		v.saw("EDS for a client in %s: %+v", client.Name, eps)
		seen := map[string]xds.Endpoint{}
		for _, e := range eps {
			seen[fmt.Sprintf("%s:%d", e.Address, e.Port)] = e
		}
		// Expected gateway weight per remote network: the endpoints of that network.
		netCount := map[string]int{}
		for _, other := range t.Scenario.Clusters {
			if other.Mesh == client.Mesh && other.Network != client.Network {
				netCount[other.Network] += len(ips[other.Name])
			}
		}
		for _, other := range t.Scenario.Clusters {
			if other.Mesh != client.Mesh {
				for ip := range ips[other.Name] {
					if _, leak := seen[ip+":5000"]; leak {
						v.fail("a client in %s (mesh %s) sees helloworld endpoint %s of %s in mesh %s: meshes must not discover each other", client.Name, client.Mesh, ip, other.Name, other.Mesh)
					}
				}
				continue
			}
			sameNet := other.Network == client.Network
			var asPodIP []string
			for ip := range ips[other.Name] {
				if _, ok := seen[ip+":5000"]; ok {
					asPodIP = append(asPodIP, ip)
				}
			}
			switch {
			case sameNet && len(asPodIP) != len(ips[other.Name]):
				v.fail("a client in %s misses helloworld endpoints of %s (%d of %s seen on the same network): %s", client.Name, other.Name, len(asPodIP), keys(ips[other.Name]), t.whyMissing(ctx, client, other))
			case !sameNet && len(asPodIP) > 0:
				v.fail("%s endpoints reach %s as pod IPs (%v) although they are on %s and the client on %s: %s", other.Name, client.Name, asPodIP, other.Network, client.Network, t.whyPodIPs(ctx, client, other))
			case !sameNet:
				gw, err := t.networkGateway(ctx, other.Network, client.Mesh)
				if err != nil || gw == "" {
					v.fail("%s's gateway has no address, so a client in %s gets no route to %s's endpoints: Service %s/%s has no LoadBalancer ingress (%v)", other.Network, client.Name, other.Name, istio.IstioNamespace, istio.EastWestGatewayName, err)
					continue
				}
				e, ok := seen[gw+":15443"]
				if !ok {
					v.fail("a client in %s does not reach %s through %s's gateway %s:15443: %s", client.Name, other.Name, other.Network, gw, t.whyMissing(ctx, client, other))
					continue
				}
				if int(e.Weight) != netCount[other.Network] {
					v.fail("gateway %s:15443 of %s has weight %d for a client in %s, want %d (the endpoints of %s)", gw, other.Network, e.Weight, client.Name, netCount[other.Network], other.Network)
				}
				if e.TLSMode != "istio" {
					v.fail("gateway endpoint %s:15443 lacks tlsMode istio: the sidecars of %s were not injected", gw, other.Name)
				}
			}
		}
	}
	return v
}

// networkGateway returns the address of the east-west gateway of a network in a mesh.
func (t *Target) networkGateway(ctx context.Context, network, mesh string) (string, error) {
	for _, c := range t.Scenario.Clusters {
		if c.Network != network || c.Mesh != mesh {
			continue
		}
		if addr, err := t.networkGatewayOf(ctx, c.Name); err == nil && addr != "" {
			return addr, nil
		}
	}
	return "", nil
}

func (t *Target) whyPodIPs(ctx context.Context, client, other scenario.Cluster) string {
	ns, err := t.Clients[other.Name].Kube.CoreV1().Namespaces().Get(ctx, istio.IstioNamespace, metav1.GetOptions{})
	if err == nil && ns.Labels[istio.NetworkLabel] != other.Network {
		return fmt.Sprintf("network label missing on %s's istio-system (%s=%q, want %q), so istiod puts its endpoints on the client's network", other.Name, istio.NetworkLabel, ns.Labels[istio.NetworkLabel], other.Network)
	}
	return fmt.Sprintf("istiod of %s does not place %s on %s; check pod labels %s", t.topo().Serving(client).Name, other.Name, other.Network, istio.NetworkLabel)
}

func (t *Target) whyMissing(ctx context.Context, client, other scenario.Cluster) string {
	serving := t.topo().Serving(client)
	if serving.Name == other.Name || t.topo().Serving(other).Name == serving.Name {
		return "the cluster is served by the same istiod; check the helloworld pods"
	}
	ep, err := t.Istiod(serving.Name)
	if err != nil {
		return err.Error()
	}
	syncs, err := istio.Clusterz(ctx, ep.Debug)
	if err != nil {
		return fmt.Sprintf("istiod of %s does not answer: %v", serving.Name, err)
	}
	for _, s := range syncs {
		if s.ID == other.Name {
			if s.SyncStatus != "synced" {
				return fmt.Sprintf("istiod of %s reads %s but its state is %s", serving.Name, other.Name, s.SyncStatus)
			}
			return "istiod reads the cluster; check helloworld's Service there"
		}
	}
	return fmt.Sprintf("istiod of %s has no remote secret for %s", serving.Name, other.Name)
}
