package suites

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	echoproto "istio.io/istio/pkg/test/echo/proto"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/kube"
)

// echoApp plays Istio's echo app's ForwardEcho: its replies print, per request, the lines recorded
// from the real app on a kind lab here (ForwardEcho to xds:///echo.proxyless.svc.cluster.local:7071):
//
//	[0] Latency=25.471561ms
//	[0 body] StatusCode=200
//	[0 body] Cluster=c1
//	[0 body] Hostname=echo-v1-7d776dbc56-2w5bv
//
// and a request set that cannot complete fails with code Unknown, "request set timed out after 2s
// and only 0/1 requests completed (0s avg)" (also recorded).
type echoApp struct {
	echoproto.UnimplementedEchoTestServiceServer
	answer func(i int) string // the cluster answering request i, "" for no answer
}

func (e *echoApp) ForwardEcho(_ context.Context, r *echoproto.ForwardEchoRequest) (*echoproto.ForwardEchoResponse, error) {
	if r.Qps <= 0 {
		// A burst on a fresh channel goes to the first locality that connects (see echoQPS).
		return nil, status.Errorf(codes.InvalidArgument, "test: the check must pace its requests (qps %d)", r.Qps)
	}
	var out []string
	done := 0
	for i := 0; i < int(r.Count); i++ {
		c := e.answer(i)
		if c == "" {
			continue
		}
		done++
		out = append(out, fmt.Sprintf("[%d] Latency=25.471561ms", i), fmt.Sprintf("[%d] ActiveRequests=1", i),
			fmt.Sprintf("[%d body] Host=echo.proxyless.svc.cluster.local:7071", i), fmt.Sprintf("[%d body] StatusCode=200", i),
			fmt.Sprintf("[%d body] ServiceVersion=v1", i), fmt.Sprintf("[%d body] Cluster=%s", i, c),
			fmt.Sprintf("[%d body] Hostname=echo-v1-7d776dbc56-%s", i, c), fmt.Sprintf("[%d] ResponseHeader=content-type:application/grpc", i), "")
	}
	if done < int(r.Count) {
		return nil, status.Errorf(codes.Unknown, "request set timed out after 5s and only %d/%d requests completed (0s avg)", done, r.Count)
	}
	return &echoproto.ForwardEchoResponse{Output: out}, nil
}

func proxylessTarget(t *testing.T, apps map[string]*echoApp) *Target {
	return proxylessTargetWith(t, apps, nil)
}

// proxylessTargetWith: the echo pods of the clusters in notReady are Running but not Ready.
func proxylessTargetWith(t *testing.T, apps map[string]*echoApp, notReady map[string]bool) *Target {
	t.Helper()
	s := mixed(t)
	addrs := map[string]string{}
	for c, app := range apps {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := grpc.NewServer()
		echoproto.RegisterEchoTestServiceServer(srv, app)
		go func() { _ = srv.Serve(l) }()
		t.Cleanup(srv.Stop)
		addrs[c] = l.Addr().String()
	}
	tg := &Target{Scenario: s, Clients: map[string]*kube.Client{}}
	tg.Scenario.Istio.Samples = "proxyless"
	for _, c := range s.Clusters {
		echo := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "echo-" + c.Name, Namespace: "proxyless", Labels: map[string]string{"app": "echo"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(c.Name, 3),
				Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}}}
		if notReady[c.Name] {
			echo.Status.Conditions[0].Status = corev1.ConditionFalse
		}
		tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(echo)}
	}
	tg.Forward = func(_ context.Context, cluster, ns, sel string, ports []int) (map[int]string, func(), error) {
		if ns != "proxyless" || sel != "app=echo" || len(ports) != 1 || ports[0] != 7070 {
			return nil, nil, fmt.Errorf("unexpected port-forward %s %s %v", ns, sel, ports)
		}
		a, ok := addrs[cluster]
		if !ok {
			// client-go's error when the pod's port cannot be forwarded.
			return nil, nil, fmt.Errorf("error upgrading connection: unable to upgrade connection: pod does not exist")
		}
		return map[int]string{7070: a}, func() {}, nil
	}
	return tg
}

func TestCheckProxylessReached(t *testing.T) {
	every := func(i int) string { return []string{"c1", "c2", "c3"}[i%3] }
	noC2 := func(i int) string {
		if i%3 == 1 {
			return "c1"
		}
		return every(i)
	}
	for _, tc := range []struct {
		name   string
		apps   map[string]*echoApp
		want   []string
		inconc string
	}{
		{"every cluster answers every client", map[string]*echoApp{"c1": {answer: every}, "c2": {answer: every}, "c3": {answer: every}}, nil, ""},
		{"c2 is never reached from c1", map[string]*echoApp{"c1": {answer: noC2}, "c2": {answer: every}, "c3": {answer: every}},
			[]string{"proxyless gRPC from c1 never reached c2 on the same network (reached c1×20, c3×10)"}, ""},
		{"another network is not required (proxyless gRPC cannot cross an east-west gateway)", map[string]*echoApp{"c1": {answer: func(i int) string { return []string{"c1", "c2"}[i%2] }}, "c2": {answer: every}, "c3": {answer: every}}, nil, ""},
		{"requests time out", map[string]*echoApp{"c1": {answer: every}, "c2": {answer: func(int) string { return "" }}, "c3": {answer: every}},
			[]string{"proxyless gRPC requests from c2 to xds:///echo.proxyless.svc.cluster.local:7071 failed: request set timed out after 5s and only 0/30 requests completed"}, ""},
		{"c2 never reached while its echo is not Ready is not judged", map[string]*echoApp{"c1": {answer: noC2}, "c2": {answer: every}, "c3": {answer: every}},
			nil, "proxyless gRPC from c1 never reached c2, whose echo pods are not Ready (echo-c2 (Running))"},
		{"a port-forward that fails is not judged", map[string]*echoApp{"c1": {answer: every}, "c2": {answer: every}}, nil, "port-forward to the echo app in c3/proxyless"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			v := CheckProxylessReached(context.Background(), proxylessTargetWith(t, tc.apps, map[string]bool{"c2": strings.Contains(tc.name, "not Ready")}))
			got := joined(v)
			if len(tc.want) == 0 && got != "" {
				t.Errorf("failures: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("failures lack %q:\n%s", w, got)
				}
			}
			if tc.inconc != "" && (v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), tc.inconc)) {
				t.Errorf("want not judged %q, got %v", tc.inconc, v.Inconclusive)
			}
			if tc.inconc == "" && v.Inconclusive != nil {
				t.Errorf("unexpected: %v", v.Inconclusive)
			}
		})
	}
}
