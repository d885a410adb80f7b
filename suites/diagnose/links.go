package diagnose

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
)

// ExportToAnnotation is the Service annotation that limits which namespaces see it.
const ExportToAnnotation = "networking.istio.io/exportTo"

// remoteAccess: istiod of the serving primary reads the source cluster, synced, through a remote
// secret whose credentials may list what istiod watches there.
func (w *walk) remoteAccess() (bool, error) {
	if w.from.Name == w.serving.Name {
		return w.ok(ClassRemoteAccess, fmt.Sprintf("istiod of %s reads %s", w.serving.Name, w.from.Name), w.serving.Name, "its own cluster", ""), nil
	}
	ev := fmt.Sprintf("istiod of %s /debug/clusterz", w.serving.Name)
	check := fmt.Sprintf("istiod of %s reads %s through a remote secret, synced", w.serving.Name, w.from.Name)
	var sync *clusterSync
	for i := range w.st.clusters {
		if w.st.clusters[i].ID == w.from.Name {
			sync = &w.st.clusters[i]
		}
	}
	kc, err := w.kube(w.serving.Name)
	if err != nil {
		return false, err
	}
	ns := istio.IstioNamespace
	want := istio.RemoteSecretName(w.from.Name)
	if sync == nil {
		listed := []string{}
		for _, c := range w.st.clusters {
			listed = append(listed, c.ID)
		}
		saw := fmt.Sprintf("istiod lists %v, not %s", listed, w.from.Name)
		sec, err := kc.Kube.CoreV1().Secrets(ns).Get(w.ctx, want, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			// A secret of another name may still carry the cluster (istioctl names it after the cluster,
			// users need not): only one with the label counts.
			all, lerr := kc.Kube.CoreV1().Secrets(ns).List(w.ctx, metav1.ListOptions{LabelSelector: istio.MultiClusterLabel + "=true"})
			if lerr != nil {
				return false, lerr
			}
			for _, s := range all.Items {
				if _, ok := s.Data[w.from.Name]; ok {
					return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: fmt.Sprintf("%s Secret %s/%s", w.serving.Name, ns, s.Name),
						Field: "data." + w.from.Name, Saw: "present, but " + saw, Evidence: ev,
						Fix: "istiod has not loaded it: its log says why (\"Failed to add remote cluster from secret\")"}), nil
				}
			}
			return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: fmt.Sprintf("%s Secret %s/%s", w.serving.Name, ns, want),
				Saw: "absent (no Secret labelled " + istio.MultiClusterLabel + "=true holds a key " + w.from.Name + "); " + saw, Evidence: ev,
				Fix: fmt.Sprintf("create it: istioctl create-remote-secret --name %s (against %s), applied to %s", w.from.Name, w.from.Name, w.serving.Name)}), nil
		case err != nil:
			return false, err
		}
		if sec.Labels[istio.MultiClusterLabel] != "true" {
			return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: fmt.Sprintf("%s Secret %s/%s", w.serving.Name, ns, want),
				Field: "metadata.labels[" + istio.MultiClusterLabel + "]", Saw: fmt.Sprintf("%q; %s", sec.Labels[istio.MultiClusterLabel], saw), Evidence: ev,
				Fix: "istiod reads only Secrets labelled " + istio.MultiClusterLabel + "=true"}), nil
		}
		if _, ok := sec.Data[w.from.Name]; !ok {
			return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: fmt.Sprintf("%s Secret %s/%s", w.serving.Name, ns, want),
				Field: "data (keys)", Saw: fmt.Sprintf("%v; %s", keys(sec.Data), saw), Evidence: ev,
				Fix: "the data key is the cluster's name istiod uses: rename it to " + w.from.Name}), nil
		}
		return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: fmt.Sprintf("%s Secret %s/%s", w.serving.Name, ns, want),
			Field: "data." + w.from.Name, Saw: "present and labelled, but " + saw, Evidence: ev,
			Fix: "istiod has not loaded it: its log says why (\"Failed to add remote cluster from secret\")"}), nil
	}
	secNS, secName, _ := strings.Cut(sync.SecretName, "/")
	object := fmt.Sprintf("%s Secret %s", w.serving.Name, sync.SecretName)
	var server, user string
	if sec, err := kc.Kube.CoreV1().Secrets(secNS).Get(w.ctx, secName, metav1.GetOptions{}); err == nil {
		server, user = kubeconfigFacts(sec.Data[w.from.Name])
	}
	if sync.SyncStatus != "synced" {
		return w.broken(Link{Class: ClassRemoteAccess, Check: check, Object: object,
			Field: "data." + w.from.Name + " (kubeconfig) clusters[].cluster.server", Saw: fmt.Sprintf("%s; istiod's sync status: %s", server, sync.SyncStatus), Evidence: ev,
			Fix: fmt.Sprintf("give a server address and CA that istiod of %s reaches and trusts", w.serving.Name)}), nil
	}
	// Synced, but may the secret's identity still list what istiod watches? (istiod keeps "synced"
	// when its informers later fail with Forbidden.)
	if user != "" {
		fk, err := w.kube(w.from.Name)
		if err != nil {
			return false, err
		}
		for _, r := range []schema.GroupResource{{Resource: "services"}, {Group: "discovery.k8s.io", Resource: "endpointslices"}, {Resource: "pods"}, {Resource: "namespaces"}} {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{User: user, Groups: saGroups(user),
				ResourceAttributes: &authzv1.ResourceAttributes{Verb: "list", Group: r.Group, Resource: r.Resource}}}
			got, err := fk.Kube.AuthorizationV1().SubjectAccessReviews().Create(w.ctx, sar, metav1.CreateOptions{})
			if err != nil {
				return false, fmt.Errorf("SubjectAccessReview in %s: %w", w.from.Name, err)
			}
			if !got.Status.Allowed {
				return w.broken(Link{Class: ClassRemoteAccess, Check: fmt.Sprintf("the identity of %s's remote secret may list what istiod watches in %s", w.serving.Name, w.from.Name),
					Object: fmt.Sprintf("%s ClusterRoleBinding of %s", w.from.Name, user), Field: "list " + r.String(),
					Saw: "denied" + reason(got.Status.Reason), Evidence: fmt.Sprintf("%s SubjectAccessReview", w.from.Name),
					Fix: "bind the istio-reader ClusterRole (istio-reader-clusterrole-istio-system) to " + user + " again"}), nil
			}
		}
	}
	if user != "" {
		w.used("%s SubjectAccessReviews for %s (list services, endpointslices, pods, namespaces)", w.from.Name, user)
	}
	return w.ok(ClassRemoteAccess, check, object, fmt.Sprintf("synced; server %s; %s may list services, endpointslices, pods, namespaces", server, orUnknown(user)), ev), nil
}

