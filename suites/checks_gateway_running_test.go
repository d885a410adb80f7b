package suites

import (
	"context"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// pilotAgentWithoutEnvoy is the end of the east-west gateway's log on offline images (proxyv2 with
// pilot-agent and no Envoy), recorded on a kind lab here (kubectl logs --previous).
const pilotAgentWithoutEnvoy = `2026-11-26T03:53:14.639307Z	info	xdsproxy	Initializing with upstream address "istiod.istio-system.svc:15012" and cluster "c1"
2026-11-26T03:53:14.641958Z	info	Pilot SAN: [istiod.istio-system.svc]
2026-11-26T03:53:14.642265Z	info	sds	Starting SDS grpc server
2026-11-26T03:53:14.642427Z	error	failed to accept downstream gRPC connection grpc: the server has been stopped
Error: failed to initialize envoy agent: failed to generate bootstrap config: open ./var/lib/istio/envoy/envoy_bootstrap_tmpl.json: no such file or directory
2026-11-26T03:53:14.642865Z	error	failed to initialize envoy agent: failed to generate bootstrap config: open ./var/lib/istio/envoy/envoy_bootstrap_tmpl.json: no such file or directory
`

func TestErrorLine(t *testing.T) {
	if got := errorLine(pilotAgentWithoutEnvoy); got != "failed to initialize envoy agent: failed to generate bootstrap config: open ./var/lib/istio/envoy/envoy_bootstrap_tmpl.json: no such file or directory" {
		t.Errorf("errorLine: %q", got)
	}
	if got := errorLine("2026-11-26T03:53:14Z\tinfo\tall good\n"); got != "" {
		t.Errorf("no error: %q", got)
	}
}

// gatewayPod is an east-west gateway pod as the kubelet reports it: Ready, or crash-looping with the
// container status recorded on kind here (CrashLoopBackOff, 4 restarts).
func gatewayPod(name string, ready bool) *corev1.Pod {
	p := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "istio-system", Labels: map[string]string{"istio": "eastwestgateway"}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
	if !ready {
		p.Status.Conditions[0].Status = corev1.ConditionFalse
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "istio-proxy", RestartCount: 4,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}}}
	}
	return p
}

func TestCheckGatewaysRunning(t *testing.T) {
	for _, tc := range []struct {
		name    string
		offline bool
		c2      []runtime.Object
		want    string
		inconc  string
	}{
		{name: "every gateway has a Ready pod", c2: []runtime.Object{gatewayPod("gw-b", true)}},
		{name: "a crash-looping gateway is a finding", c2: []runtime.Object{gatewayPod("gw-b", false)},
			want: "the east-west gateway of c2 has no Ready pod, so nothing from outside reaches network network2 through it: pod gw-b container istio-proxy CrashLoopBackOff, 4 restarts"},
		{name: "a missing gateway is a finding", want: "c2 has no east-west gateway pod (Deployment istio-system/istio-eastwestgateway)"},
		{name: "offline images cannot run gateways: not judged", offline: true, c2: []runtime.Object{gatewayPod("gw-b", false)},
			inconc: "the east-west gateway of c2 cannot run on offline images: their proxyv2 holds pilot-agent but no Envoy"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &scenario.Scenario{Name: "mn", Clusters: []scenario.Cluster{{Name: "c1", Network: "network1"}, {Name: "c2", Network: "network2"}}}
			if tc.offline {
				s.Provider = scenario.Provider{Name: scenario.ProviderKind, Kind: &scenario.KindOptions{OfflineImages: true}}
			}
			s.Default()
			tg := &Target{Scenario: s, Clients: map[string]*kube.Client{
				"c1": {Name: "c1", Kube: fake.NewClientset(gatewayPod("gw-a", true))},
				"c2": {Name: "c2", Kube: fake.NewClientset(tc.c2...)},
			}}
			v := CheckGatewaysRunning(context.Background(), tg)
			got := joined(v)
			if tc.want == "" && got != "" || !strings.Contains(got, tc.want) {
				t.Errorf("failures %q, want %q", got, tc.want)
			}
			if tc.inconc == "" && v.Inconclusive != nil || tc.inconc != "" && (v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), tc.inconc)) {
				t.Errorf("not judged %v, want %q", v.Inconclusive, tc.inconc)
			}
		})
	}
}
