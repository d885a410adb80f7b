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

// mixed is c1 and c2 on network1, c3 on network2.
func mixed(t *testing.T) *scenario.Scenario {
	t.Helper()
	s := &scenario.Scenario{Name: "mixed", Clusters: []scenario.Cluster{
		{Name: "c1", Network: "network1"}, {Name: "c2", Network: "network1"}, {Name: "c3", Network: "network2"},
	}}
	s.Default()
	if err := s.Validate("test"); err != nil {
		t.Fatal(err)
	}
	return s
}

func TestCheckReachedClusters(t *testing.T) {
	s := mixed(t)
	rr := roundRobin(s)
	cases := []struct {
		name    string
		route   func(client string, i int) hop
		version func(string) string
		execErr map[string]error
		want    []string
		inconc  string
	}{
		{name: "every cluster reached", route: rr},
		{name: "every pod prints v1 (SERVICE_VERSION unset): instances still name the cluster", route: rr, version: func(string) string { return "v1" }},
		{name: "503 replies fail even though curl exits 0", route: func(client string, i int) hop {
			if i%5 == 4 {
				return hop{code: 503, body: envoyNoHealthyUpstream}
			}
			return rr(client, i)
		}, want: []string{"requests from c1 to helloworld failed: 6 of 30 (HTTP 503×6: no healthy upstream)"}},
		{name: "connect failures are failed replies", route: func(client string, i int) hop {
			if client == "c2" && i == 0 {
				return hop{code: 0}
			}
			return rr(client, i)
		}, want: []string{"requests from c2 to helloworld failed: 1 of 30 (no HTTP reply×1)"}},
		{name: "same-network cluster missed", route: func(client string, i int) hop {
			h := rr(client, i)
			if client == "c1" && h.cluster == "c2" {
				return rr(client, 0)
			}
			return h
		}, want: []string{"requests from c1 never reached c2 on the same network (reached c1×20, c3×10)"}},
		{name: "other network missed", route: func(client string, i int) hop {
			h := rr(client, i)
			if client == "c1" && h.cluster == "c3" {
				return hop{code: 503, body: envoyConnectFailure}
			}
			return h
		}, want: []string{"requests from c1 never reached network network2", "east-west gateway path is broken", "HTTP 503×10: upstream connect error"}},
		{name: "curl cannot run: not judged, never a failure", route: rr, execErr: map[string]error{"c1": fmt.Errorf("error dialing backend: dial tcp 172.18.0.3:10250: connect: connection refused")},
			inconc: "running curl in sample/curl-c1 of c1: error dialing backend"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := &simMesh{route: tc.route, version: tc.version, execErr: tc.execErr}
			v := CheckReachedClusters(context.Background(), simTarget(t, s, m))
			got := joined(v)
			if tc.inconc != "" {
				if v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), tc.inconc) || strings.Contains(got, "c1") {
					t.Errorf("want c1 not judged (%q), got %v / %s", tc.inconc, v.Inconclusive, got)
				}
				return
			}
			if v.Inconclusive != nil {
				t.Fatal(v.Inconclusive)
			}
			if len(tc.want) == 0 && got != "" {
				t.Errorf("healthy lab failed: %s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("diagnosis lacks %q:\n%s", w, got)
				}
			}
		})
	}
}

func TestParseReplies(t *testing.T) {
	// Exactly what the loop prints for a reply, an Envoy 503 and a refused connection.
	out := "Hello version: v2, instance: helloworld-v2-5d8f9b7c4-x7k2p\n\nmclab-http-code=200\n" +
		"no healthy upstream\nmclab-http-code=503\n" +
		"\nmclab-http-code=000\n"
	r := parseReplies(out)
	if len(r) != 3 || r[0].code != 200 || !strings.HasPrefix(r[0].body, "Hello version: v2") || r[1].code != 503 || r[1].body != "no healthy upstream" || r[2].code != 0 {
		t.Fatalf("parsed %+v", r)
	}
}

// httpbinExec answers `curl httpbin.sample:8000/headers` with httpbin's JSON (go-httpbin's /headers:
// {"headers": {"Name": ["value"]}}) and our status line.
type httpbinExec map[string]string