// registry: the service exists in the source cluster, istiod holds it, its ports agree across
// clusters, and istiod holds a shard of ready endpoints for it from the source cluster.
func (w *walk) registry() (bool, error) {
	name, ns := w.svcName(), w.svcNamespace()
	fk, err := w.kube(w.from.Name)
	if err != nil {
		return false, err
	}
	svc, err := fk.Kube.CoreV1().Services(ns).Get(w.ctx, name, metav1.GetOptions{})
	object := fmt.Sprintf("%s Service %s/%s", w.from.Name, ns, name)
	if apierrors.IsNotFound(err) {
		return w.broken(Link{Class: ClassRegistry, Check: fmt.Sprintf("%s defines the service", w.from.Name), Object: object, Saw: "absent",
			Evidence: w.from.Name + " API server", Fix: "apply the Service in " + w.from.Name}), nil
	} else if err != nil {
		return false, err
	}
	w.used("%s Service %s/%s", w.from.Name, ns, name)
	rs := w.st.service(w.e.Host)
	ev := fmt.Sprintf("istiod of %s /debug/registryz", w.serving.Name)
	if rs == nil {
		return w.broken(Link{Class: ClassRegistry, Check: fmt.Sprintf("istiod of %s holds %s", w.serving.Name, w.e.Host), Object: object,
			Saw: "not in istiod's registry", Evidence: ev}), nil
	}
	w.ok(ClassRegistry, fmt.Sprintf("istiod of %s holds %s", w.serving.Name, w.e.Host), object, fmt.Sprintf("ports %s", portList(svc.Spec.Ports)), ev)
	// Ports compared with the client cluster's definition (Istio merges a service by host; a port that
	// differs in name or number does not carry the other cluster's endpoints: IST0170).
	if w.client.Name != w.from.Name {
		if ck, err := w.kube(w.client.Name); err == nil {
			if csvc, err := ck.Kube.CoreV1().Services(ns).Get(w.ctx, name, metav1.GetOptions{}); err == nil {
				if a, b := portList(svc.Spec.Ports), portList(csvc.Spec.Ports); a != b {
					return w.broken(Link{Class: ClassRegistry, Check: fmt.Sprintf("%s's Service has the ports of %s's", w.from.Name, w.client.Name), Object: object,
						Field: "spec.ports", Saw: fmt.Sprintf("%s (in %s: %s)", a, w.client.Name, b), Evidence: "API servers of " + w.from.Name + " and " + w.client.Name,
						Fix: "define the Service with the same port names and numbers in every cluster"}), nil
				}
			}
		}
	}
	eps, _ := w.st.shard(w.e.Host, ns, w.from.Name)
	healthy := 0
	for _, e := range eps {
		if e.HealthStatus <= 1 && (w.e.Port == 0 || w.portNamed(svc, e.ServicePortName)) {
			healthy++
		}
	}
	shardEv := fmt.Sprintf("istiod of %s /debug/endpointShardz[%s][%s][Kubernetes/%s]", w.serving.Name, w.e.Host, ns, w.from.Name)
	check := fmt.Sprintf("istiod of %s holds ready endpoints of %s from %s", w.serving.Name, w.e.Host, w.from.Name)
	if healthy > 0 {
		return w.ok(ClassRegistry, check, object, fmt.Sprintf("%d endpoints", healthy), shardEv), nil
	}
	// None: what the source cluster's EndpointSlices say.
	slices, err := fk.Kube.DiscoveryV1().EndpointSlices(ns).List(w.ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + name})
	if err != nil {
		return false, err
	}
	total, ready := 0, 0
	var notReady string
	for _, s := range slices.Items {
		for _, e := range s.Endpoints {
			total++
			if e.Conditions.Ready == nil || *e.Conditions.Ready {
				ready++
			} else if notReady == "" {
				notReady = s.Name
			}
		}
	}
	switch {
	case total == 0:
		sel := fmt.Sprint(svc.Spec.Selector)
		return w.broken(Link{Class: ClassRegistry, Check: check, Object: object, Field: "spec.selector",
			Saw: sel + " selects no pod (no endpoint in its EndpointSlices)", Evidence: shardEv + "; " + w.from.Name + " EndpointSlices",
			Fix: "run pods in " + w.from.Name + " with those labels, or fix the selector"}), nil
	case ready == 0:
		return w.broken(Link{Class: ClassRegistry, Check: check, Object: fmt.Sprintf("%s EndpointSlice %s/%s", w.from.Name, ns, notReady), Field: "endpoints[].conditions.ready",
			Saw: fmt.Sprintf("false for all %d endpoints", total), Evidence: shardEv + "; " + w.from.Name + " EndpointSlices",
			Fix: "the pods behind it are not ready: see their readiness probes and events"}), nil
	}
	return w.broken(Link{Class: ClassRegistry, Check: check, Object: fmt.Sprintf("istiod of %s", w.serving.Name), Field: fmt.Sprintf("endpointShardz[%s][%s][Kubernetes/%s]", w.e.Host, ns, w.from.Name),
		Saw: fmt.Sprintf("no endpoint, while %s's EndpointSlices hold %d ready", w.from.Name, ready), Evidence: shardEv,
		Fix: "istiod's informer on " + w.from.Name + " is behind or failing: its log names the error"}), nil
}

