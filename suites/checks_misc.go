package suites

import (
	"context"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

// CheckNetworkLabels: every cluster's istio-system carries topology.istio.io/network with its network
// (Istio's multi-network docs: "set the cluster's network there").
func CheckNetworkLabels(ctx context.Context, t *Target) Verdict {
	var v Verdict
	for _, c := range t.Scenario.Clusters {
		ns, err := t.Clients[c.Name].Kube.CoreV1().Namespaces().Get(ctx, istio.IstioNamespace, metav1.GetOptions{})
		if err != nil {
			v.record(apiErr(err), "%s has no istio-system", c.Name)
			continue
		}
		got := ns.Labels[istio.NetworkLabel]
		v.saw("%s istio-system %s=%q", c.Name, istio.NetworkLabel, got)
		if got != c.Network {
			v.fail("network label missing on %s's istio-system (%s=%q, want %q): new workloads and gateways of %s land on the wrong network; kubectl label namespace istio-system %s=%s",
				c.Name, istio.NetworkLabel, got, c.Network, c.Name, istio.NetworkLabel, c.Network)
		}
	}
	return v
}

// CheckRemotesServed: every remote's sample pods were injected by its primary's istiod (the proxy
// carries the remote's cluster ID and network), and its workload certificates are issued by the
// primary's intermediate.
func CheckRemotesServed(ctx context.Context, t *Target) Verdict {
	var v Verdict
	for _, c := range t.Scenario.Clusters {
		if c.Role != scenario.Remote {
			continue
		}
		if at, finding, err := t.remoteIstiodPath(ctx, c); finding != "" {
			v.fail("%s", finding)
		} else if err != nil {
			v.cannot("%v", err)
		} else {
			v.saw("remote %s: Service istiod points at %s (%s's %s)", c.Name, at, c.Primary, exposureOf(t, *t.Scenario.Cluster(c.Primary)))
		}
		pod, err := t.probe(ctx, c.Name)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		if pod.Annotations["sidecar.istio.io/status"] == "" {
			v.fail("%s in remote %s was not injected: its MutatingWebhookConfiguration does not reach %s's istiod", pod.Labels["app"], c.Name, c.Primary)
			continue
		}
		env := map[string]string{}
		for _, ct := range pod.Spec.Containers {
			if ct.Name == "istio-proxy" {
				for _, e := range ct.Env {
					env[e.Name] = e.Value
				}
			}
		}
		if env["ISTIO_META_CLUSTER_ID"] != c.Name || env["ISTIO_META_NETWORK"] != c.Network {
			v.fail("%s in remote %s was injected for cluster %q network %q, want %s and %s: the injection path of its webhook is wrong",
				pod.Labels["app"], c.Name, env["ISTIO_META_CLUSTER_ID"], env["ISTIO_META_NETWORK"], c.Name, c.Network)
		}
		v.saw("remote %s: %s injected with CLUSTER_ID=%s NETWORK=%s", c.Name, pod.Labels["app"], env["ISTIO_META_CLUSTER_ID"], env["ISTIO_META_NETWORK"])
	}
	certs := CheckWorkloadCertificates(ctx, t)
	v.Failures = append(v.Failures, certs.Failures...)
	if certs.Inconclusive != nil {
		v.cannot("%v", certs.Inconclusive)
	}
	for _, e := range certs.Evidence {
		v.Evidence = append(v.Evidence, e)
		for _, c := range t.Scenario.Clusters {
			if c.Role == scenario.Remote && strings.HasPrefix(e, c.Name+":") && !strings.Contains(e, "L="+c.Primary) {
				v.fail("the certificate of remote %s was not issued by %s's intermediate: %s", c.Name, c.Primary, e)
			}
		}
	}
	return v
}

// ClusterLocalCluster is the EDS cluster of the lab's cluster-local sample.
const ClusterLocalCluster = "outbound|80||" + istio.ClusterLocalHost

// CheckClusterLocal: a cluster-local service (meshConfig.serviceSettings clusterLocal) stays local:
// a client in every cluster gets only its own cluster's endpoints for it.
func CheckClusterLocal(ctx context.Context, t *Target) Verdict {
	var v Verdict
	all := map[string]string{}
	own := map[string]map[string]bool{}
	for _, c := range t.Scenario.Clusters {
		ips, err := t.podIPs(ctx, c.Name, "curl")
		if err != nil {
			v.cannot("listing curl pods in %s: %v", c.Name, err)
			continue
		}
		own[c.Name] = ips
		for ip := range ips {
			all[ip] = c.Name
		}
		if gw, _ := t.networkGatewayOf(ctx, c.Name); gw != "" {
			all[gw] = c.Name + " (through " + c.Network + "'s gateway)"
		}
	}
	for _, c := range t.Scenario.Clusters {
		eps, err := t.edsFor(ctx, c, ClusterLocalCluster)
		if err != nil {
			v.record(err, "reading the endpoints a client in %s gets for %s", c.Name, istio.ClusterLocalHost)
			continue
		}
		if len(own[c.Name]) == 0 {
			v.cannot("no running curl pod in %s: a cluster-local service with no local endpoint proves nothing", c.Name)
		}
		got := map[string]bool{}
		for _, e := range eps {
			got[e.Address] = true
		}
		for ip := range own[c.Name] {
			if !got[ip] {
				v.notYetWhy(func() string { return t.causeFor(ctx, c, c.Name, istio.ClusterLocalHost, false) }, "a client in %s does not get its own cluster's endpoint %s for cluster-local %s", c.Name, ip, istio.ClusterLocalHost)
			}
		}
		v.saw("EDS %s for a client in %s: %+v", ClusterLocalCluster, c.Name, eps)
		for _, e := range eps {
			if owner, ok := all[e.Address]; !ok || owner != c.Name {
				where := owner
				if !ok {
					where = "an unknown workload"
				}
				v.failWhy(func() string { return t.localCause(ctx, c, istio.ClusterLocalHost) }, "%s is cluster-local but a client in %s gets an endpoint of %s (%s:%d)",
					istio.ClusterLocalHost, c.Name, where, e.Address, e.Port)
			}
		}
	}
	return v
}
