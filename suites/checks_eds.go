package suites

import (
	"context"
	"fmt"
	"sort"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/diagnose"
	"mclab.dev/mclab/suites/probe/xds"
)

// HelloworldCluster is the EDS cluster the discovery and routing checks read.
const HelloworldCluster = "outbound|5000||helloworld.sample.svc.cluster.local"

// discoverySample is the sample whose endpoints the discovery checks read: helloworld with the sidecar
// samples, else Istio's echo app with the proxyless ones (so multi-network discovery is judged on labs
// that run no Envoy).
type discoverySample struct {
	Namespace, App, Host, EDSCluster string
	// MTLS says whether the sample's servers take Istio mTLS (sidecars). istiod sends another
	// network's endpoints, as its east-west gateway, only for those: "Cross-network traffic relies on
	// mTLS for SNI routing" (pilot/pkg/xds/endpoints/ep_filters.go). Istio's grpc-agent template does
	// not label proxyless pods security.istio.io/tlsMode=istio, and the echo app serves plaintext here.
	MTLS bool
}

func (t *Target) discoverySample() discoverySample {
	if !scenario.HasSidecarSamples(t.Scenario) && scenario.HasProxylessSamples(t.Scenario) {
		return discoverySample{istio.ProxylessNamespace, "echo", "echo." + istio.ProxylessNamespace + ".svc.cluster.local", proxylessCluster, false}
	}
	return discoverySample{istio.SampleNamespace, "helloworld", "helloworld.sample.svc.cluster.local", HelloworldCluster, true}
}

// proxyFetch reads what the istiod serving cluster c sends to pod's proxy (sidecar or router), as the
// pod's agent would: the secure xDS port, istiod verified against the mesh root, authenticated with a
// token of the pod's service account (audience istio-ca) and the pod's cluster ID. An error that says
// something about the mesh (istiod's certificate, a refused token, an uninjected pod) is a FindingError.
func (t *Target) proxyFetch(ctx context.Context, c scenario.Cluster, pod *corev1.Pod, proxyType string, req xds.Request) (*xds.Snapshot, error) {
	conn, node, err := t.proxyConn(ctx, c, pod, proxyType)
	if err != nil {
		return nil, err
	}
	serving := t.topo().Serving(c)
	snap, err := xds.FetchAll(ctx, conn, node, req)
	if err != nil {
		if xds.IsFinding(err) {
			// istiod reviews the token of a proxy of another cluster at that cluster's API server,
			// through its remote secret (KubeJWTAuthenticator).
			if serving.Name != c.Name && strings.Contains(err.Error(), "Unauthenticated") {
				if why := t.notRead(ctx, serving.Name, c.Name); why != "" {
					return nil, finding(fmt.Errorf("istiod of %s does not authenticate %s's proxy in %s: it reviews the tokens of %s's workloads at %s's API server through its remote secret for %s, and %s (%w)", serving.Name, pod.Name, c.Name, c.Name, c.Name, c.Name, why, err))
				}
			}
			return nil, finding(fmt.Errorf("istiod of %s refuses %s's proxy or does not verify under the mesh root: %w", serving.Name, pod.Name, err))
		}
		return nil, fmt.Errorf("xDS of istiod %s at %s: %w", serving.Name, conn.Addr, err)
	}
	return snap, nil
}

