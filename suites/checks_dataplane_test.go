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

// fakeExec answers like curl in the sample pods would, per cluster.
type fakeExec struct {
	answers map[string]string
	calls   []string
}

func (f *fakeExec) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s %s/%s[%s] %s", cluster, ns, pod, container, strings.Join(cmd, " ")))
	a, ok := f.answers[cluster]
	if !ok {
		return "", "curl: (6) Could not resolve host", fmt.Errorf("exit 6")
	}
	return a, "", nil
}

func dataPlaneTarget(t *testing.T, exec *fakeExec) *Target {
	t.Helper()
	s := &scenario.Scenario{Name: "mixed", Clusters: []scenario.Cluster{
		{Name: "c1", Network: "network1"}, {Name: "c2", Network: "network1"}, {Name: "c3", Network: "network2"},
	}}
	s.Default()
	if err := s.Validate("test"); err != nil {
		t.Fatal(err)
	}
	tg := &Target{Scenario: s, Clients: map[string]*kube.Client{}, Exec: exec}
	for _, c := range s.Clusters {
		curl := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "curl"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.1"}}
		tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(curl)}
	}
	return tg
}

func hello(versions ...string) string {
	var b strings.Builder
	for _, v := range versions {
		fmt.Fprintf(&b, "Hello version: %s, instance: helloworld-%s-abc\n", v, v)
	}
	return b.String()
}

func TestCheckReachedClusters(t *testing.T) {
	all := hello("v1", "v2", "v3", "v1", "v2")
	cases := []struct {
		name    string
		answers map[string]string
		want    []string
	}{
		{"every cluster reached", map[string]string{"c1": all, "c2": all, "c3": hello("v3", "v1")}, nil},
		{"same-network cluster missed", map[string]string{"c1": hello("v1", "v3"), "c2": all, "c3": hello("v3", "v2")},
			[]string{"requests from c1 never reached c2 on the same network (reached c1×1, c3×1)"}},
		{"other network missed", map[string]string{"c1": hello("v1", "v2"), "c2": all, "c3": all},
			[]string{"requests from c1 never reached network network2", "east-west gateway path is broken"}},
		{"curl fails", map[string]string{"c2": all, "c3": all},
			[]string{"curl in c1 could not run its requests", "Could not resolve host"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ex := &fakeExec{answers: tc.answers}
			v := CheckReachedClusters(context.Background(), dataPlaneTarget(t, ex))
			if v.Inconclusive != nil {
				t.Fatal(v.Inconclusive)
			}
			got := strings.Join(v.Failures, "\n")
			if len(tc.want) == 0 && got != "" {
				t.Errorf("healthy lab failed: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("diagnosis lacks %q:\n%s", w, got)
				}
			}
			if !strings.Contains(ex.calls[0], "c1 sample/curl-c1[curl] sh -c for i in $(seq 30); do curl -sS --max-time 5 helloworld.sample:5000/hello") {
				t.Errorf("unexpected command: %s", ex.calls[0])
			}
		})
	}
}

func TestCheckXFCC(t *testing.T) {
	ok := `{"headers": {"X-Forwarded-Client-Cert": ["By=spiffe://cluster.local/ns/sample/sa/httpbin;Hash=ab;Subject=\"\";URI=spiffe://cluster.local/ns/sample/sa/curl"]}}`
	plain := `{"headers": {"Host": ["httpbin.sample:8000"]}}`
	wrongTD := `{"headers": {"X-Forwarded-Client-Cert": ["URI=spiffe://other.local/ns/sample/sa/curl"]}}`
	for _, tc := range []struct {
		name, c3 string
		want     string
	}{
		{"mTLS everywhere", ok, ""},
		{"plaintext", plain, "httpbin received the request from c3 without X-Forwarded-Client-Cert"},
		{"wrong trust domain", wrongTD, `want URI=spiffe://cluster.local/ns/sample/sa/curl`},
	} {
		v := CheckXFCC(context.Background(), dataPlaneTarget(t, &fakeExec{answers: map[string]string{"c1": ok, "c2": ok, "c3": tc.c3}}))
		got := strings.Join(v.Failures, "\n")
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: failures %q, want %q", tc.name, got, tc.want)
		}
	}
}

// plainExec answers like curl in curl-plain: stderr and an error per cluster, or an HTTP code.
type plainExec map[string][2]string

func (p plainExec) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	a := p[cluster]
	if a[1] != "" {
		return "", a[1], fmt.Errorf("command terminated with exit code 56")
	}
	return a[0], "", nil
}

func TestCheckPlaintextRefused(t *testing.T) {
	reset := [2]string{"", "curl: (56) Recv failure: Connection reset by peer"}
	for _, tc := range []struct {
		name         string
		ex           plainExec
		fail, inconc string
	}{
		{"every httpbin resets plaintext", plainExec{"c1": reset, "c2": reset, "c3": {"", "curl: (52) Empty reply from server"}}, "", ""},
		{"httpbin answers plaintext", plainExec{"c1": reset, "c2": {"200", ""}, "c3": reset}, "httpbin answered a plaintext request from c2's curl-plain (HTTP 200): STRICT mTLS is not enforced", ""},
		{"the request never reached httpbin", plainExec{"c1": {"", "curl: (6) Could not resolve host: httpbin.sample"}, "c2": reset, "c3": reset}, "", "failed before reaching httpbin's sidecar (curl: (6) Could not resolve host"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tg := dataPlaneTarget(t, &fakeExec{})
			tg.Exec = tc.ex
			for _, c := range tg.Scenario.Clusters {
				plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl-plain-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "curl-plain"}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.2"}}
				tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(plain)}
			}
			v := CheckPlaintextRefused(context.Background(), tg)
			got := strings.Join(v.Failures, "\n")
			switch {
			case tc.fail == "" && tc.inconc == "" && !v.Passed():
				t.Errorf("healthy: %s %v", got, v.Inconclusive)
			case tc.fail != "" && !strings.Contains(got, tc.fail):
				t.Errorf("failures lack %q: %s", tc.fail, got)
			case tc.inconc != "" && (v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), tc.inconc) || len(v.Failures) > 0):
				t.Errorf("want inconclusive %q, got %v / %s", tc.inconc, v.Inconclusive, got)
			}
		})
	}
}
