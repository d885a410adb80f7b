package main_test

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/pki"
)

// TestIntegrationExplainFaultCorpus is the fault corpus of issue 23: on a real multi-network local lab
// (real istiods), each fault is applied as a user would (writes to the API servers, the istio ConfigMap
// for mesh config), `mclab explain` must exit 1 and name the object and field that break the chain,
// then the fault is undone and explain exits 0 again. Faults of every class (remote access, registry,
// mesh config, visibility, networks, traffic policy, identity), several not in the training catalogue.
// The healthy lab explains with no broken link, and bad input exits 2 naming what the lab has.
func TestIntegrationExplainFaultCorpus(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	if _, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "local"); code != 0 {
		t.Fatalf("up: %s", stderr)
	}
	kcPath, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "multi-network")
	kc := strings.TrimSpace(kcPath)
	c1, c2 := client(t, kc, "multi-network-c1"), client(t, kc, "multi-network-c2")
	d1, d2 := dynamicClient(t, kc, "multi-network-c1"), dynamicClient(t, kc, "multi-network-c2")
	ctx := context.Background()

	explain := func(args ...string) (string, int) {
		out, stderr, code := mclab(t, bin, stateDir, append([]string{"explain", "--name", "multi-network"}, args...)...)
		return out + stderr, code
	}
	// c1 -> c2 crosses networks: every link class is on that path.
	path := []string{"--from", "c1/sample", "--to", "helloworld.sample:5000", "--source", "c2", "--mtls"}
	if out, code := explain(path...); code != 0 || !strings.Contains(out, "no link is broken as far as istiod's state shows") {
		t.Fatalf("healthy lab: exit %d\n%s", code, out)
	}
	for _, bad := range []struct{ args []string }{
		{[]string{"--from", "c9", "--to", "helloworld.sample"}},
		{[]string{"--from", "c1/sample/no-such-pod", "--to", "helloworld.sample"}},
		{[]string{"--from", "c1", "--to", "nosuch.sample"}},
	} {
		if out, code := explain(bad.args...); code != 2 || !strings.Contains(out, "c1") {
			t.Errorf("explain %v: exit %d, want 2 naming what the lab has\n%s", bad.args, code, out)
		}
	}

	type undo func()
	faults := []struct {
		name, class string
		apply       func(t *testing.T) undo
		args        []string // default: path
		want        []string // in explain's output: the object and the field
	}{
		{"remote secret deleted", "remote access", func(t *testing.T) undo {
			return deleteAndRestore(t, c1, "istio-system", "istio-remote-secret-c2")
		}, nil, []string{"✗ remote access", "c1 Secret istio-system/istio-remote-secret-c2", "absent"}},
		{"remote secret's label removed", "remote access", func(t *testing.T) undo {
			return editSecret(t, c1, "istio-remote-secret-c2", func(s *corev1.Secret) { delete(s.Labels, "istio/multiCluster") })
		}, nil, []string{"✗ remote access", "c1 Secret istio-system/istio-remote-secret-c2 metadata.labels[istio/multiCluster]"}},
		{"remote secret's data key is not the cluster's name", "remote access", func(t *testing.T) undo {
			return editSecret(t, c1, "istio-remote-secret-c2", func(s *corev1.Secret) { s.Data["cluster2"] = s.Data["c2"]; delete(s.Data, "c2") })
		}, nil, []string{"✗ remote access", "c1 Secret istio-system/istio-remote-secret-c2 data (keys)", "cluster2"}},
		{"remote secret points at a dead server", "remote access", func(t *testing.T) undo {
			return editSecret(t, c1, "istio-remote-secret-c2", func(s *corev1.Secret) {
				cfg, err := clientcmd.Load(s.Data["c2"])
				must(t, err)
				for _, c := range cfg.Clusters {
					c.Server = "https://127.0.0.1:1"
				}
				s.Data["c2"], err = clientcmd.Write(*cfg)
				must(t, err)
			})
		}, nil, []string{"✗ remote access", "clusters[].cluster.server", "https://127.0.0.1:1"}},
		{"istio-reader's ClusterRoleBinding deleted in c2", "remote access", func(t *testing.T) undo {
			crb, err := c2.RbacV1().ClusterRoleBindings().Get(ctx, "istio-reader-clusterrole-istio-system", metav1.GetOptions{})
			must(t, err)
			must(t, c2.RbacV1().ClusterRoleBindings().Delete(ctx, crb.Name, metav1.DeleteOptions{}))
			return func() {
				_, err := c2.RbacV1().ClusterRoleBindings().Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: crb.Name, Labels: crb.Labels}, RoleRef: crb.RoleRef, Subjects: crb.Subjects}, metav1.CreateOptions{})
				must(t, err)
			}
		}, nil, []string{"✗ remote access", "c2 ClusterRoleBinding of system:serviceaccount:istio-system:istio-reader-service-account list"}},
		{"helloworld's Service deleted in c2", "registry", func(t *testing.T) undo {
			return deleteServiceAndRestore(t, c2, "sample", "helloworld")
		}, nil, []string{"✗ registry", "c2 Service sample/helloworld", "absent"}},
		{"helloworld's selector in c2 selects nothing", "registry", func(t *testing.T) undo {
			return editService(t, c2, "sample", "helloworld", func(s *corev1.Service) { s.Spec.Selector = map[string]string{"app": "helloworld-typo"} })
		}, nil, []string{"✗ registry", "c2 Service sample/helloworld spec.selector", "helloworld-typo"}},
		{"helloworld's port renamed in c2 (IST0170)", "registry", func(t *testing.T) undo {
			return editService(t, c2, "sample", "helloworld", func(s *corev1.Service) { s.Spec.Ports[0].Name = "http2" })
		}, nil, []string{"✗ registry", "c2 Service sample/helloworld spec.ports", "http2/5000"}},
		{"helloworld made cluster-local in c1's mesh config", "mesh config", func(t *testing.T) undo {
			return editMeshConfigUndo(t, c1, func(m string) string {
				return strings.Replace(m, "- curl.sample.svc.cluster.local", "- curl.sample.svc.cluster.local\n  - helloworld.sample.svc.cluster.local", 1)
			})
		}, nil, []string{"✗ mesh config", "c1 ConfigMap istio-system/istio data.mesh serviceSettings[0].settings.clusterLocal"}},
		{"services exported only to their own namespace by default", "mesh config", func(t *testing.T) undo {
			return editMeshConfigUndo(t, c1, func(m string) string { return m + "\ndefaultServiceExportTo: [\".\"]\n" })
		}, []string{"--from", "c1/default", "--to", "helloworld.sample", "--source", "c2"}, []string{"✗ mesh config", "c1 ConfigMap istio-system/istio data.mesh defaultServiceExportTo", "[.]"}},
		// The client's own cluster's definition of the Service is what its istiod exports (an annotation on
		// c2's copy changes nothing for a client in c1: seen in registryz).
		{"helloworld in c1 exported only to istio-system", "visibility", func(t *testing.T) undo {
			return editService(t, c1, "sample", "helloworld", func(s *corev1.Service) {
				if s.Annotations == nil {
					s.Annotations = map[string]string{}
				}
				s.Annotations["networking.istio.io/exportTo"] = "istio-system"
			})
		}, nil, []string{"✗ visibility", "c1 Service sample/helloworld metadata.annotations[networking.istio.io/exportTo]", "istio-system"}},
		{"a Sidecar in sample limits egress to istio-system", "visibility", func(t *testing.T) undo {
			return createIstio(t, d1, "networking.istio.io", "sidecars", "sample", "limit-egress", map[string]any{"egress": []any{map[string]any{"hosts": []any{"istio-system/*"}}}})
		}, nil, []string{"✗ visibility", "c1 Sidecar sample/limit-egress spec.egress[].hosts", "istio-system/*"}},
		{"the root namespace's Sidecar limits egress", "visibility", func(t *testing.T) undo {
			return createIstio(t, d1, "networking.istio.io", "sidecars", "istio-system", "default", map[string]any{"egress": []any{map[string]any{"hosts": []any{"./*", "istio-system/*"}}}})
		}, nil, []string{"✗ visibility", "c1 Sidecar istio-system/default spec.egress[].hosts"}},
		{"east-west gateway Service lost its network label", "networks", func(t *testing.T) undo {
			return editService(t, c2, "istio-system", "istio-eastwestgateway", func(s *corev1.Service) { delete(s.Labels, "topology.istio.io/network") })
		}, nil, []string{"✗ networks", "c2 Service istio-system/istio-eastwestgateway metadata.labels[topology.istio.io/network]"}},
		{"east-west gateway Service without port 15443", "networks", func(t *testing.T) undo {
			return editService(t, c2, "istio-system", "istio-eastwestgateway", func(s *corev1.Service) {
				var kept []corev1.ServicePort
				for _, p := range s.Spec.Ports {
					if p.Port != 15443 {
						kept = append(kept, p)
					}
				}
				s.Spec.Ports = kept
			})
		}, nil, []string{"✗ networks", "c2 Service istio-system/istio-eastwestgateway spec.ports", "no 15443"}},
		{"east-west gateway without an address", "networks", func(t *testing.T) undo {
			svc, err := c2.CoreV1().Services("istio-system").Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
			must(t, err)
			ingress := svc.Status.LoadBalancer.Ingress
			svc.Status.LoadBalancer.Ingress = nil
			_, err = c2.CoreV1().Services("istio-system").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
			must(t, err)
			return func() {
				svc, err := c2.CoreV1().Services("istio-system").Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
				must(t, err)
				svc.Status.LoadBalancer.Ingress = ingress
				_, err = c2.CoreV1().Services("istio-system").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
				must(t, err)
			}
		}, nil, []string{"✗ networks", "c2 Service istio-system/istio-eastwestgateway status.loadBalancer.ingress"}},
		{"cross-network Gateway deleted in c2", "networks", func(t *testing.T) undo {
			return deleteIstioAndRestore(t, d2, "networking.istio.io", "gateways", "istio-system", "cross-network-gateway")
		}, nil, []string{"✗ networks", "c2 Gateway istio-system/cross-network-gateway spec.servers[].tls.mode"}},
		// (istio-system's network label is for pods without one: injected pods keep theirs, so istiod's
		// state does not change when it goes; verify's network-label check judges that one.)
		{"c2's helloworld pod labelled with network1", "networks", func(t *testing.T) undo {
			pods, err := c2.CoreV1().Pods("sample").List(ctx, metav1.ListOptions{LabelSelector: "app=helloworld"})
			must(t, err)
			if len(pods.Items) == 0 {
				t.Fatal("no helloworld pod in c2")
			}
			name := pods.Items[0].Name
			setLabel := func(v string) {
				p, err := c2.CoreV1().Pods("sample").Get(ctx, name, metav1.GetOptions{})
				must(t, err)
				p.Labels["topology.istio.io/network"] = v
				_, err = c2.CoreV1().Pods("sample").Update(ctx, p, metav1.UpdateOptions{})
				must(t, err)
			}
			setLabel("network1")
			return func() { setLabel("network2") }
		}, nil, []string{"✗ networks", "c2 Pod sample/helloworld-", "metadata.labels[topology.istio.io/network]", `on "network1"`}},
		{"a DestinationRule turns client TLS off", "traffic policy", func(t *testing.T) undo {
			return createIstio(t, d1, "networking.istio.io", "destinationrules", "sample", "helloworld-plain", map[string]any{"host": "helloworld", "trafficPolicy": map[string]any{"tls": map[string]any{"mode": "DISABLE"}}})
		}, nil, []string{"✗ traffic policy", "c1 DestinationRule sample/helloworld-plain spec.trafficPolicy.tls.mode", "DISABLE"}},
		{"a PeerAuthentication disables mTLS for helloworld in c2", "traffic policy", func(t *testing.T) undo {
			return createIstio(t, d2, "security.istio.io", "peerauthentications", "sample", "helloworld-off", map[string]any{"selector": map[string]any{"matchLabels": map[string]any{"app": "helloworld"}}, "mtls": map[string]any{"mode": "DISABLE"}})
		}, nil, []string{"✗ traffic policy", "c2 PeerAuthentication sample/helloworld-off spec.mtls.mode", "DISABLE"}},
		{"c2's cacerts from another root", "identity", func(t *testing.T) undo {
			root, err := pki.NewRoot("rogue", 0)
			must(t, err)
			inter, err := pki.NewIntermediate(root, "c2", 0)
			must(t, err)
			return editSecret(t, c2, "cacerts", func(s *corev1.Secret) { s.Data = pki.NewCACerts(inter, root).Files() })
		}, nil, []string{"✗ identity", "c2 Secret istio-system/cacerts data[root-cert.pem]"}},
		{"c2's istiod runs another trust domain", "identity", func(t *testing.T) undo {
			return editMeshConfigUndo(t, c2, func(m string) string {
				return strings.Replace(m, "trustDomain: cluster.local", "trustDomain: other.example", 1)
			})
		}, nil, []string{"✗ identity", "c2 ConfigMap istio-system/istio data.mesh trustDomain", "other.example"}},
	}
	classes := map[string]int{}
	for _, f := range faults {
		classes[f.class]++
	}
	if len(faults) < 20 || len(classes) != 7 {
		t.Fatalf("the corpus must hold at least 20 faults across the 7 classes: %d faults, classes %v", len(faults), classes)
	}
	for class, n := range classes {
		if n < 2 {
			t.Errorf("class %s has %d faults, want at least 2", class, n)
		}
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			args := f.args
			if args == nil {
				args = path
			}
			u := f.apply(t)
			var out string
			var code int
			ok := func() bool {
				for _, w := range f.want {
					if !strings.Contains(out, w) {
						return false
					}
				}
				return code == 1
			}
			// istiod reacts within a second or two (a dead server takes its informer's timeout).
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				if out, code = explain(args...); ok() || time.Now().After(deadline) {
					break
				}
			}
			if !ok() {
				t.Errorf("exit %d, want 1 naming %q:\n%s", code, f.want, out)
			}
			u()
			for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(500 * time.Millisecond) {
				if out, code = explain(args...); code == 0 || time.Now().After(deadline) {
					break
				}
			}
			if code != 0 {
				t.Fatalf("after the repair: exit %d, want 0:\n%s", code, out)
			}
		})
	}
}