// proxyConn is how pod's proxy in cluster c reaches the istiod serving c: the secure xDS port, istiod
// verified against the mesh root, a token of the pod's service account (audience istio-ca), and the
// node the pod's agent presents.
func (t *Target) proxyConn(ctx context.Context, c scenario.Cluster, pod *corev1.Pod, proxyType string) (xds.Conn, xds.Node, error) {
	node, err := xds.ProxyNode(proxyType, pod, t.Scenario.Istio.Version)
	if err != nil {
		return xds.Conn{}, xds.Node{}, finding(err)
	}
	serving := t.topo().Serving(c)
	if err := t.secretServerDown(ctx, serving, c); err != nil {
		return xds.Conn{}, xds.Node{}, err
	}
	ep, err := t.Istiod(serving.Name)
	if err != nil {
		return xds.Conn{}, xds.Node{}, fmt.Errorf("reaching istiod of %s: %w", serving.Name, err)
	}
	root, _, err := t.clusterRoot(ctx, serving.Name)
	if err != nil {
		return xds.Conn{}, xds.Node{}, fmt.Errorf("reading %s's cacerts: %w", serving.Name, err)
	}
	tok, err := t.Clients[c.Name].Kube.CoreV1().ServiceAccounts(pod.Namespace).CreateToken(ctx, pod.Spec.ServiceAccountName,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: ptr(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		return xds.Conn{}, xds.Node{}, fmt.Errorf("TokenRequest for %s/%s in %s: %w", pod.Namespace, pod.Spec.ServiceAccountName, c.Name, err)
	}
	return xds.Conn{Addr: ep.XDSTLS, Roots: root, Token: tok.Status.Token, ClusterID: c.Name}, node, nil
}

// WatchEDS subscribes, as the sidecar of cluster's probe workload (curl, else the proxyless echo app),
// to the endpoints of edsCluster at the istiod serving it, and streams every EDS answer (xds.Watch).
func (t *Target) WatchEDS(ctx context.Context, cluster, edsCluster string) (<-chan xds.Update, <-chan error, error) {
	c := t.Scenario.Cluster(cluster)
	if c == nil {
		return nil, nil, fmt.Errorf("no cluster %s", cluster)
	}
	pod, err := t.probe(ctx, cluster)
	if err != nil {
		return nil, nil, err
	}
	conn, node, err := t.proxyConn(ctx, *c, pod, xds.SidecarProxy)
	if err != nil {
		return nil, nil, err
	}
	return xds.Watch(ctx, conn, node, edsCluster)
}

// sidecarFetch reads what a sidecar of c's probe workload (curl, else the proxyless echo app) gets.
func (t *Target) sidecarFetch(ctx context.Context, c scenario.Cluster, req xds.Request) (*xds.Snapshot, error) {
	pod, err := t.probe(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	return t.proxyFetch(ctx, c, pod, xds.SidecarProxy, req)
}

// edsFor asks the istiod serving cluster c for the endpoints of edsCluster, as c's probe workload's sidecar.
func (t *Target) edsFor(ctx context.Context, c scenario.Cluster, edsCluster string) ([]xds.Endpoint, error) {
	snap, err := t.sidecarFetch(ctx, c, xds.Request{EDS: []string{edsCluster}})
	if err != nil {
		return nil, err
	}
	return snap.Endpoints[edsCluster], nil
}

// gateway is an east-west gateway as istiod knows it: its network, cluster and address.
type gateway struct {
	network, cluster, addr string
	// ips are what addr resolves to (itself for an IP).
	ips []string
}

// meshGateways returns the east-west gateways of a mesh that have an address, and the clusters whose
// gateway has none.
func (t *Target) meshGateways(ctx context.Context, mesh string) ([]gateway, []string) {
	var out []gateway
	var missing []string
	for _, c := range t.Scenario.Clusters {
		if c.Mesh != mesh || !t.topo().NeedsEastWestGateway(c) {
			continue
		}
		addr, err := t.networkGatewayOf(ctx, c.Name)
		if err != nil || addr == "" {
			missing = append(missing, c.Name)
			continue
		}
		out = append(out, gateway{network: c.Network, cluster: c.Name, addr: addr, ips: resolveGateway(ctx, addr)})
	}
	return out, missing
}

// weightScale is Istio's LB weight scale factor: the least common multiple of the number of gateways
// per network and per network and cluster (pilot/pkg/model/network.go, NetworkGateways.update).
func weightScale(gws []gateway) uint32 {
	byNet, byNetCluster := map[string]int{}, map[string]int{}
	for _, g := range gws {
		byNet[g.network]++
		byNetCluster[g.network+"/"+g.cluster]++
	}
	l := 1
	for _, m := range []map[string]int{byNet, byNetCluster} {
		for _, n := range m {
			l = l * n / gcd(l, n)
		}
	}
	return uint32(l)
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// expectedGatewayWeights is what Istio's EndpointsByNetworkFilter (pilot/pkg/xds/endpoints/
// ep_filters.go) gives a client on network `from` for endpoints of other networks: each remote
// endpoint weighs the scale factor, split evenly among the gateways of its network and cluster (else
// of its network), summed per gateway. endpoints maps cluster to its endpoint count.
func expectedGatewayWeights(from string, clusters []scenario.Cluster, endpoints map[string]int, gws []gateway) map[string]uint32 {
	scale := weightScale(gws)
	out := map[string]uint32{}
	for _, c := range clusters {
		if c.Network == from || endpoints[c.Name] == 0 {
			continue
		}
		var sel []gateway
		for _, g := range gws {
			if g.network == c.Network && g.cluster == c.Name {
				sel = append(sel, g)
			}
		}
		if len(sel) == 0 {
			for _, g := range gws {
				if g.network == c.Network {
					sel = append(sel, g)
				}
			}
		}
		for _, g := range sel {
			out[g.addr] += uint32(endpoints[c.Name]) * (scale / uint32(len(sel)))
		}
	}
	return out
}

// CheckEndpoints: a client in every cluster sees the discovery sample's endpoints (helloworld, else the
// proxyless echo app) from every cluster of its mesh,
// split-horizon as Istio computes it: same-network endpoints as pod IPs; other networks' endpoints only
// as their east-west gateways on 15443 (every gateway of the network, or of the endpoint's cluster),
// with Istio's weights (the endpoints behind each gateway, scaled by the LCM of gateway counts) and
// tlsMode istio; never another mesh's endpoints. A cluster with no pod of the sample cannot prove
// anything and never passes: it leaves the check not judged.
func CheckEndpoints(ctx context.Context, t *Target) Verdict {
	var v Verdict
	sample := t.discoverySample()
	ips := map[string]map[string]bool{}
	count := map[string]int{}
	for _, c := range t.Scenario.Clusters {
		got, err := t.podIPsIn(ctx, c.Name, sample.Namespace, sample.App)
		if err != nil {
			v.cannot("listing %s pods in %s: %v", sample.App, c.Name, err)
			continue
		}
		if len(got) == 0 {
			v.cannot("no running %s pod in %s: there is nothing of %s to discover, so discovery of it cannot be proved (`mclab up` converges the samples)", sample.App, c.Name, c.Name)
		}
		ips[c.Name] = got
		count[c.Name] = len(got)
	}
	gwsByMesh := map[string][]gateway{}
	for _, m := range t.Scenario.Meshes {
		gws, _ := t.meshGateways(ctx, m.ID)
		gwsByMesh[m.ID] = gws
	}
	for _, client := range t.Scenario.Clusters {
		eps, err := t.edsFor(ctx, client, sample.EDSCluster)
		if err != nil {
			v.record(err, "reading the %s endpoints a client in %s gets", sample.App, client.Name)
			continue
		}
		v.saw("EDS for a client in %s: %+v", client.Name, eps)
		seen := map[string]xds.Endpoint{}
		weightAt := map[string]uint32{}
		for _, e := range eps {
			seen[e.Address] = e
			weightAt[e.Address] += e.Weight
		}
		meshClusters := mesh(t, client.Mesh)
		multiNet := t.topo().MultiNetworkMesh(client.Mesh)
		gws := gwsByMesh[client.Mesh]
		for _, other := range t.Scenario.Clusters {
			if other.Mesh != client.Mesh {
				for ip := range ips[other.Name] {
					if _, leak := seen[ip]; leak {
						v.fail("a client in %s (mesh %s) sees %s endpoint %s of %s in mesh %s: meshes must not discover each other", client.Name, client.Mesh, sample.App, ip, other.Name, other.Mesh)
					}
				}
				continue
			}
			var asPodIP []string
			for ip := range ips[other.Name] {
				if _, ok := seen[ip]; ok {
					asPodIP = append(asPodIP, ip)
				}
			}
			sort.Strings(asPodIP)
			sameNet := other.Network == client.Network
			switch {
			case sameNet && len(asPodIP) != len(ips[other.Name]):
				v.failWhy(func() string { return t.whyMissing(ctx, client, other) }, "a client in %s misses %s endpoints of %s (%d of %s seen on the same network)", client.Name, sample.App, other.Name, len(asPodIP), keys(ips[other.Name]))
			case !sameNet && len(asPodIP) > 0:
				v.failWhy(func() string { return t.whyPodIPs(ctx, client, other) }, "%s endpoints reach %s as pod IPs (%v) although they are on %s and the client on %s", other.Name, client.Name, asPodIP, other.Network, client.Network)
			}
		}
		if !multiNet {
			continue
		}
		if !sample.MTLS {
			v.saw("a client in %s: other networks' %s endpoints not expected (istiod sends another network's endpoints only for mTLS servers, ep_filters.go; %s serves plaintext)", client.Name, sample.App, sample.App)
			continue
		}
		// Cross-network: every gateway Istio would use, with its weight.
		want := expectedGatewayWeights(client.Network, meshClusters, count, gws)
		for _, other := range meshClusters {
			if other.Network == client.Network || count[other.Name] == 0 {
				continue
			}
			has := false
			for _, g := range gws {
				if g.network == other.Network {
					has = true
				}
			}
			if !has {
				v.fail("%s's gateway has no address, so a client in %s gets no route to %s's endpoints: Service %s/%s has no LoadBalancer ingress", other.Network, client.Name, other.Name, istio.IstioNamespace, istio.EastWestGatewayName)
			}
		}
		var addrs []string
		for a := range want {
			addrs = append(addrs, a)
		}
		sort.Strings(addrs)
		for _, addr := range addrs {
			g := gatewayByAddr(gws, addr)
			var e xds.Endpoint
			var at string
			for _, ip := range g.ips {
				if x, ok := seen[ip]; ok && x.Port == 15443 {
					e, at = x, ip
				}
			}
			if at == "" {
				v.failWhy(func() string { return t.whyMissingGateway(ctx, client, g) }, "a client in %s does not reach %s (network %s) through its gateway %s:15443", client.Name, g.cluster, g.network, addr)
				continue
			}
			if weightAt[at] != want[addr] {
				v.fail("gateway %s:15443 of %s has weight %d for a client in %s, want %d (the endpoints behind it, scaled by the LCM of gateway counts %d as Istio's EDS does)", addr, g.cluster, weightAt[at], client.Name, want[addr], weightScale(gws))
			}
			if e.TLSMode != istio.MTLSMode {
				v.fail("gateway endpoint %s:15443 lacks tlsMode istio: the sidecars of %s were not injected", addr, g.cluster)
			}
		}
	}
	return v
}

func gatewayByAddr(gws []gateway, addr string) gateway {
	for _, g := range gws {
		if g.addr == addr {
			return g
		}
	}
	return gateway{addr: addr, ips: []string{addr}}
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

// whyPodIPs, whyMissingGateway and whyMissing name the cause of a failed endpoint expectation. They are
// no decision tree keyed on the symptom: package diagnose walks the chain from the Kubernetes objects to
// what istiod holds, link by link, and names the first broken one (its object, field and value), or
// says that istiod's state shows none.
func (t *Target) whyPodIPs(ctx context.Context, client, other scenario.Cluster) string {
	return t.diagnosis(ctx, client, other, false)
}

func (t *Target) whyMissingGateway(ctx context.Context, client scenario.Cluster, g gateway) string {
	other := t.Scenario.Cluster(g.cluster)
	if other == nil {
		return "no cluster " + g.cluster + " in the lab"
	}
	return t.diagnosis(ctx, client, *other, true)
}

func (t *Target) whyMissing(ctx context.Context, client, other scenario.Cluster) string {
	return t.diagnosis(ctx, client, other, false)
}

// diagnosis is the cause of "a client in client gets the discovery sample's endpoints of from", derived
// from istiod's state (package diagnose); an istiod that does not answer is said as such, never as a
// cause.
func (t *Target) diagnosis(ctx context.Context, client, from scenario.Cluster, mtls bool) string {
	return t.causeFor(ctx, client, from.Name, t.discoverySample().Host, mtls)
}

// causeFor is the cause of "a client in client (the samples' namespace) gets host's endpoints of from".
func (t *Target) causeFor(ctx context.Context, client scenario.Cluster, from, host string, mtls bool) string {
	return t.chainCause(ctx, diagnose.Expectation{Client: client.Name, Namespace: t.discoverySample().Namespace, Host: host, From: from, MTLS: mtls})
}

// localCause is the cause of "host is cluster-local, yet a client in client (the samples' namespace)
// gets another cluster's endpoint of it" (the inverse chain).
func (t *Target) localCause(ctx context.Context, client scenario.Cluster, host string) string {
	return t.chainCause(ctx, diagnose.Expectation{Client: client.Name, Namespace: t.discoverySample().Namespace, Host: host, From: client.Name, Local: true})
}

// chainCause is e's cause from the diagnosis chain.
func (t *Target) chainCause(ctx context.Context, e diagnose.Expectation) string {
	c, err := diagnose.Explain(ctx, t.DiagnosisEnv(), e)
	if err != nil {
		return "no cause named: the diagnosis could not read istiod's state: " + err.Error()
	}
	return c.Cause()
}

// notRead says why istiod of primary does not read cluster through a remote secret ("" when it reads
// it, synced, or when that cannot be told).
func (t *Target) notRead(ctx context.Context, primary, cluster string) string {
	if t.Istiod == nil {
		return ""
	}
	ep, err := t.Istiod(primary)
	if err != nil {
		return err.Error()
	}
	syncs, err := istio.Clusterz(ctx, ep.Debug)
	if err != nil {
		return fmt.Sprintf("istiod of %s does not answer: %v", primary, err)
	}
	for _, s := range syncs {
		if s.ID == cluster {
			if s.SyncStatus != "synced" {
				return fmt.Sprintf("istiod of %s reads %s but its state is %s", primary, cluster, s.SyncStatus)
			}
			return ""
		}
	}
	return fmt.Sprintf("istiod of %s has no remote secret for %s", primary, cluster)
}
