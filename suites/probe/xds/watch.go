package xds

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	core "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	endpoint "github.com/envoyproxy/go-control-plane/envoy/config/endpoint/v3"
	discovery "github.com/envoyproxy/go-control-plane/envoy/service/discovery/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/types/known/structpb"
)

// Update is one EDS answer for the watched cluster, stamped when it arrived.
type Update struct {
	At        time.Time
	Endpoints []Endpoint
}

// Effective is how many workload endpoints the update stands for: each direct endpoint counts one, and
// an east-west gateway endpoint counts its load-balancing weight (istiod weighs another network's
// gateway by the endpoints behind it: pilot/pkg/xds/endpoints/ep_filters.go).
func (u Update) Effective() int {
	n := 0
	for _, e := range u.Endpoints {
		n += max(int(e.Weight), 1)
	}
	return n
}

// Watch keeps an ADS stream open as a proxy would, subscribed to CDS and to the endpoints of
// edsCluster, ACKs every answer, and sends each EDS answer for edsCluster on the returned channel,
// stamped on arrival. The channel closes when ctx ends or the stream fails (the error is then on errs).
func Watch(ctx context.Context, c Conn, node Node, edsCluster string) (<-chan Update, <-chan error, error) {
	md, err := structpb.NewStruct(node.Metadata)
	if err != nil {
		return nil, nil, err
	}
	n := &core.Node{Id: node.ID, Metadata: md}
	creds := insecure.NewCredentials()
	if len(c.Roots) > 0 {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(c.Roots) {
			return nil, nil, fmt.Errorf("no root to verify istiod with")
		}
		creds = credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: "istiod.istio-system.svc"})
		if c.Token != "" {
			ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+c.Token, "ClusterID", c.ClusterID)
		}
	}
	conn, err := grpc.NewClient(c.Addr, grpc.WithTransportCredentials(creds), grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20)))
	if err != nil {
		return nil, nil, err
	}
	stream, err := discovery.NewAggregatedDiscoveryServiceClient(conn).StreamAggregatedResources(ctx)
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("xDS stream to %s: %w", c.Addr, err)
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: ClusterType}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	if err := stream.Send(&discovery.DiscoveryRequest{Node: n, TypeUrl: EndpointType, ResourceNames: []string{edsCluster}}); err != nil {
		conn.Close()
		return nil, nil, err
	}
	updates := make(chan Update, 256)
	errs := make(chan error, 1)
	go func() {
		defer conn.Close()
		defer close(updates)
		for {
			resp, err := stream.Recv()
			if err != nil {
				if ctx.Err() == nil {
					errs <- fmt.Errorf("xDS from %s: %w", c.Addr, err)
				}
				return
			}
			at := time.Now()
			req := &discovery.DiscoveryRequest{Node: n, TypeUrl: resp.TypeUrl, VersionInfo: resp.VersionInfo, ResponseNonce: resp.Nonce}
			if resp.TypeUrl == EndpointType {
				req.ResourceNames = []string{edsCluster}
			}
			_ = stream.Send(req)
			if resp.TypeUrl != EndpointType {
				continue
			}
			u := Update{At: at}
			for _, res := range resp.Resources {
				cla := &endpoint.ClusterLoadAssignment{}
				if res.UnmarshalTo(cla) == nil && cla.ClusterName == edsCluster {
					u.Endpoints = endpoints(cla)
				}
			}
			select {
			case updates <- u:
			case <-ctx.Done():
				return
			}
		}
	}()
	return updates, errs, nil
}
