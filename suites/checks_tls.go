package suites

import (
	"context"
	"fmt"
	"sort"
	"strings"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	tlsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/transport_sockets/tls/v3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/probe/xds"
)

// mtlsServices are the sample services whose client side must be Istio mTLS: outbound cluster name and
// the app behind it.
var mtlsServices = []struct{ cluster, app string }{
	{HelloworldCluster, "helloworld"},
	{"outbound|8000||httpbin.sample.svc.cluster.local", "httpbin"},
}

// istioMTLS reports whether a transport socket is Istio's mutual TLS: an UpstreamTlsContext whose
// certificate is the workload's SDS secret "default" and whose validation context is SDS "ROOTCA"
// (what istiod builds for ISTIO_MUTUAL and auto mTLS: pilot/pkg/networking/core/cluster_tls.go,
// pilot/pkg/security/model).
func istioMTLS(ts *core.TransportSocket) bool {
	if ts == nil || ts.GetTypedConfig() == nil {
		return false
	}
	ctx := &tlsv3.UpstreamTlsContext{}
	if ts.GetTypedConfig().UnmarshalTo(ctx) != nil {
		return false
	}
	cc := ctx.GetCommonTlsContext()
	cert := false
	for _, s := range cc.GetTlsCertificateSdsSecretConfigs() {
		if s.GetName() == "default" {
			cert = true
		}
	}
	root := cc.GetCombinedValidationContext().GetValidationContextSdsSecretConfig().GetName() == "ROOTCA" ||
		cc.GetValidationContextSdsSecretConfig().GetName() == "ROOTCA"
	return cert && root
}

// clusterMTLS says how a client cluster reaches istio-enabled endpoints: "mtls" when they get Istio
// mTLS (a transport socket, or a transport socket match on tlsMode=istio), else what it does.
func clusterMTLS(c *cluster.Cluster) (bool, string) {
	if c == nil {
		return false, "no such cluster"
	}
	if c.GetTransportSocket() != nil {
		if istioMTLS(c.GetTransportSocket()) {
			return true, "ISTIO_MUTUAL transport socket"
		}
		return false, "a transport socket that is not Istio mTLS (" + c.GetTransportSocket().GetName() + ")"
	}
	for _, m := range c.GetTransportSocketMatches() {
		if m.GetMatch().GetFields()["tlsMode"].GetStringValue() == istio.MTLSMode && istioMTLS(m.GetTransportSocket()) {
			return true, "auto mTLS (transport socket match tlsMode=istio)"
		}
	}
	return false, "plaintext: no Istio mTLS transport socket and no tlsMode=istio match"
}

// CheckClientMTLS: a client in every cluster reaches the mesh's services over Istio mTLS, in the
// configuration istiod sends its sidecar: the outbound cluster carries Istio's mTLS transport socket
// and every endpoint, of every cluster of the mesh, carries tlsMode istio. A DestinationRule or a
// PeerAuthentication that turns mTLS off across clusters fails it, with the object named.
func CheckClientMTLS(ctx context.Context, t *Target) Verdict {
	var v Verdict
	for _, client := range t.Scenario.Clusters {
		var names []string
		for _, s := range mtlsServices {
			if t.exportedByOther(client, s.app) == "" {
				names = append(names, s.cluster)
			}
		}
		snap, err := t.sidecarFetch(ctx, client, xds.Request{EDS: names})
		if err != nil {
			v.record(err, "reading the configuration a client in %s gets", client.Name)
			continue
		}
		for _, name := range names {
			ok, how := clusterMTLS(snap.RawClusters[name])
			v.saw("client in %s, %s: %s", client.Name, name, how)
			if snap.RawClusters[name] == nil {
				v.notYetWhy(func() string { return t.causeFor(ctx, client, client.Name, serviceOf(name), true) }, "a client in %s gets no cluster %s", client.Name, name)
				continue
			}
			if !ok {
				v.failWhy(func() string { return t.whyPlaintext(ctx, client, serviceOf(name)) }, "a client in %s reaches %s in plaintext (%s)", client.Name, serviceOf(name), how)
				continue
			}
			var plain []string
			for _, e := range snap.Endpoints[name] {
				if e.TLSMode != istio.MTLSMode {
					plain = append(plain, fmt.Sprintf("%s:%d (%s)", e.Address, e.Port, workloadCluster(e)))
				}
			}
			sort.Strings(plain)
			if len(plain) > 0 {
				v.failWhy(func() string { return t.whyPlaintext(ctx, client, serviceOf(name)) }, "a client in %s sends to endpoints %s of %s in plaintext (no tlsMode istio)", client.Name, strings.Join(plain, ", "), serviceOf(name))
			}
		}
	}
	return v
}

func serviceOf(outbound string) string {
	parts := strings.Split(outbound, "|")
	return parts[len(parts)-1]
}

func workloadCluster(e xds.Endpoint) string {
	parts := strings.Split(e.Workload, ";")
	if len(parts) >= 5 && parts[4] != "" {
		return "cluster " + parts[4]
	}
	return "gateway or unknown cluster"
}

var (
	peerAuthentications = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}
	destinationRules    = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "destinationrules"}
)

// whyPlaintext names the objects in the config cluster of a client's istiod that turn mTLS off for
// host: PeerAuthentications with mode DISABLE (mesh-wide, the service's namespace) and DestinationRules
// for the host with a TLS mode other than ISTIO_MUTUAL.
func (t *Target) whyPlaintext(ctx context.Context, client scenario.Cluster, host string) string {
	serving := t.topo().Serving(client)
	dyn := t.Clients[serving.Name].Dynamic
	if dyn == nil {
		return "check PeerAuthentications and DestinationRules"
	}
	ns := strings.Split(host, ".")
	var found []string
	for _, n := range []string{istio.IstioNamespace, ns[1]} {
		pas, err := dyn.Resource(peerAuthentications).Namespace(n).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, pa := range pas.Items {
				if mode, _, _ := unstructured.NestedString(pa.Object, "spec", "mtls", "mode"); mode == "DISABLE" {
					found = append(found, fmt.Sprintf("PeerAuthentication %s/%s in %s (mtls.mode DISABLE)", n, pa.GetName(), serving.Name))
				}
			}
		}
		drs, err := dyn.Resource(destinationRules).Namespace(n).List(ctx, metav1.ListOptions{})
		if err == nil {
			for _, dr := range drs.Items {
				h, _, _ := unstructured.NestedString(dr.Object, "spec", "host")
				mode, _, _ := unstructured.NestedString(dr.Object, "spec", "trafficPolicy", "tls", "mode")
				if mode != "" && mode != "ISTIO_MUTUAL" && (h == host || strings.HasPrefix(host, h+".") || strings.HasPrefix(h, "*")) {
					found = append(found, fmt.Sprintf("DestinationRule %s/%s in %s (host %s, tls.mode %s)", n, dr.GetName(), serving.Name, h, mode))
				}
			}
		}
	}
	if len(found) == 0 {
		return fmt.Sprintf("no PeerAuthentication DISABLE or DestinationRule found in %s's istio-system or %s; check the endpoints' sidecars", serving.Name, ns[1])
	}
	return "turned off by " + strings.Join(found, " and ") + "; delete it or use ISTIO_MUTUAL"
}
