package diagnose

import (
	"fmt"
	"slices"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mclab.dev/mclab/lab/istio"
)

// networks: across networks, istiod knows the source network's gateway (its Service labelled with the
// network, with a tls port 15443 and an address) and the gateway's cluster has the AUTO_PASSTHROUGH
// Gateway; on either, the source's endpoints carry the source's network.
func (w *walk) networks() (bool, error) {
	eps, _ := w.st.shard(w.e.Host, w.svcNamespace(), w.from.Name)
	shardEv := fmt.Sprintf("istiod of %s /debug/endpointShardz", w.serving.Name)
	for _, e := range eps {
		if e.Network != w.from.Network {
			return w.broken(w.networkOfEndpoint(e, shardEv)), nil
		}
	}
	if w.sameNetwork() {
		return w.ok(ClassNetworks, fmt.Sprintf("%s's endpoints are on the client's network %s", w.from.Name, w.client.Network), w.from.Name, w.from.Network, shardEv), nil
	}
	ev := fmt.Sprintf("istiod of %s /debug/networkz", w.serving.Name)
	check := fmt.Sprintf("istiod of %s knows network %s's gateway", w.serving.Name, w.from.Network)
	var gw *networkGateway
	for i := range w.st.networks {
		if w.st.networks[i].Network == w.from.Network {
			gw = &w.st.networks[i]
		}
	}
	topo := istio.Topology{S: w.env.Scenario}
	if gw == nil {
		// Why not: the gateway Services of that network, as istiod reads them.
		for _, c := range w.env.Scenario.Clusters {
			if c.Network != w.from.Network || c.Mesh != w.from.Mesh || !topo.NeedsEastWestGateway(c) {
				continue
			}
			if l, bad, err := w.gatewayService(c.Name, ev); err != nil {
				return false, err
			} else if bad {
				return w.broken(l), nil
			}
		}
		return w.broken(Link{Class: ClassNetworks, Check: check, Object: fmt.Sprintf("istiod of %s", w.serving.Name), Field: "/debug/networkz",
			Saw: fmt.Sprintf("no gateway for %s (gateways: %s)", w.from.Network, gatewayList(w.st.networks)), Evidence: ev}), nil
	}
	// istiod keeps a gateway it once knew after its Service lost the address (seen on a local lab):
	// the Service as it is now must still give what istiod holds.
	if l, bad, err := w.gatewayService(gw.Cluster, ev); err != nil {
		return false, err
	} else if bad {
		l.Saw += fmt.Sprintf(" (istiod still holds %s:%d from before)", gw.Addr, gw.Port)
		return w.broken(l), nil
	}
	w.ok(ClassNetworks, check, fmt.Sprintf("%s Service %s/%s", gw.Cluster, istio.IstioNamespace, istio.EastWestGatewayName), fmt.Sprintf("%s:%d", gw.Addr, gw.Port), ev)
	// The gateway's cluster routes 15443 by SNI only with the AUTO_PASSTHROUGH Gateway.
	if l, bad, err := w.passthroughGateway(gw.Cluster); err != nil {
		return false, err
	} else if bad {
		return w.broken(l), nil
	}
	w.ok(ClassNetworks, fmt.Sprintf("%s's east-west gateway passes 15443 through by SNI", gw.Cluster), fmt.Sprintf("%s Gateways in %s", gw.Cluster, istio.IstioNamespace), "an AUTO_PASSTHROUGH server on 15443", fmt.Sprintf("%s API server", gw.Cluster))
	// istiod sends no cross-network endpoint that is not mTLS (ep_filters.go).
	for _, e := range eps {
		if e.TLSMode != "istio" {
			return w.broken(Link{Class: ClassNetworks, Check: "cross-network endpoints are mTLS (istiod drops the others: ep_filters.go)",
				Object: fmt.Sprintf("%s Pod %s/%s", w.from.Name, w.svcNamespace(), e.WorkloadName), Field: "metadata.labels[security.istio.io/tlsMode]",
				Saw: fmt.Sprintf("%q (endpoint %v)", e.TLSMode, e.Addresses), Evidence: shardEv, Fix: "inject the workload's sidecar"}), nil
		}
	}
	return true, nil
}

func (w *walk) networkOfEndpoint(e shardEndpoint, ev string) Link {
	l := Link{Class: ClassNetworks, Check: fmt.Sprintf("%s's endpoints are on %s", w.from.Name, w.from.Network), Evidence: ev,
		Saw: fmt.Sprintf("endpoint %v is on %q", e.Addresses, e.Network)}
	if k, err := w.kube(w.from.Name); err == nil {
		if ns, err := k.Kube.CoreV1().Namespaces().Get(w.ctx, istio.IstioNamespace, metav1.GetOptions{}); err == nil && ns.Labels[istio.NetworkLabel] != w.from.Network {
			l.Object, l.Field = fmt.Sprintf("%s Namespace %s", w.from.Name, istio.IstioNamespace), "metadata.labels["+istio.NetworkLabel+"]"
			l.Saw = fmt.Sprintf("%q (endpoint %v placed on %q)", ns.Labels[istio.NetworkLabel], e.Addresses, e.Network)
			l.Fix = fmt.Sprintf("label it %s=%s", istio.NetworkLabel, w.from.Network)
			return l
		}
	}
	pod := w.podWithIP(e.Addresses)
	if pod == "" {
		pod = e.WorkloadName + " (workload)"
	}
	l.Object, l.Field = fmt.Sprintf("%s Pod %s/%s", w.from.Name, w.svcNamespace(), pod), "metadata.labels["+istio.NetworkLabel+"]"
	l.Fix = fmt.Sprintf("the pod's network label must be %s (its cluster's network)", w.from.Network)
	return l
}