// meshConfig: the mesh config in effect does not keep the service to its own cluster or namespace.
func (w *walk) meshConfig() (bool, error) {
	object := fmt.Sprintf("%s ConfigMap %s/istio", w.serving.Name, istio.IstioNamespace)
	ev := fmt.Sprintf("istiod of %s /debug/mesh", w.serving.Name)
	if w.from.Name != w.client.Name {
		for i, ss := range w.st.mesh.ServiceSettings {
			if !ss.Settings.ClusterLocal {
				continue
			}
			for _, h := range ss.Hosts {
				if hostMatches(h, w.e.Host) {
					return w.broken(Link{Class: ClassMeshConfig, Check: w.e.Host + " is not cluster-local", Object: object,
						Field: fmt.Sprintf("data.mesh serviceSettings[%d].settings.clusterLocal (hosts %v)", i, ss.Hosts), Saw: "true", Evidence: ev,
						Fix: "remove " + h + " from that entry's hosts, or expect only the client's own cluster's endpoints"}), nil
				}
			}
		}
	}
	if d := w.st.mesh.DefaultServiceExportTo; len(d) > 0 && !exportedTo(d, w.svcNamespace(), w.e.Namespace) {
		if rs := w.st.service(w.e.Host); rs == nil || len(rs.Attributes.ExportTo) == 0 {
			return w.broken(Link{Class: ClassMeshConfig, Check: fmt.Sprintf("services are exported to %s by default", w.e.Namespace), Object: object,
				Field: "data.mesh defaultServiceExportTo", Saw: fmt.Sprint(d), Evidence: ev,
				Fix: fmt.Sprintf("add %q (or \"*\"), or annotate the Service %s", w.e.Namespace, ExportToAnnotation)}), nil
		}
	}
	return w.ok(ClassMeshConfig, w.e.Host+" is not cluster-local and is exported to "+w.e.Namespace+" by default", object,
		fmt.Sprintf("serviceSettings %d entries, defaultServiceExportTo %v", len(w.st.mesh.ServiceSettings), w.st.mesh.DefaultServiceExportTo), ev), nil
}

