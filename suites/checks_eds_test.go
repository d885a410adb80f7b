package suites

import (
	"testing"

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
