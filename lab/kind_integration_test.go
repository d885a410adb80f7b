package lab_test

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/provider/kind/kindtest"
	"mclab.dev/mclab/lab/scenario"
)

// TestIntegrationKindUpOnFakeDocker runs a whole kind `up` (clusters only) where Docker is the fake
// runtime and each "kind cluster" is a real API server of a local lab (kwok nodes stand in for the
// kind nodes): preflight, create, kubeconfigs, routes, then MetalLB's real manifest and each cluster's
// pool applied to real API servers and its controller waited for. `down` deletes exactly the lab's
// kind clusters.
func TestIntegrationKindUpOnFakeDocker(t *testing.T) {
	labtest.SkipIfShort(t)
	host, out := labtest.Manager(t)
	host.SkipIstio = true
	hs, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	hs.Provider.Name = scenario.ProviderLocal
	if err := host.Up(t.Context(), hs, "nodes"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	_, hp, err := host.Open("nodes")
	if err != nil {
		t.Fatal(err)
	}
	s, _ := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
	s.Provider.Name = scenario.ProviderKind
	rt := &kindtest.Runtime{Kubeconfigs: map[string]string{}}
	for _, c := range s.Clusters {
		kc, err := hp.Kubeconfig(t.Context(), c.Name, provider.FromHost)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := clientcmd.Write(*kc)
		if err != nil {
			t.Fatal(err)
		}
		rt.Kubeconfigs[s.Name+"-"+c.Name] = string(raw)
	}
	// No container serves MetalLB's validating webhook on kwok nodes (a kubelet would run its
	// controller): drop its configuration once applied, as the pool apply retries past the webhook.
	for _, c := range s.Clusters {
		kc, _ := hp.Kubeconfig(t.Context(), c.Name, provider.FromHost)
		cfg, _ := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
		cs := kubernetes.NewForConfigOrDie(cfg)
		go func() {
			for t.Context().Err() == nil {
				_ = cs.AdmissionregistrationV1().ValidatingWebhookConfigurations().Delete(t.Context(), "metallb-webhook-configuration", metav1.DeleteOptions{})
				time.Sleep(500 * time.Millisecond)
			}
		}()
	}
	m, kout := labtest.Manager(t)
	m.SkipIstio, m.KindRuntime = true, rt
	if err := m.Up(t.Context(), s, s.Name); err != nil {
		t.Fatalf("kind up on the fake runtime: %v\n%s", err, kout)
	}
	order := []string{}
	for _, c := range rt.Calls() {
		for _, k := range []string{"docker version", "docker info", "create ", "docker inspect", "docker exec", "docker network inspect"} {
			if strings.HasPrefix(c, k) && (len(order) == 0 || order[len(order)-1] != k) {
				order = append(order, k)
			}
		}
	}
	if got := strings.Join(order, " | "); !strings.HasPrefix(got, "docker version | docker info | docker network inspect | create  | docker inspect | docker exec | docker network inspect") {
		t.Errorf("runtime calls out of the plan's order: %s", got)
	}
	if got := rt.CallsWithPrefix("docker exec"); len(got) != 4 {
		t.Errorf("single network, 2 clusters: want 4 routes, got %v", got)
	}
	// MetalLB's pools are in the real API servers, without overlap.
	var pools []string
	for _, c := range s.Clusters {
		kc, err := hp.Kubeconfig(t.Context(), c.Name, provider.FromHost)
		if err != nil {
			t.Fatal(err)
		}
		cfg, _ := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
		dyn := dynamic.NewForConfigOrDie(cfg)
		pool, err := dyn.Resource(schema.GroupVersionResource{Group: "metallb.io", Version: "v1beta1", Resource: "ipaddresspools"}).Namespace("metallb-system").Get(t.Context(), "default-pool", metav1.GetOptions{})
		if err != nil {
			t.Fatalf("%s: %v", c.Name, err)
		}
		addrs, _, _ := unstructured.NestedStringSlice(pool.Object, "spec", "addresses")
		if len(addrs) != 1 || !strings.HasPrefix(addrs[0], "172.18.") {
			t.Errorf("%s pool: %v", c.Name, addrs)
		}
		pools = append(pools, addrs...)
	}
	if len(pools) == 2 && pools[0] == pools[1] {
		t.Errorf("clusters share a pool: %v", pools)
	}
	st, err := m.Status(t.Context(), s.Name)
	if err != nil || !st.Ready() || len(st.Clusters[0].Components) != 1 || st.Clusters[0].Components[0].Address == "" {
		t.Errorf("status: %+v %v", st, err)
	}
	if _, err := m.Down(t.Context(), s.Name); err != nil {
		t.Fatal(err)
	}
	if got := rt.Clusters(); len(got) != 0 {
		t.Errorf("down left kind clusters: %v", got)
	}
}
