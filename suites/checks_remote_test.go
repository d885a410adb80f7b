package suites

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// remoteTarget is a primary-remote lab (c2 remote of c1) as the istiod chart and mclab leave it: c1's
// istiod behind Service istiod-lb (or its east-west gateway) at lbAddr, and c2's Service istiod with the
// EndpointSlice the chart renders from global.remotePilotAddress (templates/remote-istiod-endpointslices.yaml,
// as read from a kind lab here: endpoint 172.18.3.232, ports 15012 and 15017).
func remoteTarget(t *testing.T, exposure, lbAddr, remotePilot string, withLB bool) *Target {
	t.Helper()
	s := &scenario.Scenario{Name: "pr", Istio: scenario.Istio{Model: scenario.PrimaryRemote, ExposeIstiod: exposure},
		Provider: scenario.Provider{Name: scenario.ProviderKind},
		Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2", Role: scenario.Remote, Primary: "c1"}}}
	s.Default()
	if err := s.Validate("test"); err != nil {
		t.Fatal(err)
	}
	name := istio.IstiodLBName
	if exposure == scenario.ExposeEastWestGateway {
		name = istio.EastWestGatewayName
	}
	var primary []runtime.Object
	if withLB {
		svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system"}, Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer}}
		if lbAddr != "" {
			svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: lbAddr}}
		}
		primary = append(primary, svc)
	}
	port := func(n string, p int32) discoveryv1.EndpointPort { return discoveryv1.EndpointPort{Name: &n, Port: &p} }
	remote := []runtime.Object{
		&corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system"}},
		&discoveryv1.EndpointSlice{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system", Labels: map[string]string{"kubernetes.io/service-name": "istiod"}},
			AddressType: discoveryv1.AddressTypeIPv4, Endpoints: []discoveryv1.Endpoint{{Addresses: []string{remotePilot}}},
			Ports: []discoveryv1.EndpointPort{port("tcp-istiod", 15012), port("tcp-webhook", 15017)}},
	}
	return &Target{Scenario: s, Clients: map[string]*kube.Client{
		"c1": {Name: "c1", Kube: fake.NewClientset(primary...)},
		"c2": {Name: "c2", Kube: fake.NewClientset(remote...)},
	}}
}

func TestRemoteIstiodPath(t *testing.T) {
	for _, tc := range []struct {
		name                string
		exposure, lb, pilot string
		withLB              bool
		want                string // "" for healthy
	}{
		{"istiod-lb and the remote's endpoint agree", scenario.ExposeLoadBalancer, "172.18.3.232", "172.18.3.232", true, ""},
		{"east-west gateway and the remote's endpoint agree", scenario.ExposeEastWestGateway, "172.18.3.240", "172.18.3.240", true, ""},
		{"istiod-lb deleted", scenario.ExposeLoadBalancer, "", "172.18.3.232", false, "remote c2 reaches istiod of c1 through c1's Service istiod-lb, which does not exist"},
		{"istiod-lb pending", scenario.ExposeLoadBalancer, "", "172.18.3.232", true, "through its Service istiod-lb, which has no LoadBalancer address"},
		{"stale remotePilotAddress", scenario.ExposeLoadBalancer, "172.18.3.233", "172.18.3.232", true, "remote c2's Service istiod points at [172.18.3.232], but c1's Service istiod-lb is at 172.18.3.233 (global.remotePilotAddress is stale"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := remoteTarget(t, tc.exposure, tc.lb, tc.pilot, tc.withLB)
			at, finding, err := tg.remoteIstiodPath(context.Background(), *tg.Scenario.Cluster("c2"))
			if err != nil {
				t.Fatal(err)
			}
			if tc.want == "" {
				if finding != "" || at != tc.pilot {
					t.Errorf("healthy path: at %q, finding %q", at, finding)
				}
				if why := tg.whyNoIstiod(context.Background(), *tg.Scenario.Cluster("c2")); !strings.Contains(why, "which does not answer on 15012 from c2") {
					t.Errorf("a consistent path that fails is the connection: %s", why)
				}
				return
			}
			if !strings.Contains(finding, tc.want) {
				t.Errorf("finding %q lacks %q", finding, tc.want)
			}
		})
	}
}
