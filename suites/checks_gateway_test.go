package suites

import (
	"context"
	"fmt"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// gatewayExec plays Envoy's admin API in the east-west gateways and curl in the clients: each round of
// requests from a client adds to the gateways that the network "routes" through.
type gatewayExec struct {
	conns    map[string]int  // per gateway cluster
	through  map[string]bool // gateways that requests really enter
	listener bool            // the 15443 listener exists
	calls    []string
}

func (g *gatewayExec) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	g.calls = append(g.calls, fmt.Sprintf("%s %s/%s[%s] %s", cluster, ns, pod, container, strings.Join(cmd, " ")))
	switch container {
	case "istio-proxy":
		if !g.listener {
			return "cluster_manager.active_clusters: 40\n", "", nil
		}
		return fmt.Sprintf("%s: %d\n", gatewayStat, g.conns[cluster]), "", nil
	case "curl":
		for c := range g.through {
			g.conns[c] += 5
		}
		return hello("v1", "v2"), "", nil
	}
	return "", "no such container", fmt.Errorf("exit 1")
}

func gatewayTarget(t *testing.T, ex *gatewayExec) *Target {
	t.Helper()
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	tg := &Target{Scenario: s, Clients: map[string]*kube.Client{}, Exec: ex}
	for _, c := range s.Clusters {
		curl := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "curl"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}}
		gw := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "istio-eastwestgateway-" + c.Name, Namespace: "istio-system", Labels: map[string]string{"istio": "eastwestgateway"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning}}
		tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(curl, gw)}
	}
	return tg
}

func TestCheckGatewayTraffic(t *testing.T) {
	for _, tc := range []struct {
		name string
		ex   *gatewayExec
		want []string
	}{
		{"requests cross through both gateways", &gatewayExec{conns: map[string]int{"c1": 3, "c2": 7}, through: map[string]bool{"c1": true, "c2": true}, listener: true}, nil},
		{"sidecars bypass the gateways", &gatewayExec{conns: map[string]int{"c1": 3, "c2": 7}, through: map[string]bool{}, listener: true},
			[]string{"20 requests from c1 entered no other network's east-west gateway on 15443 (c2 unchanged)", "check the network labels and meshNetworks"}},
		{"no 15443 listener", &gatewayExec{conns: map[string]int{}, through: map[string]bool{}, listener: false},
			[]string{"c2's east-west gateway has no 15443 listener: apply Istio's expose-services"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckGatewayTraffic(context.Background(), gatewayTarget(t, tc.ex))
			if v.Inconclusive != nil {
				t.Fatal(v.Inconclusive)
			}
			got := strings.Join(v.Failures, "\n")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("healthy gateways failed:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("failures lack %q:\n%s", w, got)
				}
			}
			if !strings.Contains(strings.Join(tc.ex.calls, "\n"), "c2 istio-system/istio-eastwestgateway-c2[istio-proxy] pilot-agent request GET stats?filter=listener.0.0.0.0_15443.downstream_cx_total") {
				t.Errorf("stats not read through the gateway's pilot-agent: %v", tc.ex.calls)
			}
		})
	}
}
