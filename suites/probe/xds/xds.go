// Package xds is the control-plane probe: it connects to the istiod serving a pod exactly as that pod's
// proxy would (node id from the real pod, the metadata the injector puts in the proxy's environment)
// and reads what istiod sends it: CDS, EDS, LDS and the trust bundle (PCDS), with Envoy's
// go-control-plane types and Istio's API types.
package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	listener "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	corev1 "k8s.io/api/core/v1"
)

// Type URLs (Envoy's, and Istio's pkg/model/xds.go ProxyConfigType for PCDS).
const (
	ClusterType     = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType    = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
	ListenerType    = "type.googleapis.com/envoy.config.listener.v3.Listener"
	ProxyConfigType = "type.googleapis.com/istio.mesh.v1alpha1.ProxyConfig"
)

// Node is what a proxy presents to istiod.
type Node struct {
	ID       string
	Metadata map[string]any
}

// Proxy types of the node id (Istio's model.NodeType).
const (
	SidecarProxy = "sidecar"
	RouterProxy  = "router"
)

// SidecarNode builds the node of pod's sidecar: id sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local and
// the metadata from its istio-proxy container's ISTIO_META_* environment (CLUSTER_ID, NETWORK, MESH_ID,
// ...), plus NAMESPACE, LABELS and ISTIO_VERSION as pilot-agent sends them.
func SidecarNode(pod *corev1.Pod, istioVersion string) (Node, error) {
	return ProxyNode(SidecarProxy, pod, istioVersion)
}

// ProxyNode builds the node of pod's proxy of the given type: "sidecar" for an injected workload,
// "router" for a gateway (the gateway chart's pods run `pilot-agent proxy router`).
func ProxyNode(proxyType string, pod *corev1.Pod, istioVersion string) (Node, error) {
	md := map[string]any{"NAMESPACE": pod.Namespace, "ISTIO_VERSION": istioVersion, "INTERCEPTION_MODE": "REDIRECT", "NAME": pod.Name}
	found := false
	for _, c := range pod.Spec.Containers {
		if c.Name != "istio-proxy" {
			continue
		}
		found = true
		for _, e := range c.Env {
			if strings.HasPrefix(e.Name, "ISTIO_META_") && len(e.Name) > len("ISTIO_META_") && e.Value != "" {
				md[e.Name[len("ISTIO_META_"):]] = e.Value
			}
		}
	}
	if !found {
		return Node{}, fmt.Errorf("pod %s/%s has no istio-proxy container: it was not injected", pod.Namespace, pod.Name)
	}
	if pod.Status.PodIP == "" {
		return Node{}, fmt.Errorf("pod %s/%s has no IP yet", pod.Namespace, pod.Name)
	}
	labels := map[string]any{}
	for k, v := range pod.Labels {
		labels[k] = v
	}
	md["LABELS"] = labels
	delete(md, "APP_CONTAINERS")
	delete(md, "POD_PORTS")
	return Node{ID: fmt.Sprintf("%s~%s~%s.%s~%s.svc.cluster.local", proxyType, pod.Status.PodIP, pod.Name, pod.Namespace, pod.Namespace), Metadata: md}, nil
}

// Endpoint is one EDS endpoint.
type Endpoint struct {
	Address  string `json:"address"`
	Port     uint32 `json:"port"`
	Weight   uint32 `json:"weight"`
	Locality string `json:"locality"`
	// TLSMode is the endpoint's tlsMode metadata ("istio" for mTLS-capable endpoints).
	TLSMode string `json:"tlsMode"`
	// Workload is istio's workload metadata (name;namespace;app;version;cluster).
	Workload string `json:"workload"`
}

// Snapshot is what istiod sent.
type Snapshot struct {
	// Clusters are the CDS cluster names, sorted; RawClusters the clusters themselves.
	Clusters    []string                    `json:"clusters"`
	RawClusters map[string]*cluster.Cluster `json:"-"`
	Endpoints   map[string][]Endpoint       `json:"endpoints"`
	// Listeners (LDS), when asked for.
	Listeners map[string]*listener.Listener `json:"-"`
	// ProxyConfig is the PCDS answer (the trust bundle), when asked for and sent; nil when istiod sent
	// none within the wait.
	ProxyConfig *meshv1alpha1.ProxyConfig `json:"-"`
}

// Conn says how to reach istiod's xDS server.
type Conn struct {
	// Addr is host:port.
	Addr string
	// Roots, when set, make the connection TLS (the secure xDS port, 15012) verified against them, as
	// istiod.istio-system.svc; Token is then sent as the pod's agent sends its istio-ca token.
	Roots []byte
	Token string
	// ClusterID tells istiod which cluster's API server reviews the token (the agent sends it too).
	ClusterID string
}

// Request says what to ask for after CDS.
type Request struct {
	// EDS are the clusters whose endpoints to read.
	EDS []string
	// Listeners asks for LDS.
	Listeners bool
	// ProxyConfig asks for PCDS (the trust bundle istiod pushes with ISTIO_MULTIROOT_MESH), waiting at
	// most ProxyConfigWait for it.
	ProxyConfig     bool
	ProxyConfigWait time.Duration
}

// Fetch opens an ADS stream to istiod, asks for every cluster (CDS), ACKs, then asks for the endpoints
// of edsClusters and returns the first answer. On the secure port it authenticates with the token, as a
// sidecar's agent does.
func Fetch(ctx context.Context, c Conn, node Node, edsClusters ...string) (*Snapshot, error) {
	return FetchAll(ctx, c, node, Request{EDS: edsClusters})
}

