package diagnose

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// fixtureDebug serves istiod c1's debug endpoints as recorded from a real multi-network local lab
// (fixtures/istiod-debug/multi-network-c1, 2026-12-07, the pinned Istio), with edit applied to each body.
func fixtureDebug(t testing.TB, edit func(path string, body []byte) []byte) Debug {
	return func(_ context.Context, primary, path string) ([]byte, error) {
		body, err := os.ReadFile(filepath.Join("..", "..", "fixtures", "istiod-debug", "multi-network-c1", strings.TrimPrefix(path, "/debug/")+".json"))
		if err != nil {
			t.Fatalf("%s %s: %v", primary, path, err)
		}
		if edit != nil {
			body = edit(path, body)
		}
		return body, nil
	}
}

// healthyEnv is the lab behind the fixtures: c1 (network1) and c2 (network2), multi-primary, with the
// objects the chain c1 -> c2 reads, and SubjectAccessReviews that allow istio-reader.
func healthyEnv(t testing.TB, debug Debug, denied string) Env {
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Default()
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"system:serviceaccount:istio-system:istio-reader-service-account"}`))
	kc := "apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster: {server: 'https://127.0.0.1:20050'}\nusers:\n- name: c2\n  user: {token: eyJhbGciOiJSUzI1NiJ9." + claims + ".c2lnbmF0dXJl}\ncontexts:\n- name: c2\n  context: {cluster: c2, user: c2}\ncurrent-context: c2\n"
	svc := func(ns, name string, labels map[string]string, ports ...corev1.ServicePort) *corev1.Service {
		return &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, Labels: labels}, Spec: corev1.ServiceSpec{Ports: ports, Selector: map[string]string{"app": name}}}
	}
	http := corev1.ServicePort{Name: "http", Port: 5000}
	ew := svc("istio-system", "istio-eastwestgateway", map[string]string{"topology.istio.io/network": "network2"}, corev1.ServicePort{Name: "tls", Port: 15443})
	ew.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.13"}}
	c1 := fake.NewSimpleClientset(
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-remote-secret-c2", Labels: map[string]string{"istio/multiCluster": "true"}}, Data: map[string][]byte{"c2": []byte(kc)}},
		svc("sample", "helloworld", nil, http))
	c2 := fake.NewSimpleClientset(svc("sample", "helloworld", nil, http), ew,
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "istio-system", Labels: map[string]string{"topology.istio.io/network": "network2"}}})
	c2.PrependReactor("create", "subjectaccessreviews", func(a k8stesting.Action) (bool, runtime.Object, error) {
		sar := a.(k8stesting.CreateAction).GetObject().(*authzv1.SubjectAccessReview)
		sar.Status.Allowed = sar.Spec.ResourceAttributes.Resource != denied
		return true, sar, nil
	})
	gw := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": map[string]any{"name": "cross-network-gateway", "namespace": "istio-system"},
		"spec": map[string]any{"servers": []any{map[string]any{"port": map[string]any{"number": int64(15443)}, "tls": map[string]any{"mode": "AUTO_PASSTHROUGH"}}}}}}
	gvr := map[schema.GroupVersionResource]string{{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}: "GatewayList"}
	d2 := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvr)
	gwGVR := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
	if _, err := d2.Resource(gwGVR).Namespace("istio-system").Create(context.Background(), gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return Env{Scenario: s, Debug: debug, Clients: map[string]*kube.Client{
		"c1": {Name: "c1", Kube: c1, Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), gvr)},
		"c2": {Name: "c2", Kube: c2, Dynamic: d2},
	}}
}

var c1ToC2 = Expectation{Client: "c1", Namespace: "sample", Host: "helloworld.sample.svc.cluster.local", Port: 5000, From: "c2"}

func TestHealthyChainFromRecordedIstiod(t *testing.T) {
	c, err := Explain(context.Background(), healthyEnv(t, fixtureDebug(t, nil), ""), c1ToC2)
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Broken(); b != nil {
		t.Fatalf("healthy lab: broken %+v", *b)
	}
	if !strings.HasPrefix(c.Cause(), "no link is broken as far as istiod's state shows") {
		t.Errorf("cause: %s", c.Cause())
	}
	classes := map[string]bool{}
	for _, l := range c.Links {
		classes[l.Class] = true
	}
	for _, want := range []string{ClassRemoteAccess, ClassRegistry, ClassMeshConfig, ClassVisibility, ClassNetworks, ClassTrafficPolicy} {
		if !classes[want] {
			t.Errorf("the chain has no %s link: %+v", want, c.Links)
		}
	}
}

// Seeded faults in istiod's recorded state and in the API objects: the first broken link names the
// object and field.
func TestSeededFaultsNameTheObject(t *testing.T) {
	withConfig := func(extra string) func(string, []byte) []byte {
		return func(path string, body []byte) []byte {
			if path != "/debug/configz" {
				return body
			}
			return []byte(strings.Replace(string(body), "[", "["+extra+",", 1))
		}
	}
	for _, tc := range []struct {
		name   string
		edit   func(string, []byte) []byte
		denied string
		want   string
	}{
		{"c2 not in clusterz", func(path string, body []byte) []byte {
			if path == "/debug/clusterz" {
				return []byte(`[{"id":"c1","secretName":"","syncStatus":"synced"}]`)
			}
			return body
		}, "", "remote access: c1 Secret istio-system/istio-remote-secret-c2 data.c2 = present and labelled, but istiod lists [c1], not c2"},
		{"c2 timed out", func(path string, body []byte) []byte {
			return []byte(strings.Replace(string(body), `"syncStatus":"synced"}]`, `"syncStatus":"timeout"}]`, 1))
		}, "", "clusters[].cluster.server = https://127.0.0.1:20050; istiod's sync status: timeout"},
		{"reader may not list endpointslices", nil, "endpointslices", "c2 ClusterRoleBinding of system:serviceaccount:istio-system:istio-reader-service-account list endpointslices.discovery.k8s.io = denied"},
		{"a Sidecar limits egress", withConfig(`{"kind":"Sidecar","metadata":{"name":"limit","namespace":"sample"},"spec":{"egress":[{"hosts":["istio-system/*"]}]}}`), "",
			"visibility: c1 Sidecar sample/limit spec.egress[].hosts = [istio-system/*]"},
		{"a DestinationRule's tls block without a mode (DISABLE, as configz prints it)", withConfig(`{"kind":"DestinationRule","metadata":{"name":"plain","namespace":"sample"},"spec":{"host":"helloworld.sample.svc.cluster.local","trafficPolicy":{"tls":{}}}}`), "",
			"traffic policy: c1 DestinationRule sample/plain spec.trafficPolicy.tls.mode = DISABLE"},
		{"no gateway for network2", func(path string, body []byte) []byte {
			if path == "/debug/networkz" {
				return []byte(`[{"Network":"network1","Cluster":"c1","Addr":"198.18.0.9","Port":15443}]`)
			}
			return body
		}, "", "no gateway for network2 (gateways: network1 at 198.18.0.9:15443)"},
		{"helloworld cluster-local", func(path string, body []byte) []byte {
			return []byte(strings.Replace(string(body), `"hosts":["curl.sample.svc.cluster.local"]`, `"hosts":["*.sample.svc.cluster.local"]`, 1))
		}, "", "mesh config: c1 ConfigMap istio-system/istio data.mesh serviceSettings[0].settings.clusterLocal (hosts [*.sample.svc.cluster.local]) = true"},
		{"no shard from c2", func(path string, body []byte) []byte {
			if path != "/debug/endpointShardz" {
				return body
			}
			var m map[string]map[string]map[string]map[string]json.RawMessage
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			delete(m["helloworld.sample.svc.cluster.local"]["sample"]["Shards"], "Kubernetes/c2")
			out, _ := json.Marshal(m)
			return out
		}, "", "registry: c2 Service sample/helloworld spec.selector = map[app:helloworld] selects no pod"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Explain(context.Background(), healthyEnv(t, fixtureDebug(t, tc.edit), tc.denied), c1ToC2)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Cause(), tc.want) {
				t.Errorf("cause:\n  %s\nwant it to contain:\n  %s", c.Cause(), tc.want)
			}
		})
	}
}

// The inverse expectation (a cluster-local host stays in the client's cluster): holds on the recorded
// mesh config, which marks curl cluster-local; broken, naming the ConfigMap's field and the shards istiod
// holds, when the setting is gone or covers another host.
func TestClusterLocalChain(t *testing.T) {
	local := Expectation{Client: "c1", Namespace: "sample", Host: "curl.sample.svc.cluster.local", From: "c1", Local: true}
	c, err := Explain(context.Background(), healthyEnv(t, fixtureDebug(t, nil), ""), local)
	if err != nil {
		t.Fatal(err)
	}
	if b := c.Broken(); b != nil || len(c.Links) != 1 || c.Links[0].Saw != "serviceSettings[0] hosts [curl.sample.svc.cluster.local] clusterLocal true" {
		t.Fatalf("healthy: %+v", c.Links)
	}
	if got := local.String(); got != "a client in c1/sample gets only c1's endpoints of curl.sample.svc.cluster.local" {
		t.Errorf("String: %s", got)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"serviceSettings dropped", `"serviceSettings":[{"settings":{"clusterLocal":true},"hosts":["curl.sample.svc.cluster.local"]}]`, `"serviceSettings":[]`,
			"mesh config: c1 ConfigMap istio-system/istio data.mesh serviceSettings[].settings.clusterLocal = no serviceSettings; istiod holds shards [Kubernetes/c2] of it"},
		{"another host is cluster-local", `"hosts":["curl.sample.svc.cluster.local"]`, `"hosts":["other.sample.svc.cluster.local"]`,
			"= cluster-local hosts [other.sample.svc.cluster.local], none matches curl.sample.svc.cluster.local"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			edit := func(path string, body []byte) []byte {
				if path != "/debug/mesh" {
					return body
				}
				if !strings.Contains(string(body), tc.from) {
					t.Fatalf("the recorded mesh config lacks %s", tc.from)
				}
				return []byte(strings.Replace(string(body), tc.from, tc.to, 1))
			}
			c, err := Explain(context.Background(), healthyEnv(t, fixtureDebug(t, edit), ""), local)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Cause(), tc.want) {
				t.Errorf("cause:\n  %s\nwant it to contain:\n  %s", c.Cause(), tc.want)
			}
		})
	}
	if _, err := Explain(context.Background(), healthyEnv(t, fixtureDebug(t, nil), ""), Expectation{Client: "c1", From: "c2", Host: local.Host, Local: true}); err == nil {
		t.Error("a cluster-local expectation of another cluster's endpoints must be refused")
	}
}

// federatedEnv is a federated lab (c1 in mesh1 exports httpbin, c2 in mesh2 imports it) over the
// recorded istiod state with configz edited by the test: c1's east-west gateway at 198.18.0.9 and its
// Gateway istio-system/federation-export passing gatewayHosts through.
func federatedEnv(t testing.TB, debug Debug, gatewayHosts ...any) Env {
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.Federated, 2)
	if err != nil {
		t.Fatal(err)
	}
	ew := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: "istio-system", Name: "istio-eastwestgateway"}}
	ew.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: "198.18.0.9"}}
	gw := &unstructured.Unstructured{Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "Gateway", "metadata": map[string]any{"name": "federation-export", "namespace": "istio-system"},
		"spec": map[string]any{"servers": []any{map[string]any{"port": map[string]any{"number": int64(15443)}, "tls": map[string]any{"mode": "AUTO_PASSTHROUGH"}, "hosts": gatewayHosts}}}}}
	gvr := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
	kinds := map[schema.GroupVersionResource]string{gvr: "GatewayList"}
	d1 := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds)
	if _, err := d1.Resource(gvr).Namespace("istio-system").Create(context.Background(), gw, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return Env{Scenario: s, Debug: debug, Clients: map[string]*kube.Client{
		"c1": {Name: "c1", Kube: fake.NewSimpleClientset(ew), Dynamic: d1},
		"c2": {Name: "c2", Kube: fake.NewSimpleClientset(), Dynamic: dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), kinds)},
	}}
}

// The federation chain: the importing istiod's ServiceEntry and WorkloadEntries (as lab/istio's
// federate applies them) and the exporting mesh's passthrough Gateway; each fault names its object.
func TestFederationChain(t *testing.T) {
	const httpbin = "httpbin.sample.svc.cluster.local"
	se := `{"kind":"ServiceEntry","metadata":{"name":"httpbin-from-mesh1","namespace":"sample"},"spec":{"hosts":["httpbin.sample.svc.cluster.local"],"location":"MESH_INTERNAL","resolution":"STATIC","workloadSelector":{"labels":{"app":"httpbin","mclab.dev/federated-from":"mesh1"}}}}`
	we := func(addr string, port int, tlsMode string) string {
		return fmt.Sprintf(`{"kind":"WorkloadEntry","metadata":{"name":"httpbin-mesh1-c1","namespace":"sample"},"spec":{"address":%q,"ports":{"http":%d},"labels":{"app":"httpbin","mclab.dev/federated-from":"mesh1","security.istio.io/tlsMode":%q}}}`, addr, port, tlsMode)
	}
	withConfig := func(extra ...string) Debug {
		return fixtureDebug(t, func(path string, body []byte) []byte {
			if path != "/debug/configz" || len(extra) == 0 {
				return body
			}
			return []byte(strings.Replace(string(body), "[", "["+strings.Join(extra, ",")+",", 1))
		})
	}
	imp := Expectation{Client: "c2", Namespace: "sample", Host: httpbin, From: "c1", Import: "mesh1"}
	if got := imp.String(); got != "a client in c2/sample gets httpbin.sample.svc.cluster.local, exported by mesh mesh1, through its gateways" {
		t.Errorf("String: %s", got)
	}
	for _, tc := range []struct {
		name    string
		debug   Debug
		gateway []any
		want    string
	}{
		{"healthy", withConfig(se, we("198.18.0.9", 15443, "istio")), []any{httpbin}, "no link is broken as far as istiod's state shows (2 links checked"},
		{"the ServiceEntry deleted", withConfig(we("198.18.0.9", 15443, "istio")), []any{httpbin},
			"visibility: c2 ServiceEntry sample/httpbin-from-mesh1 spec.hosts = absent: no ServiceEntry for httpbin.sample.svc.cluster.local"},
		{"the WorkloadEntry deleted", withConfig(se), []any{httpbin},
			"registry: c2 ServiceEntry sample/httpbin-from-mesh1 spec.workloadSelector.labels = map[app:httpbin mclab.dev/federated-from:mesh1] selects none of the WorkloadEntries in sample"},
		{"the WorkloadEntry at a pod IP", withConfig(se, we("10.244.0.7", 15443, "istio")), []any{httpbin},
			"networks: c2 WorkloadEntry sample/httpbin-mesh1-c1 spec.address = 10.244.0.7 (mesh mesh1's gateways: [198.18.0.9])"},
		{"the WorkloadEntry on the service port", withConfig(se, we("198.18.0.9", 8000, "istio")), []any{httpbin},
			"networks: c2 WorkloadEntry sample/httpbin-mesh1-c1 spec.ports[http] = 8000"},
		{"the WorkloadEntry without tlsMode istio", withConfig(se, we("198.18.0.9", 15443, "disabled")), []any{httpbin},
			`traffic policy: c2 WorkloadEntry sample/httpbin-mesh1-c1 spec.labels[security.istio.io/tlsMode] = "disabled"`},
		{"the export Gateway passes another host", withConfig(se, we("198.18.0.9", 15443, "istio")), []any{"helloworld.sample.svc.cluster.local"},
			"networks: c1 Gateway istio-system/federation-export spec.servers[].hosts (15443 AUTO_PASSTHROUGH) = lacks httpbin.sample.svc.cluster.local (federation-export:helloworld.sample.svc.cluster.local)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Explain(context.Background(), federatedEnv(t, tc.debug, tc.gateway...), imp)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(c.Cause(), tc.want) {
				t.Errorf("cause:\n  %s\nwant it to contain:\n  %s", c.Cause(), tc.want)
			}
		})
	}
}

// An istiod whose debug port does not answer is an infrastructure error naming it, never a cause.
func TestIstiodNotAnsweringIsInfrastructure(t *testing.T) {
	env := healthyEnv(t, HTTPDebug(func(string) (string, error) { return "127.0.0.1:1", nil }), "")
	_, err := Explain(context.Background(), env, c1ToC2)
	var ie *InfraError
	if err == nil || !strings.Contains(err.Error(), "istiod of c1 does not answer /debug/clusterz") || !asInfra(err, &ie) {
		t.Fatalf("want an InfraError naming istiod of c1, got %v", err)
	}
}

func asInfra(err error, target **InfraError) bool {
	ie, ok := err.(*InfraError)
	*target = ie
	return ok
}

// BenchmarkExplain is the cost of one diagnosis on the recorded state (verify runs it only for a failed
// expectation); the HTTP reads of a live istiod add what `mclab explain` shows.
func BenchmarkExplain(b *testing.B) {
	env := healthyEnv(b, fixtureDebug(b, nil), "")
	for b.Loop() {
		if _, err := Explain(context.Background(), env, c1ToC2); err != nil {
			b.Fatal(err)
		}
	}
}
