// Package xds is the control-plane probe: it connects to the istiod serving a pod exactly as that pod's
// sidecar would (node id from the real pod, the metadata the injector puts in the proxy's environment)
// and reads CDS and EDS with Envoy's go-control-plane types.
package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"sort"
	"time"

	cluster "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
	corev1 "k8s.io/api/core/v1"
)

// Type URLs.
const (
	ClusterType  = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
	EndpointType = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
)

// Node is what a sidecar presents to istiod.
type Node struct {
	ID       string
	Metadata map[string]any
}

// SidecarNode builds the node of pod's sidecar: id sidecar~<podIP>~<pod>.<ns>~<ns>.svc.cluster.local and
// the metadata from its istio-proxy container's ISTIO_META_* environment (CLUSTER_ID, NETWORK, MESH_ID,
// ...), plus NAMESPACE, LABELS and ISTIO_VERSION as pilot-agent sends them.
func SidecarNode(pod *corev1.Pod, istioVersion string) (Node, error) {
	md := map[string]any{"NAMESPACE": pod.Namespace, "ISTIO_VERSION": istioVersion, "INTERCEPTION_MODE": "REDIRECT", "NAME": pod.Name}
	found := false
	for _, c := range pod.Spec.Containers {
		if c.Name != "istio-proxy" {
			continue
		}
		found = true
		for _, e := range c.Env {
			if len(e.Name) > len("ISTIO_META_") && e.Name[:len("ISTIO_META_")] == "ISTIO_META_" && e.Value != "" {
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
	return Node{ID: fmt.Sprintf("sidecar~%s~%s.%s~%s.svc.cluster.local", pod.Status.PodIP, pod.Name, pod.Namespace, pod.Namespace), Metadata: md}, nil
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

// Snapshot is what istiod sent: cluster names and the endpoints asked for.
type Snapshot struct {
	Clusters  []string              `json:"clusters"`
	Endpoints map[string][]Endpoint `json:"endpoints"`
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

// Fetch opens an ADS stream to istiod, asks for every cluster (CDS), ACKs, then asks for the endpoints
// of edsClusters and returns the first answer. On the secure port it authenticates with the token, as a
// sidecar's agent does.
func Fetch(ctx context.Context, c Conn, node Node, edsClusters ...string) (*Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	md, err := structpb.NewStruct(node.Metadata)
	if err != nil {
		return nil, err
	}
	n := &core.Node{Id: node.ID, Metadata: md}
	addr := c.Addr
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
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		return nil, fmt.Errorf("xDS stream to %s: %w", addr, err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ClusterType}); err != nil {
		return nil, err
	}
	snap := &Snapshot{Endpoints: map[string][]Endpoint{}}
	for {
		resp, err := stream.Recv()
		if err != nil {
			return nil, fmt.Errorf("xDS from %s: %w", addr, err)
		}
		switch resp.TypeUrl {
		case ClusterType:
			for _, r := range resp.Resources {
				c := &cluster.Cluster{}
				if r.UnmarshalTo(c) == nil {
					snap.Clusters = append(snap.Clusters, c.Name)
				}
			}
			sort.Strings(snap.Clusters)
			_ = stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ClusterType, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce})
			if len(edsClusters) == 0 {
				return snap, nil
			}
			if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: EndpointType, ResourceNames: edsClusters}); err != nil {
				return nil, err
			}
		case EndpointType:
			for _, r := range resp.Resources {
				cla := &endpoint.ClusterLoadAssignment{}
				if err := r.UnmarshalTo(cla); err != nil {
					return nil, err
				}
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
				snap.Endpoints[cla.ClusterName] = eps
			}
			return snap, nil
		}
	}
}