// visibility: the service's exportTo and the client's Sidecar let the client see it.
func (w *walk) visibility() (bool, error) {
	name, ns := w.svcName(), w.svcNamespace()
	if rs := w.st.service(w.e.Host); rs != nil && len(rs.Attributes.ExportTo) > 0 {
		var to []string
		for k := range rs.Attributes.ExportTo {
			to = append(to, k)
		}
		sort.Strings(to)
		if !exportedTo(to, ns, w.e.Namespace) {
			// Which cluster's Service carries the annotation.
			object := fmt.Sprintf("Service %s/%s", ns, name)
			for _, c := range w.env.Scenario.Clusters {
				if k, err := w.kube(c.Name); err == nil {
					if s, err := k.Kube.CoreV1().Services(ns).Get(w.ctx, name, metav1.GetOptions{}); err == nil && s.Annotations[ExportToAnnotation] != "" {
						object = c.Name + " " + object
						break
					}
				}
			}
			return w.broken(Link{Class: ClassVisibility, Check: fmt.Sprintf("%s is exported to %s", w.e.Host, w.e.Namespace), Object: object,
				Field: "metadata.annotations[" + ExportToAnnotation + "]", Saw: strings.Join(to, ","), Evidence: fmt.Sprintf("istiod of %s /debug/registryz", w.serving.Name),
				Fix: fmt.Sprintf("add %s (or *) to it", w.e.Namespace)}), nil
		}
	}
	ev := fmt.Sprintf("istiod of %s /debug/configz", w.serving.Name)
	sc := w.sidecarFor(w.e.Namespace)
	if sc == nil {
		return w.ok(ClassVisibility, "no Sidecar limits what "+w.e.Namespace+" sees", w.e.Namespace, "no Sidecar in "+w.e.Namespace+" or "+w.rootNamespace(), ev), nil
	}
	var spec struct {
		Egress []struct {
			Hosts []string `json:"hosts"`
		} `json:"egress"`
	}
	_ = json.Unmarshal(sc.Spec, &spec)
	object := fmt.Sprintf("%s Sidecar %s/%s", w.serving.Name, sc.Metadata.Namespace, sc.Metadata.Name)
	if len(spec.Egress) == 0 {
		return w.ok(ClassVisibility, "the client's Sidecar lets it see "+w.e.Host, object, "no egress: the default (everything)", ev), nil
	}
	var all []string
	for i, eg := range spec.Egress {
		for _, h := range eg.Hosts {
			all = append(all, h)
			hns, hhost, ok := strings.Cut(h, "/")
			if !ok {
				continue
			}
			if (hns == "*" || hns == ns || hns == "." && sc.Metadata.Namespace == ns) && hostMatches(hhost, w.e.Host) {
				return w.ok(ClassVisibility, "the client's Sidecar lets it see "+w.e.Host, object, fmt.Sprintf("spec.egress[%d].hosts has %s", i, h), ev), nil
			}
		}
	}
	return w.broken(Link{Class: ClassVisibility, Check: "the client's Sidecar lets it see " + w.e.Host, Object: object, Field: "spec.egress[].hosts",
		Saw: fmt.Sprint(all), Evidence: ev, Fix: fmt.Sprintf("add %s/%s (or %s/*) to its egress hosts", ns, w.e.Host, ns)}), nil
}