// FetchAll opens an ADS stream, reads CDS, then each of what r asks for, in Envoy's order.
func FetchAll(ctx context.Context, c Conn, node Node, r Request) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	md, err := structpb.NewStruct(node.Metadata)
	if err != nil {
		return nil, err
	}
	n := &core.Node{Id: node.ID, Metadata: md}
	creds := insecure.NewCredentials()
	if len(c.Roots) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.Roots) {
			return nil, fmt.Errorf("no root to verify istiod with")
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "istiod.istio-system.svc"})
		if c.Token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Token, "ClusterID", c.ClusterID)
		}
	}
	conn, err := grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("xDS stream to %s: %w", c.Addr, err)
	}
	responses := make(chan *discovery.DiscoveryResponse, 16)
	recvErr := make(chan error, 1)
	go func() {
		for {
			resp, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			responses <- resp
		}
	}()
	// wait returns the next response of typeURL, ACKing it; a zero wait means until ctx ends.
	wait := func(typeURL string, within time.Duration) (*discovery.DiscoveryResponse, error) {
		var timeout <-chan time.Time
		if within > 0 {
			t := time.NewTimer(within)
			defer t.Stop()
			timeout = t.C
		}
		for {
			select {
			case resp := <-responses:
				if resp.TypeUrl != typeURL {
					continue
				}
				_ = stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: typeURL, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
				return resp, nil
			case err := <-recvErr:
				return nil, fmt.Errorf("xDS from %s: %w", c.Addr, err)
			case <-timeout:
				return nil, nil
			case <-ctx.Done():
				return nil, fmt.Errorf("xDS from %s: no %s answer: %w", c.Addr, short(typeURL), ctx.Err())
			}
		}
	}
	snap := &Snapshot{Endpoints: map[string][]Endpoint{}, RawClusters: map[string]*cluster.Cluster{}, Listeners: map[string]*listener.Listener{}}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ClusterType}); err != nil {
		return nil, err
	}
	resp, err := wait(ClusterType, 0)
	if err != nil {
		return nil, err
	}
	for _, res := range resp.Resources {
		cl := &cluster.Cluster{}
		if res.UnmarshalTo(cl) == nil {
			snap.Clusters = append(snap.Clusters, cl.Name)
			snap.RawClusters[cl.Name] = cl
		}
	}
	sort.Strings(snap.Clusters)
	if len(r.EDS) > 0 {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: EndpointType, ResourceNames: r.EDS}); err != nil {
			return nil, err
		}
		resp, err := wait(EndpointType, 0)
		if err != nil {
			return nil, err
		}
		for _, res := range resp.Resources {
			cla := &endpoint.ClusterLoadAssignment{}
			if err := res.UnmarshalTo(cla); err != nil {
				return nil, err
			}
			snap.Endpoints[cla.ClusterName] = endpoints(cla)
		}
	}
	if r.Listeners {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ListenerType}); err != nil {
			return nil, err
		}
		resp, err := wait(ListenerType, 0)
		if err != nil {
			return nil, err
		}
		for _, res := range resp.Resources {
			l := &listener.Listener{}
			if err := res.UnmarshalTo(l); err != nil {
				return nil, err
			}
			snap.Listeners[l.Name] = l
		}
	}
	if r.ProxyConfig {
		if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ProxyConfigType}); err != nil {
			return nil, err
		}
		within := r.ProxyConfigWait
		if within <= 0 {
			within = 3 * time.Second
		}
		resp, err := wait(ProxyConfigType, within)
		if err != nil {
			return nil, err
		}
		if resp != nil && len(resp.Resources) > 0 {
			pc := &meshv1alpha1.ProxyConfig{}
			if err := resp.Resources[0].UnmarshalTo(pc); err != nil {
				return nil, err
			}
			snap.ProxyConfig = pc
		}
	}
	return snap, nil
}

func endpoints(cla *endpoint.ClusterLoadAssignment) []Endpoint {
	var eps []Endpoint
	for _, le := range cla.Endpoints {
		for _, lb := range le.LbEndpoints {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			fm := lb.GetMetadata().GetFilterMetadata()
			eps = append(eps, Endpoint{
				Address: sa.GetAddress(), Port: sa.GetPortValue(), Weight: lb.GetLoadBalancingWeight().GetValue(),
				Locality: le.GetLocality().GetRegion() + "/" + le.GetLocality().GetZone(),
				TLSMode:  fm["envoy.transport_socket_match"].GetFields()["tlsMode"].GetStringValue(),
				Workload: fm["istio"].GetFields()["workload"].GetStringValue(),
			})
		}
	}
	return eps
}

func short(typeURL string) string {
	return typeURL[strings.LastIndex(typeURL, ".")+1:]
}

// IsFinding reports whether an error from Fetch says something about the mesh rather than the
// harness: istiod's serving certificate does not verify against the mesh root, or istiod refuses the
// pod's credentials (its token cannot be reviewed: a missing remote secret, a wrong cluster ID).
func IsFinding(err error) bool {
	if err == nil {
		return false
	}
	var certErr *tls.CertificateVerificationError
	if errors.As(err, &certErr) || strings.Contains(err.Error(), "x509:") || strings.Contains(err.Error(), "failed to verify certificate") {
		return true
	}
	if s, ok := status.FromError(errors.Unwrap(err)); ok {
		return s.Code() == codes.Unauthenticated || s.Code() == codes.PermissionDenied
	}
	if s, ok := status.FromError(err); ok {
		return s.Code() == codes.Unauthenticated || s.Code() == codes.PermissionDenied
	}
	return false
}
