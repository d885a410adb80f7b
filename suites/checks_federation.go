package suites

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// CheckFederation: each exported service is reachable from the other meshes only through the exporting
// mesh's east-west gateways (address:15443, tlsMode istio), and nothing else of the exporting mesh is
// visible (CheckEndpoints covers helloworld).
func CheckFederation(ctx context.Context, t *Target) Verdict {
	var v Verdict
	f := t.Scenario.Istio.Federation
	if f == nil {
		v.cannot("the scenario is not federated")
		return v
	}
	for _, e := range f.Exports {
		gws := map[string]bool{}
		for _, c := range t.Scenario.Clusters {
			if c.Mesh == e.Mesh {
				if gw, _ := t.networkGateway(ctx, c.Network, c.Mesh); gw != "" {
					gws[gw+":15443"] = true
				}
			}
		}
		if len(gws) == 0 {
			v.fail("mesh %s exports %v but its gateways have no address", e.Mesh, e.Hosts)
			continue
		}
		for _, host := range e.Hosts {
			name, ns, _ := strings.Cut(host, ".")
			ns, _, _ = strings.Cut(ns, ".")
			ports, err := t.Clients[firstOfMesh(t, e.Mesh)].Kube.CoreV1().Services(ns).Get(ctx, name, getOpts)
			if err != nil {
				v.fail("exported service %s does not exist in mesh %s: %v", host, e.Mesh, err)
				continue
			}
			edsName := fmt.Sprintf("outbound|%d||%s", ports.Spec.Ports[0].Port, host)
			for _, client := range t.Scenario.Clusters {
				if client.Mesh == e.Mesh || client.Role != "primary" {
					continue
				}
				eps, err := t.edsFor(ctx, client, edsName)
				if err != nil {
					v.record(err, "reading %s for a client in %s", edsName, client.Name)
					continue
				}
				v.saw("mesh %s client in %s: %s -> %+v", client.Mesh, client.Name, edsName, eps)
				if len(eps) == 0 {
					v.fail("a client in %s (mesh %s) gets no endpoint for %s exported by %s: its ServiceEntry/WorkloadEntry import is missing", client.Name, client.Mesh, host, e.Mesh)
				}
				for _, ep := range eps {
					addr := fmt.Sprintf("%s:%d", ep.Address, ep.Port)
					if !gws[addr] || ep.TLSMode != istio.MTLSMode {
						v.fail("a client in %s reaches %s at %s (tlsMode %q), not only through %s's gateway %v", client.Name, host, addr, ep.TLSMode, e.Mesh, keys(gws))
					}
				}
			}
		}
	}
	return v
}

var getOpts = metav1.GetOptions{}

func firstOfMesh(t *Target, mesh string) string {
	for _, c := range t.Scenario.Clusters {
		if c.Mesh == mesh {
			return c.Name
		}
	}
	return ""
}
