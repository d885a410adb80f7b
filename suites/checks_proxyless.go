package suites

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	echoproto "istio.io/istio/pkg/test/echo/proto"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/probe/xds"
)

// ProxylessURL is what the proxyless clients call: Istio's echo app through gRPC's xDS resolver
// (configured by the grpc-agent template's bootstrap), as Istio's proxyless integration tests do.
const ProxylessURL = "xds:///echo." + istio.ProxylessNamespace + ".svc.cluster.local:7071"

// echoControlPort is the echo app's plain gRPC port serving ForwardEcho.
const echoControlPort = 7070

// echoQPS is the rate of the proxyless requests.
const echoQPS = 20

// echoClusterRE reads the cluster each reply names: Istio's echo client prints one line per field
// of each reply, "[<request>] Cluster=<cluster>" (pkg/test/echo/fields.go ClusterField; the server's
// --cluster flag).
var (
	echoClusterRE = regexp.MustCompile(`(?m)^\[(\d+)[^\]]*\] Cluster=(\S*)\s*$`)
	echoCodeRE    = regexp.MustCompile(`(?m)^\[(\d+)[^\]]*\] StatusCode=(\S+)\s*$`)
)

// CheckProxylessReached sends gRPC requests from the echo app of every cluster to xds:///echo..., with
// no Envoy anywhere: the client resolves the service through istiod's xDS (the pod's pilot-agent), so
// the replies prove istiod's cross-cluster discovery with a real data plane. Every cluster of the
// caller's network in its mesh must answer (Istio's ReachedClusters), every reply must succeed, and no
// other mesh may answer. Other networks are not required: proxyless gRPC cannot cross east-west
// gateways (see below); the discovery check reads that they are sent as their gateways.
func CheckProxylessReached(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Forward == nil {
		v.cannot("no way to reach pods' ports")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		want := mesh(t, client.Mesh)
		n := 10 * len(want)
		out, err := t.forwardEcho(ctx, client.Name, n)
		if err != nil {
			var f *FindingError
			if errors.As(err, &f) {
				hint := ""
				for _, c := range want {
					if c.Name != client.Name && c.Network == client.Network {
						hint = "; where requests to another cluster's pods fail: " + hintSameNetwork
					}
				}
				if xdsStreamFailed(err.Error()) {
					hint = "; the client's xDS stream to istiod failed: " + t.whyNoIstiod(ctx, client)
				}
				v.fail("proxyless gRPC requests from %s to %s failed: %v%s", client.Name, ProxylessURL, err, hint)
			} else {
				v.cannot("%v", err)
			}
			continue
		}
		reached := map[string]int{}
		for _, m := range echoClusterRE.FindAllStringSubmatch(out, -1) {
			reached[m[2]]++
		}
		var bad []string
		for _, m := range echoCodeRE.FindAllStringSubmatch(out, -1) {
			if m[2] != "200" && m[2] != "0" && m[2] != "OK" {
				bad = append(bad, m[2])
			}
		}
		total := 0
		for _, k := range reached {
			total += k
		}
		v.saw("proxyless from %s: %d of %d replies, reached %v", client.Name, total, n, reached)
		if total != n || len(bad) > 0 {
			v.fail("proxyless gRPC from %s: %d of %d requests answered (failed codes %v)", client.Name, total, n, bad)
		}
		for c := range reached {
			if sc := t.Scenario.Cluster(c); sc != nil {
				if sc.Mesh != client.Mesh {
					v.fail("proxyless requests from %s (mesh %s) reached %s of mesh %s: meshes must stay apart", client.Name, client.Mesh, c, sc.Mesh)
				}
			} else {
				v.fail("proxyless requests from %s were answered by an unknown cluster %q", client.Name, c)
			}
		}
		noted := map[string]bool{}
		for _, c := range want {
			if reached[c.Name] == 0 && c.Network == client.Network {
				if pods, err := t.notReadyIn(ctx, c.Name, istio.ProxylessNamespace, "echo"); err == nil && len(pods) > 0 {
					v.cannot("proxyless gRPC from %s never reached %s, whose echo pods are not Ready (%s): a sample that is not serving cannot show whether the mesh routes there; see `kubectl -n %s describe pods` in %s", client.Name, c.Name, strings.Join(pods, ", "), istio.ProxylessNamespace, c.Name)
					continue
				}
			}
			switch {
			case c.Network == client.Network && reached[c.Name] == 0:
				v.failWhy(func() string { return t.whyUnreached(ctx, client, c) }, "proxyless gRPC from %s never reached %s on the same network (reached %s)", client.Name, c.Name, describe(reached))
			case c.Network != client.Network && !noted[c.Network]:
				// Not required: istiod gives a proxyless client the other network's east-west gateway
				// (15443, AUTO_PASSTHROUGH), which routes by the SNI of Istio mTLS; proxyless gRPC is
				// plaintext unless a DestinationRule says ISTIO_MUTUAL, and sets no SNI even then
				// (pilot/pkg/networking/grpcgen/cds.go, applyTLS). Cross-network routing is judged by
				// the sidecar checks (MC-CROSS-NETWORK).
				noted[c.Network] = true
				v.saw("proxyless from %s: network %s not required (reached %s): proxyless gRPC cannot cross an east-west gateway, which routes by Istio mTLS SNI", client.Name, c.Network, describe(reached))
			}
		}
	}
	return v
}