// sidecarFor is the Sidecar that scopes a namespace's proxies: one without a workload selector in the
// namespace, else the root namespace's (Istio's rule: pilot/pkg/model/sidecar.go).
func (w *walk) sidecarFor(ns string) *configEntry {
	for _, want := range []string{ns, w.rootNamespace()} {
		for _, c := range w.st.configsOf("Sidecar") {
			var spec struct {
				WorkloadSelector json.RawMessage `json:"workloadSelector"`
			}
			_ = json.Unmarshal(c.Spec, &spec)
			if c.Metadata.Namespace == want && len(spec.WorkloadSelector) == 0 {
				return &c
			}
		}
	}
	return nil
}

func (w *walk) rootNamespace() string {
	if w.st.mesh.RootNamespace != "" {
		return w.st.mesh.RootNamespace
	}
	return istio.IstioNamespace
}

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
	k, err := w.kube(cluster)
	if err != nil || k.Dynamic == nil {
		return Link{}, false, err
	}
	list, err := k.Dynamic.Resource(gatewayGVR).Namespace(istio.IstioNamespace).List(w.ctx, metav1.ListOptions{})
	if err != nil {
		return Link{}, false, err
	}
	w.used("%s Gateways in %s", cluster, istio.IstioNamespace)
	var seen []string
	for _, g := range list.Items {
		servers, _, _ := unstructuredSlice(g.Object, "spec", "servers")
		for _, s := range servers {
			sm, _ := s.(map[string]any)
			port, _ := sm["port"].(map[string]any)
			tls, _ := sm["tls"].(map[string]any)
			num := fmt.Sprint(port["number"])
			mode := fmt.Sprint(tls["mode"])
			seen = append(seen, fmt.Sprintf("%s:%s %s", g.GetName(), num, mode))
			if num == "15443" && mode == "AUTO_PASSTHROUGH" {
				return Link{}, false, nil
			}
		}
	}
	return Link{Class: ClassNetworks, Check: fmt.Sprintf("%s's east-west gateway passes 15443 through by SNI", cluster),
		Object: fmt.Sprintf("%s Gateway %s/cross-network-gateway", cluster, istio.IstioNamespace), Field: "spec.servers[].tls.mode (port 15443)",
		Saw: "no AUTO_PASSTHROUGH server on 15443 (" + orNone(seen) + ")", Evidence: fmt.Sprintf("%s API server, Gateways in %s", cluster, istio.IstioNamespace),
		Fix: "apply samples/multicluster/expose-services.yaml in " + cluster}, true, nil
}