func (h httpbinExec) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	body, ok := h[cluster]
	if !ok {
		return "\nmclab-http-code=000\n", "curl: (6) Could not resolve host: httpbin.sample", nil
	}
	code := 200
	if strings.HasPrefix(body, "503 ") {
		code, body = 503, strings.TrimPrefix(body, "503 ")
	}
	return fmt.Sprintf("%s\nmclab-http-code=%d\n", body, code), "", nil
}

func TestCheckXFCC(t *testing.T) {
	s := mixed(t)
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
		{"503 from the sidecar", "503 " + envoyNoHealthyUpstream, "httpbin did not answer curl in c3: 1 of 1 (HTTP 503×1: no healthy upstream)"},
	} {
		v := CheckXFCC(context.Background(), simTarget(t, s, &simMesh{}).withExec(httpbinExec{"c1": ok, "c2": ok, "c3": tc.c3}))
		got := joined(v)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: failures %q, want %q", tc.name, got, tc.want)
		}
	}
}

func (t *Target) withExec(e interface {
	Exec(context.Context, string, string, string, string, []string) (string, string, error)
}) *Target {
	t.Exec = e
	return t
}

// plainExec answers like curl in curl-plain (`-o /dev/null -w %{http_code}`): stdout is the status
// code (000 without a reply), stderr curl's error, and the exec error client-go's for a non-zero exit.
type plainExec map[string][2]string

func (p plainExec) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	a := p[cluster]
	if a[1] != "" {
		code := curlExitRE.FindStringSubmatch(a[1])[1]
		return "000", a[1], fmt.Errorf("command terminated with exit code %s", code)
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
		{"a violation in one cluster stands beside a timeout in another", plainExec{"c1": {"", "curl: (28) Connection timed out after 5001 milliseconds"}, "c2": {"200", ""}, "c3": reset}, "c2's curl-plain (HTTP 200)", "curl: (28)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mixed(t)
			tg := simTarget(t, s, &simMesh{}).withExec(tc.ex)
			for _, c := range tg.Scenario.Clusters {
				plain := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl-plain-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "curl-plain"}},
					Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.0.0.2"}}
				tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(plain)}
			}
			v := CheckPlaintextRefused(context.Background(), tg)
			got := joined(v)
			switch {
			case tc.fail == "" && tc.inconc == "" && !v.Passed():
				t.Errorf("healthy: %s %v", got, v.Inconclusive)
			case tc.fail != "" && !strings.Contains(got, tc.fail):
				t.Errorf("failures lack %q: %s", tc.fail, got)
			case tc.fail == "" && tc.inconc != "" && len(v.Failures) > 0:
				t.Errorf("want only inconclusive, got failures %s", got)
			case tc.inconc != "" && (v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), tc.inconc)):
				t.Errorf("want inconclusive %q, got %v", tc.inconc, v.Inconclusive)
			}
		})
	}
}

func TestCheckGatewayTraffic(t *testing.T) {
	s := mustCompose(t, scenario.MultiNetwork, 2)
	rr := roundRobin(s)
	for _, tc := range []struct {
		name  string
		route func(client string, i int) hop
		want  []string
	}{
		{"requests cross through the gateways (pooled connections: per-request counters rise)", rr, nil},
		{"sidecars bypass the gateways", func(client string, i int) hop {
			h := rr(client, i)
			h.host = podIP(h.cluster, 2) + ":5000"
			return h
		}, []string{"10 requests from c1 were answered by network2 without passing its east-west gateway [198.18.0.2:15443]"}},
		{"the gateway takes requests but does not pass them", func(client string, i int) hop {
			h := rr(client, i)
			if h.cluster != client {
				return hop{host: h.host, code: 503, body: envoyConnectFailure}
			}
			return h
		}, []string{"10 requests from c1 entered network2's east-west gateway [198.18.0.2:15443] but none was answered by network2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &simMesh{route: tc.route}
			v := CheckGatewayTraffic(context.Background(), simTarget(t, s, m))
			if v.Inconclusive != nil {
				t.Fatal(v.Inconclusive)
			}
			got := joined(v)
			if len(tc.want) == 0 && got != "" {
				t.Errorf("healthy gateways failed:\n%s", got)
			}
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("failures lack %q:\n%s", w, got)
				}
			}
			if !strings.Contains(strings.Join(m.calls, "\n"), "c1 sample/curl-c1[istio-proxy] pilot-agent request GET clusters") {
				t.Errorf("counters not read through the client's pilot-agent: %v", m.calls)
			}
		})
	}
}
