package suites

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// Istio's rule (pilot/pkg/xds/endpoints/ep_filters.go EndpointsByNetworkFilter and
// pilot/pkg/model/network.go NetworkGateways.update): remote endpoints weigh the LCM of the gateway
// counts per network and per network+cluster, split evenly among the gateways of the endpoint's
// network and cluster (else its network), summed per gateway.
func TestExpectedGatewayWeights(t *testing.T) {
	clusters := []scenario.Cluster{
		{Name: "c1", Network: "n1"}, {Name: "c3", Network: "n2"}, {Name: "c4", Network: "n2"}, {Name: "c5", Network: "n3"},
	}
	gws := []gateway{
		{network: "n1", cluster: "c1", addr: "a1"},
		{network: "n2", cluster: "c3", addr: "a3"},
		{network: "n2", cluster: "c4", addr: "a4"},
		// n3's endpoints live in c5 but its two gateways run in a cluster without endpoints (gw-only).
		{network: "n3", cluster: "g1", addr: "b1"},
		{network: "n3", cluster: "g1", addr: "b2"},
	}
	// gateways per network: n1 1, n2 2, n3 2; per network+cluster: 1, 1, 1, 2 -> LCM 2.
	if got := weightScale(gws); got != 2 {
		t.Fatalf("scale %d, want 2", got)
	}
	got := expectedGatewayWeights("n1", clusters, map[string]int{"c1": 5, "c3": 2, "c4": 1, "c5": 3}, gws)
	want := map[string]uint32{
		"a3": 4, // c3's 2 endpoints x 2, only through c3's own gateway
		"a4": 2, // c4's endpoint x 2
		"b1": 3, // c5 has no gateway of its own: its 3 endpoints x 2 split over n3's two gateways
		"b2": 3,
	}
	if len(got) != len(want) {
		t.Fatalf("weights %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("gateway %s weight %d, want %d", k, got[k], w)
		}
	}
	// One gateway per network (the lab's layout): weights are endpoint counts.
	simple := []gateway{{network: "n1", cluster: "c1", addr: "a1"}, {network: "n2", cluster: "c3", addr: "a3"}}
	if w := expectedGatewayWeights("n1", clusters[:2], map[string]int{"c1": 1, "c3": 3}, simple); w["a3"] != 3 || len(w) != 1 {
		t.Errorf("simple: %v", w)
	}
}

// An AWS load balancer publishes only a hostname: it is the gateway's address, resolved as istiod
// resolves it.
func TestHostnameGatewayAddress(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istio-eastwestgateway", Namespace: "istio-system"},
		Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{Hostname: "localhost"}}}}}
	s := mustCompose(t, scenario.MultiNetwork, 2)
	tg := &Target{Scenario: s, Clients: map[string]*kube.Client{"c1": {Name: "c1", Kube: fake.NewClientset(svc)}}}
	addr, err := GatewayAddress(context.Background(), tg, "c1")
	if err != nil || addr != "localhost" {
		t.Fatalf("address %q, %v", addr, err)
	}
	ips := resolveGateway(context.Background(), addr)
	if !slices.Contains(ips, "127.0.0.1") && !slices.Contains(ips, "::1") {
		t.Errorf("localhost resolved to %v", ips)
	}
	if got := resolveGateway(context.Background(), "198.18.0.1"); len(got) != 1 || got[0] != "198.18.0.1" {
		t.Errorf("an IP is itself: %v", got)
	}
}

// A loopback remote-secret server is unreachable only where istiod runs in a pod: kind's in-cluster
// istiod (seen on real kind here), not a local process or an external control plane on the host.
func TestLoopbackServerMattersOnlyForIstiodInPods(t *testing.T) {
	for _, s := range []string{"https://127.0.0.1:35935", "https://localhost:6443", "https://[::1]:6443"} {
		if !loopback(s) {
			t.Errorf("%s is loopback", s)
		}
	}
	if loopback("https://172.18.0.3:6443") {
		t.Error("a container IP is not loopback")
	}
	istiod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "istiod-7c9d", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}}, Status: corev1.PodStatus{Phase: corev1.PodRunning}}
	s := mustCompose(t, scenario.SingleNetwork, 2)
	inPod := &Target{Scenario: s, Clients: map[string]*kube.Client{"c1": {Name: "c1", Kube: fake.NewClientset(istiod)}}}
	inPod.Capabilities.Istiod = "in-cluster"
	if !inPod.istiodInPod(context.Background(), "c1") {
		t.Error("a running istiod pod in c1")
	}
	external := &Target{Scenario: s, Clients: map[string]*kube.Client{"c1": {Name: "c1", Kube: fake.NewClientset()}}}
	external.Capabilities.Istiod = "in-cluster" // the existing provider's default, istiod actually on the host
	if external.istiodInPod(context.Background(), "c1") {
		t.Error("no istiod pod: istiod runs elsewhere")
	}
}