// trafficPolicy: for mTLS on the path (asked for, or needed to cross networks), no DestinationRule
// turns client TLS off or to another mode and no PeerAuthentication disables mTLS.
func (w *walk) trafficPolicy() (bool, error) {
	if !w.e.MTLS && w.sameNetwork() {
		return true, nil
	}
	ev := fmt.Sprintf("istiod of %s /debug/configz", w.serving.Name)
	for _, c := range w.st.configsOf("DestinationRule") {
		var spec struct {
			Host          string `json:"host"`
			TrafficPolicy struct {
				TLS *struct {
					Mode string `json:"mode"`
				} `json:"tls"`
			} `json:"trafficPolicy"`
		}
		_ = json.Unmarshal(c.Spec, &spec)
		host := spec.Host
		if !strings.Contains(host, ".") {
			host += "." + c.Metadata.Namespace + ".svc.cluster.local"
		}
		if !hostMatches(host, w.e.Host) {
			continue
		}
		if spec.TrafficPolicy.TLS == nil {
			continue
		}
		// configz drops an enum's zero value: a tls block without a mode is DISABLE (ClientTLSSettings).
		m := spec.TrafficPolicy.TLS.Mode
		if m == "" {
			m = "DISABLE"
		}
		if m != "ISTIO_MUTUAL" {
			return w.broken(Link{Class: ClassTrafficPolicy, Check: "client TLS to " + w.e.Host + " is Istio mTLS", Object: fmt.Sprintf("%s DestinationRule %s/%s", w.serving.Name, c.Metadata.Namespace, c.Metadata.Name),
				Field: "spec.trafficPolicy.tls.mode", Saw: m, Evidence: ev, Fix: "use ISTIO_MUTUAL, or remove the tls block (auto mTLS)"}), nil
		}
	}
	// The server side's PeerAuthentications are the config of the istiod serving the source cluster.
	server := istio.Topology{S: w.env.Scenario}.Serving(w.from)
	pas := w.st.configsOf("PeerAuthentication")
	paEv := ev
	if server.Name != w.serving.Name {
		body, err := w.env.Debug(w.ctx, server.Name, "/debug/configz")
		if err != nil {
			return false, &InfraError{Primary: server.Name, Path: "/debug/configz", Err: err}
		}
		var cfgs []configEntry
		if err := json.Unmarshal(body, &cfgs); err != nil {
			return false, &InfraError{Primary: server.Name, Path: "/debug/configz", Err: err}
		}
		pas = (&istiodState{configs: cfgs}).configsOf("PeerAuthentication")
		paEv = fmt.Sprintf("istiod of %s /debug/configz", server.Name)
		w.used("%s", paEv)
	}
	for _, c := range pas {
		if c.Metadata.Namespace != w.svcNamespace() && c.Metadata.Namespace != w.rootNamespace() {
			continue
		}
		var spec struct {
			Selector *struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			MTLS struct {
				Mode string `json:"mode"`
			} `json:"mtls"`
		}
		_ = json.Unmarshal(c.Spec, &spec)
		if spec.Selector != nil && len(spec.Selector.MatchLabels) > 0 && spec.Selector.MatchLabels["app"] != w.svcName() {
			continue
		}
		if spec.MTLS.Mode == "DISABLE" {
			return w.broken(Link{Class: ClassTrafficPolicy, Check: w.e.Host + "'s workloads accept Istio mTLS", Object: fmt.Sprintf("%s PeerAuthentication %s/%s", server.Name, c.Metadata.Namespace, c.Metadata.Name),
				Field: "spec.mtls.mode", Saw: "DISABLE", Evidence: paEv, Fix: "use STRICT or PERMISSIVE, or delete it"}), nil
		}
	}
	return w.ok(ClassTrafficPolicy, "no DestinationRule or PeerAuthentication turns mTLS off for "+w.e.Host, w.serving.Name, "", ev), nil
}