// forwardEcho asks the echo app of a cluster, through a port-forward to its control port, to send n
// requests to ProxylessURL (its ForwardEcho API, as Istio's test framework drives echo instances),
// and returns the output lines. An error of the requests themselves is a FindingError.
func (t *Target) forwardEcho(ctx context.Context, cluster string, n int) (string, error) {
	local, stop, err := t.Forward(ctx, cluster, istio.ProxylessNamespace, "app=echo", []int{echoControlPort})
	if err != nil {
		return "", fmt.Errorf("port-forward to the echo app in %s/%s: %w", cluster, istio.ProxylessNamespace, err)
	}
	defer stop()
	conn, err := grpc.NewClient(local[echoControlPort], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return "", err
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := echoproto.NewEchoTestServiceClient(conn).ForwardEcho(ctx, &echoproto.ForwardEchoRequest{
		Url: ProxylessURL, Count: int32(n), TimeoutMicros: (5 * time.Second).Microseconds(),
		// Spread over about a second: a fresh gRPC channel picks among the localities whose connection
		// is already READY, so a burst all lands on whichever connected first (its own node's, usually)
		// and another cluster looks unreached (seen on kind here, 3 runs in 4).
		Qps: echoQPS,
	})
	if err != nil {
		if s, ok := status.FromError(err); ok && s.Code() != codes.Unavailable && s.Code() != codes.DeadlineExceeded {
			// ForwardEcho answered: the requests it sent failed.
			return "", finding(fmt.Errorf("%s", s.Message()))
		}
		return "", fmt.Errorf("ForwardEcho to the echo app of %s at %s: %w", cluster, local[echoControlPort], err)
	}
	return strings.Join(resp.GetOutput(), "\n"), nil
}

// proxylessCluster is the xDS cluster of the echo app's gRPC port.
const proxylessCluster = "outbound|7071||echo." + istio.ProxylessNamespace + ".svc.cluster.local"

// whyUnreached tells apart a cluster istiod does not send (discovery) from one whose endpoints it
// sends but requests never reach (routing between the clusters' pods): gRPC's xDS balancer moves
// requests off endpoints it cannot connect to, so both look like "never reached".
func (t *Target) whyUnreached(ctx context.Context, client, other scenario.Cluster) string {
	probe, err := t.probe(ctx, client.Name)
	if err != nil {
		return err.Error()
	}
	snap, err := t.proxyFetch(ctx, client, probe, xds.SidecarProxy, xds.Request{EDS: []string{proxylessCluster}})
	if err != nil {
		return fmt.Sprintf("could not read the endpoints istiod sends (%v)", err)
	}
	ips, err := t.podIPsIn(ctx, other.Name, istio.ProxylessNamespace, "echo")
	if err != nil {
		return err.Error()
	}
	var sent []string
	for _, e := range snap.Endpoints[proxylessCluster] {
		if ips[e.Address] {
			sent = append(sent, fmt.Sprintf("%s:%d", e.Address, e.Port))
		}
	}
	if len(sent) > 0 {
		return fmt.Sprintf("istiod of %s sends %s's endpoints (%s), but requests never reach them: %s", t.topo().Serving(client).Name, other.Name, strings.Join(sent, ", "), hintSameNetwork)
	}
	return fmt.Sprintf("istiod of %s does not send %s's echo endpoints: %s", t.topo().Serving(client).Name, other.Name, t.whyMissing(ctx, client, other))
}

// xdsStreamFailed reports whether a gRPC error is the xDS client's stream to istiod failing (through
// pilot-agent, which dials istiod's 15012), as grpc-go's xDS client words it:
// "xds: error received from xDS stream: ... dial tcp 10.255.20.126:15012: connect: no route to host"
// (recorded on kind here with a remote's istiod unreachable).
func xdsStreamFailed(msg string) bool {
	return strings.Contains(msg, "error received from xDS stream") || strings.Contains(msg, ":15012:")
}

// whyNoIstiod says where cluster c's workloads reach their istiod and what is wrong on the way.
func (t *Target) whyNoIstiod(ctx context.Context, c scenario.Cluster) string {
	if c.Role != scenario.Remote {
		return fmt.Sprintf("workloads of %s reach istiod of their own cluster at istiod.istio-system.svc:15012; is istiod running (kubectl -n istio-system get pods,endpoints istiod)?", c.Name)
	}
	at, finding, err := t.remoteIstiodPath(ctx, c)
	switch {
	case finding != "":
		return finding
	case err != nil:
		return err.Error()
	}
	serving := t.topo().Serving(c)
	return fmt.Sprintf("remote %s's Service istiod points at %s (%s's %s), which does not answer on 15012 from %s", c.Name, at, serving.Name, exposureOf(t, serving), c.Name)
}

func exposureOf(t *Target, primary scenario.Cluster) string {
	if t.topo().ExposesIstiodThroughLoadBalancer(primary) {
		return "Service " + istio.IstiodLBName
	}
	return "east-west gateway"
}

// remoteIstiodPath checks, without traffic, the way remote c's workloads reach their primary's istiod:
// they dial Service istiod of their own cluster, whose endpoint the chart sets to remotePilotAddress
// (an EndpointSlice for an IP, ExternalName for a hostname), which must be the address of the primary's
// istiod-lb Service or east-west gateway (istio.exposeIstiod). It returns that address, or a finding,
// or an error for what could not be read.
func (t *Target) remoteIstiodPath(ctx context.Context, c scenario.Cluster) (string, string, error) {
	serving := t.topo().Serving(c)
	via := exposureOf(t, serving)
	svcName := istio.EastWestGatewayName
	if t.topo().ExposesIstiodThroughLoadBalancer(serving) {
		svcName = istio.IstiodLBName
	}
	want, err := t.loadBalancerOf(ctx, serving.Name, svcName)
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Sprintf("remote %s reaches istiod of %s through %s's %s, which does not exist (istio.exposeIstiod; `mclab up` restores it)", c.Name, serving.Name, serving.Name, via), nil
	case err != nil:
		return "", "", fmt.Errorf("reading %s's %s (how remote %s reaches its istiod): %w", serving.Name, via, c.Name, err)
	case want == "":
		return "", fmt.Sprintf("remote %s reaches istiod of %s through its %s, which has no LoadBalancer address", c.Name, serving.Name, via), nil
	}
	svc, err := t.Clients[c.Name].Kube.CoreV1().Services(istio.IstioNamespace).Get(ctx, "istiod", metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return "", fmt.Sprintf("remote %s has no Service istio-system/istiod (the istiod chart with profile remote renders it from global.remotePilotAddress)", c.Name), nil
	case err != nil:
		return "", "", fmt.Errorf("reading remote %s's Service istiod: %w", c.Name, err)
	}
	var have []string
	if svc.Spec.ExternalName != "" {
		have = []string{svc.Spec.ExternalName}
	} else {
		eps, err := t.Clients[c.Name].Kube.DiscoveryV1().EndpointSlices(istio.IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=istiod"})
		if err != nil {
			return "", "", fmt.Errorf("reading remote %s's istiod endpoints: %w", c.Name, err)
		}
		for _, sl := range eps.Items {
			for _, e := range sl.Endpoints {
				have = append(have, e.Addresses...)
			}
		}
	}
	if !slices.Contains(have, want) {
		return "", fmt.Sprintf("remote %s's Service istiod points at %v, but %s's %s is at %s (global.remotePilotAddress is stale; `mclab up` re-renders it)", c.Name, have, serving.Name, via, want), nil
	}
	return want, "", nil
}