func editSecret(t testing.TB, cs kubernetes.Interface, name string, edit func(*corev1.Secret)) func() {
	t.Helper()
	ctx := context.Background()
	s, err := cs.CoreV1().Secrets("istio-system").Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	pre := s.DeepCopy()
	edit(s)
	_, err = cs.CoreV1().Secrets("istio-system").Update(ctx, s, metav1.UpdateOptions{})
	must(t, err)
	return func() {
		cur, err := cs.CoreV1().Secrets("istio-system").Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		pre.ResourceVersion = cur.ResourceVersion
		_, err = cs.CoreV1().Secrets("istio-system").Update(ctx, pre, metav1.UpdateOptions{})
		must(t, err)
	}
}

func deleteAndRestore(t *testing.T, cs kubernetes.Interface, ns, name string) func() {
	t.Helper()
	ctx := context.Background()
	s, err := cs.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	must(t, cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{}))
	return func() {
		s.ResourceVersion, s.UID = "", ""
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
		must(t, err)
	}
}

func editService(t *testing.T, cs kubernetes.Interface, ns, name string, edit func(*corev1.Service)) func() {
	t.Helper()
	ctx := context.Background()
	s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	pre := s.DeepCopy()
	edit(s)
	_, err = cs.CoreV1().Services(ns).Update(ctx, s, metav1.UpdateOptions{})
	must(t, err)
	return func() {
		cur, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
		must(t, err)
		pre.ResourceVersion = cur.ResourceVersion
		pre.Status = cur.Status
		_, err = cs.CoreV1().Services(ns).Update(ctx, pre, metav1.UpdateOptions{})
		must(t, err)
	}
}