// identity: for mTLS, the client's and the source's istiods share the trust domain and the clusters'
// plugged-in CAs share a root.
func (w *walk) identity() (bool, error) {
	if !w.e.MTLS {
		return true, nil
	}
	topo := istio.Topology{S: w.env.Scenario}
	other := topo.Serving(w.from)
	if other.Name != w.serving.Name {
		body, err := w.env.Debug(w.ctx, other.Name, "/debug/mesh")
		if err != nil {
			return false, &InfraError{Primary: other.Name, Path: "/debug/mesh", Err: err}
		}
		var m meshConfig
		if err := json.Unmarshal(body, &m); err != nil {
			return false, &InfraError{Primary: other.Name, Path: "/debug/mesh", Err: err}
		}
		if m.TrustDomain != w.st.mesh.TrustDomain {
			return w.broken(Link{Class: ClassIdentity, Check: "one trust domain", Object: fmt.Sprintf("%s ConfigMap %s/istio", other.Name, istio.IstioNamespace),
				Field: "data.mesh trustDomain", Saw: fmt.Sprintf("%q (%s's: %q)", m.TrustDomain, w.serving.Name, w.st.mesh.TrustDomain),
				Evidence: fmt.Sprintf("istiod of %s and %s /debug/mesh", w.serving.Name, other.Name), Fix: "use one trust domain, or list the other in trustDomainAliases"}), nil
		}
	}
	roots := map[string]string{}
	for _, c := range []string{w.client.Name, w.from.Name} {
		k, err := w.kube(c)
		if err != nil {
			return false, err
		}
		sec, err := k.Kube.CoreV1().Secrets(istio.IstioNamespace).Get(w.ctx, istio.CACertsSecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // istiod's self-signed CA: the root check (MC-MTLS) judges it
		} else if err != nil {
			return false, err
		}
		sum := sha256.Sum256(sec.Data["root-cert.pem"])
		roots[c] = hex.EncodeToString(sum[:6])
	}
	if a, b := roots[w.client.Name], roots[w.from.Name]; a != "" && b != "" && a != b {
		return w.broken(Link{Class: ClassIdentity, Check: "one root of trust", Object: fmt.Sprintf("%s Secret %s/%s", w.from.Name, istio.IstioNamespace, istio.CACertsSecret),
			Field: "data[root-cert.pem]", Saw: fmt.Sprintf("sha256 %s (%s's: %s)", b, w.client.Name, a), Evidence: "API servers of " + w.client.Name + " and " + w.from.Name,
			Fix: "plug in certificates from the same root, then restart istiod"}), nil
	}
	return w.ok(ClassIdentity, "one trust domain and one root", w.from.Name, w.st.mesh.TrustDomain, "istiod /debug/mesh, cacerts"), nil
}

func (w *walk) portNamed(svc *corev1.Service, name string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name == name && int(p.Port) == w.e.Port {
			return true
		}
	}
	return false
}

// exportedTo reports whether an exportTo list lets namespace client see a service of namespace svcNS.
func exportedTo(to []string, svcNS, client string) bool {
	for _, t := range to {
		if t == "*" || t == client || t == "." && svcNS == client {
			return true
		}
	}
	return false
}

func portList(ps []corev1.ServicePort) string {
	var out []string
	for _, p := range ps {
		out = append(out, fmt.Sprintf("%s/%d", p.Name, p.Port))
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func gatewayList(gws []networkGateway) string {
	var out []string
	for _, g := range gws {
		out = append(out, fmt.Sprintf("%s at %s:%d", g.Network, g.Addr, g.Port))
	}
	return orNone(out)
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func orNone(s []string) string {
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

func orUnknown(s string) string {
	if s == "" {
		return "the secret's identity unknown"
	}
	return s
}

func reason(r string) string {
	if r == "" {
		return ""
	}
	return ": " + r
}

// kubeconfigFacts reads a remote secret's kubeconfig: its server, and the user its token names
// (system:serviceaccount:NS:NAME from the JWT's sub claim, read without verifying it). Nothing secret
// leaves this function.
func kubeconfigFacts(data []byte) (server, user string) {
	cfg, err := clientcmd.Load(data)
	if err != nil {
		return "", ""
	}
	for _, c := range cfg.Clusters {
		server = c.Server
	}
	for _, a := range cfg.AuthInfos {
		parts := strings.Split(a.Token, ".")
		if len(parts) != 3 {
			continue
		}
		claims, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			continue
		}
		var c struct {
			Sub string `json:"sub"`
		}
		if json.Unmarshal(claims, &c) == nil && strings.HasPrefix(c.Sub, "system:serviceaccount:") {
			user = c.Sub
		}
	}
	return server, user
}

// saGroups are the groups the API server gives a service account's token.
func saGroups(user string) []string {
	parts := strings.Split(user, ":")
	if len(parts) != 4 || !slices.Equal(parts[:2], []string{"system", "serviceaccount"}) {
		return nil
	}
	return []string{"system:serviceaccounts", "system:serviceaccounts:" + parts[2], "system:authenticated"}
}

func unstructuredSlice(obj map[string]any, fields ...string) ([]any, bool, error) {
	var cur any = obj
	for _, f := range fields {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false, nil
		}
		cur = m[f]
	}
	s, ok := cur.([]any)
	return s, ok, nil
}
