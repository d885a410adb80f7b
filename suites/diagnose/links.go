package diagnose

import (
	"encoding/base64"
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

// clusterLocal (the inverse expectation): the serving istiod's mesh config in effect marks the host
// cluster-local, so it sends a client only the endpoints of the client's own cluster. istiod keeps
// every cluster's shard of the host either way (endpointShardz); the setting is what filters them.
func (w *walk) clusterLocal() (bool, error) {
	object := fmt.Sprintf("%s ConfigMap %s/istio", w.serving.Name, istio.IstioNamespace)
	ev := fmt.Sprintf("istiod of %s /debug/mesh", w.serving.Name)
	var local []string
	for i, ss := range w.st.mesh.ServiceSettings {
		if !ss.Settings.ClusterLocal {
			continue
		}
		for _, h := range ss.Hosts {
			if hostMatches(h, w.e.Host) {
				return w.ok(ClassMeshConfig, w.e.Host+" is cluster-local", object,
					fmt.Sprintf("serviceSettings[%d] hosts %v clusterLocal true", i, ss.Hosts), ev), nil
			}
			local = append(local, h)
		}
	}
	saw := "no serviceSettings"
	switch {
	case len(local) > 0:
		saw = fmt.Sprintf("cluster-local hosts %v, none matches %s", local, w.e.Host)
	case len(w.st.mesh.ServiceSettings) > 0:
		saw = fmt.Sprintf("%d serviceSettings entries, none clusterLocal", len(w.st.mesh.ServiceSettings))
	}
	var others []string
	for shard := range w.st.shards[w.e.Host][w.svcNamespace()].Shards {
		if shard != "Kubernetes/"+w.client.Name {
			others = append(others, shard)
		}
	}
	sort.Strings(others)
	if len(others) > 0 {
		saw += fmt.Sprintf("; istiod holds shards %v of it", others)
	}
	return w.broken(Link{Class: ClassMeshConfig, Check: w.e.Host + " is cluster-local", Object: object,
		Field: "data.mesh serviceSettings[].settings.clusterLocal", Saw: saw, Evidence: ev + ", /debug/endpointShardz",
		Fix: fmt.Sprintf("add %s to the hosts of a serviceSettings entry with settings.clusterLocal: true (on the istio ConfigMap of %s)", w.e.Host, w.serving.Name)}), nil
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