func deleteServiceAndRestore(t *testing.T, cs kubernetes.Interface, ns, name string) func() {
	t.Helper()
	ctx := context.Background()
	s, err := cs.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	must(t, cs.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{}))
	return func() {
		s.ResourceVersion, s.UID = "", ""
		_, err := cs.CoreV1().Services(ns).Create(ctx, s, metav1.CreateOptions{})
		must(t, err)
	}
}

func editMeshConfigUndo(t *testing.T, cs kubernetes.Interface, edit func(string) string) func() {
	t.Helper()
	cm, err := cs.CoreV1().ConfigMaps("istio-system").Get(context.Background(), "istio", metav1.GetOptions{})
	must(t, err)
	was := cm.Data["mesh"]
	editMeshConfig(t, cs, func(m string) string {
		got := edit(m)
		if got == m {
			t.Fatalf("the edit changed nothing in the mesh config:\n%s", m)
		}
		return got
	})
	return func() { editMeshConfig(t, cs, func(string) string { return was }) }
}

func createIstio(t testing.TB, d dynamic.Interface, group, resource, ns, name string, spec map[string]any) func() {
	t.Helper()
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
	kinds := map[string]string{"sidecars": "Sidecar", "destinationrules": "DestinationRule", "peerauthentications": "PeerAuthentication", "gateways": "Gateway"}
	obj := &unstructured.Unstructured{Object: map[string]any{"apiVersion": group + "/v1", "kind": kinds[resource], "metadata": map[string]any{"name": name, "namespace": ns}, "spec": spec}}
	_, err := d.Resource(gvr).Namespace(ns).Create(context.Background(), obj, metav1.CreateOptions{})
	must(t, err)
	return func() {
		must(t, d.Resource(gvr).Namespace(ns).Delete(context.Background(), name, metav1.DeleteOptions{}))
	}
}

func deleteIstioAndRestore(t *testing.T, d dynamic.Interface, group, resource, ns, name string) func() {
	t.Helper()
	ctx := context.Background()
	gvr := schema.GroupVersionResource{Group: group, Version: "v1", Resource: resource}
	obj, err := d.Resource(gvr).Namespace(ns).Get(ctx, name, metav1.GetOptions{})
	must(t, err)
	must(t, d.Resource(gvr).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{}))
	return func() {
		obj.SetResourceVersion("")
		obj.SetUID("")
		_, err := d.Resource(gvr).Namespace(ns).Create(ctx, obj, metav1.CreateOptions{})
		must(t, err)
	}
}