// podWithIP names the source cluster's pod in the service's namespace that has one of ips ("" when
// none does).
func (w *walk) podWithIP(ips []string) string {
	k, err := w.kube(w.from.Name)
	if err != nil {
		return ""
	}
	pods, err := k.Kube.CoreV1().Pods(w.svcNamespace()).List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		if slices.Contains(ips, p.Status.PodIP) {
			return p.Name
		}
	}
	return ""
}

// gatewayService checks the east-west gateway Service of cluster as istiod uses it for networkz.
func (w *walk) gatewayService(cluster, ev string) (Link, bool, error) {
	k, err := w.kube(cluster)
	if err != nil {
		return Link{}, false, err
	}
	object := fmt.Sprintf("%s Service %s/%s", cluster, istio.IstioNamespace, istio.EastWestGatewayName)
	check := fmt.Sprintf("istiod of %s knows network %s's gateway", w.serving.Name, w.from.Network)
	svc, err := k.Kube.CoreV1().Services(istio.IstioNamespace).Get(w.ctx, istio.EastWestGatewayName, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		return Link{Class: ClassNetworks, Check: check, Object: object, Saw: "absent", Evidence: ev, Fix: "install the east-west gateway in " + cluster}, true, nil
	case err != nil:
		return Link{}, false, err
	}
	if svc.Labels[istio.NetworkLabel] != w.from.Network {
		return Link{Class: ClassNetworks, Check: check, Object: object, Field: "metadata.labels[" + istio.NetworkLabel + "]",
			Saw: fmt.Sprintf("%q", svc.Labels[istio.NetworkLabel]), Evidence: ev, Fix: fmt.Sprintf("label it %s=%s", istio.NetworkLabel, w.from.Network)}, true, nil
	}
	has := false
	for _, p := range svc.Spec.Ports {
		if p.Port == 15443 {
			has = true
		}
	}
	if !has {
		return Link{Class: ClassNetworks, Check: check, Object: object, Field: "spec.ports", Saw: portList(svc.Spec.Ports) + " (no 15443)", Evidence: ev,
			Fix: "add port 15443 named tls (istiod takes a network's gateway port from it)"}, true, nil
	}
	if len(svc.Status.LoadBalancer.Ingress) == 0 && len(svc.Spec.ExternalIPs) == 0 {
		return Link{Class: ClassNetworks, Check: check, Object: object, Field: "status.loadBalancer.ingress", Saw: "empty (no address)", Evidence: ev,
			Fix: "give it an address: a LoadBalancer, or spec.externalIPs"}, true, nil
	}
	return Link{}, false, nil
}

var gatewayGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}

// passthroughGateway checks that cluster has a Gateway for the east-west gateway with a TLS server on
// 15443 in AUTO_PASSTHROUGH mode (samples/multicluster/expose-services.yaml).
func (w *walk) passthroughGateway(cluster string) (Link, bool, error) {
	servers, ok, err := w.gatewayServers(cluster)
	if err != nil || !ok {
		return Link{}, false, err
	}
	var seen []string
	for _, s := range servers {
		seen = append(seen, fmt.Sprintf("%s:%s %s", s.gateway, s.port, s.mode))
		if s.passthrough() {
			return Link{}, false, nil
		}
	}
	return Link{Class: ClassNetworks, Check: fmt.Sprintf("%s's east-west gateway passes 15443 through by SNI", cluster),
		Object: fmt.Sprintf("%s Gateway %s/cross-network-gateway", cluster, istio.IstioNamespace), Field: "spec.servers[].tls.mode (port 15443)",
		Saw: "no AUTO_PASSTHROUGH server on 15443 (" + orNone(seen) + ")", Evidence: fmt.Sprintf("%s API server, Gateways in %s", cluster, istio.IstioNamespace),
		Fix: "apply samples/multicluster/expose-services.yaml in " + cluster}, true, nil
}

// gatewayServer is one server of a Gateway in istio-system: its port number, TLS mode and hosts.
type gatewayServer struct {
	gateway, port, mode string
	hosts               []string
}

// passthrough is a TLS server on 15443 in AUTO_PASSTHROUGH mode (routing by SNI to the mesh's services).
func (s gatewayServer) passthrough() bool { return s.port == "15443" && s.mode == "AUTO_PASSTHROUGH" }

// gatewayServers lists the servers of cluster's Gateways in istio-system, as its API server holds them;
// ok is false when the cluster has no client for Istio's resources.
func (w *walk) gatewayServers(cluster string) ([]gatewayServer, bool, error) {
	k, err := w.kube(cluster)
	if err != nil || k.Dynamic == nil {
		return nil, false, err
	}
	list, err := k.Dynamic.Resource(gatewayGVR).Namespace(istio.IstioNamespace).List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return nil, false, err
	}
	w.used("%s Gateways in %s", cluster, istio.IstioNamespace)
	var out []gatewayServer
	for _, g := range list.Items {
		servers, _, _ := unstructuredSlice(g.Object, "spec", "servers")
		for _, s := range servers {
			sm, _ := s.(map[string]any)
			port, _ := sm["port"].(map[string]any)
			tls, _ := sm["tls"].(map[string]any)
			gs := gatewayServer{gateway: g.GetName(), port: fmt.Sprint(port["number"]), mode: fmt.Sprint(tls["mode"])}
			hosts, _ := sm["hosts"].([]any)
			for _, h := range hosts {
				gs.hosts = append(gs.hosts, fmt.Sprint(h))
			}
			out = append(out, gs)
		}
	}
	return out, true, nil
}
