package kind

import (
	"net/netip"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

func TestRoutesOnlyBetweenSameNetworkBothWays(t *testing.T) {
	s, err := scenario.Load("mixed-network", scenarios.FS) // c1, c2 on network1; c3 on network2
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string][]string{"c1": {"lab-c1-control-plane"}, "c2": {"lab-c2-control-plane", "lab-c2-worker"}, "c3": {"lab-c3-control-plane"}}
	via := map[string]string{"c1": "172.18.0.2", "c2": "172.18.0.3", "c3": "172.18.0.4"}
	routes := Routes(s, nodes, via)
	var got []string
	for _, r := range routes {
		got = append(got, r.String())
	}
	want := []string{
		"lab-c1-control-plane: ip route add 10.20.0.0/16 via 172.18.0.3",
		"lab-c1-control-plane: ip route add 10.255.20.0/24 via 172.18.0.3",
		"lab-c2-control-plane: ip route add 10.10.0.0/16 via 172.18.0.2",
		"lab-c2-control-plane: ip route add 10.255.10.0/24 via 172.18.0.2",
		"lab-c2-worker: ip route add 10.10.0.0/16 via 172.18.0.2",
		"lab-c2-worker: ip route add 10.255.10.0/24 via 172.18.0.2",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("routes:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	for _, r := range routes {
		if strings.Contains(r.Node, "c3") || r.Via == via["c3"] {
			t.Errorf("c3 is alone on network2 and must get no route: %s", r)
		}
	}
}

func TestPoolsNeverOverlap(t *testing.T) {
	for _, subnet := range []string{"172.18.0.0/16", "172.19.0.0/24", "10.89.0.0/20"} {
		clusters := []string{"c1", "c2", "c3", "c4", "c5"}
		if subnet == "172.19.0.0/24" {
			clusters = clusters[:1]
		}
		pools, err := Pools(netip.MustParsePrefix(subnet), clusters)
		if err != nil {
			t.Fatalf("%s: %v", subnet, err)
		}
		p := netip.MustParsePrefix(subnet)
		seen := map[netip.Addr]string{}
		for c, r := range pools {
			if !p.Contains(r[0]) || !p.Contains(r[1]) {
				t.Errorf("%s: pool of %s %v outside the subnet", subnet, c, r)
			}
			for a := r[0]; a.Compare(r[1]) <= 0; a = a.Next() {
				if other, dup := seen[a]; dup {
					t.Fatalf("%s: %s in the pools of %s and %s", subnet, a, c, other)
				}
				seen[a] = c
			}
		}
	}
	if got, _ := Pools(netip.MustParsePrefix("172.18.0.0/16"), []string{"c1", "c2"}); got["c1"][0].String() != "172.18.3.232" || got["c2"][0].String() != "172.18.4.26" {
		t.Errorf("Istio's layout starts at host 1000: %v", got)
	}
	if _, err := Pools(netip.MustParsePrefix("172.18.0.0/28"), []string{"c1"}); err == nil || !strings.Contains(err.Error(), "too small") {
		t.Errorf("a tiny network must be refused with a fix: %v", err)
	}
	if _, err := Pools(netip.MustParsePrefix("fd00::/64"), []string{"c1"}); err == nil {
		t.Error("an IPv6 subnet must be refused")
	}
}
