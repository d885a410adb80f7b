package suites

// A fake data plane that prints what the real programs print, so the data-plane checks are tested
// against real formats. Where each format comes from:
//
//   - helloworld's reply: samples/helloworld/src/app.py, 'Hello version: %s, instance: %s\n' with
//     SERVICE_VERSION and HOSTNAME (the pod's name).
//   - curl: -w '\nmclab-http-code=%{http_code}\n' after the body (curl's --write-out; http_code is 000
//     when no HTTP reply came); errors on stderr as "curl: (N) <message>" (curl's libcurl-errors: 7
//     "Failed to connect to ... Couldn't connect to server", 56 "Recv failure: Connection reset by
//     peer", 52 "Empty reply from server", 6 "Could not resolve host").
//   - Envoy's local replies: "no healthy upstream" (503, source/common/router/router.cc) and
//     "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
//     (503).
//   - Envoy's admin /clusters text output, read with `pilot-agent request GET clusters`: one line per
//     cluster or host stat, "<cluster>::<host>:<port>::<stat>::<value>" (Envoy docs, operations/admin,
//     "GET /clusters"; source/server/admin/clusters_handler.cc).
//   - A command that exits non-zero under `kubectl exec`: client-go's remotecommand returns
//     "command terminated with exit code N" (tools/remotecommand/v4.go).

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

const (
	envoyNoHealthyUpstream = "no healthy upstream"
	envoyConnectFailure    = "upstream connect error or disconnect/reset before headers. reset reason: connection failure"
	curlConnectRefused     = "curl: (7) Failed to connect to helloworld.sample port 5000 after 3 ms: Couldn't connect to server"
)

// hop is where one request goes: the cluster that answers, the host the client's sidecar sends it to
// (a pod IP or a gateway address:15443), and the HTTP status (0: curl gets no reply).
type hop struct {
	cluster string
	host    string
	code    int
	body    string
}

// simMesh plays the sample pods of a lab: route decides each request from a client.
type simMesh struct {
	t        *testing.T
	s        *scenario.Scenario
	route    func(client string, i int) hop
	version  func(cluster string) string // what SERVICE_VERSION the pod prints
	counters map[string]map[string]int   // client -> host -> rq_total
	calls    []string
	execErr  map[string]error // per client cluster: exec itself fails
}

var loopRE = regexp.MustCompile(`seq (\d+)\); do curl -sS --max-time 5 -w '\\nmclab-http-code=%\{http_code\}\\n' (\S+); done; true`)

func (m *simMesh) Exec(_ context.Context, cluster, ns, pod, container string, cmd []string) (string, string, error) {
	m.calls = append(m.calls, fmt.Sprintf("%s %s/%s[%s] %s", cluster, ns, pod, container, strings.Join(cmd, " ")))
	if err := m.execErr[cluster]; err != nil {
		return "", "", err
	}
	if m.counters[cluster] == nil {
		m.counters[cluster] = map[string]int{}
	}
	switch {
	case container == "istio-proxy" && strings.Join(cmd, " ") == "pilot-agent request GET clusters":
		return m.adminClusters(cluster), "", nil
	case container == "curl" && len(cmd) == 3 && loopRE.MatchString(cmd[2]):
		g := loopRE.FindStringSubmatch(cmd[2])
		n, _ := strconv.Atoi(g[1])
		var out, errOut strings.Builder
		for i := 0; i < n; i++ {
			h := m.route(cluster, i)
			if h.host != "" {
				m.counters[cluster][h.host]++
			}
			switch {
			case h.code == 0:
				fmt.Fprintln(&errOut, curlConnectRefused)
				fmt.Fprintf(&out, "\nmclab-http-code=000\n")
			case h.code == 200:
				v := m.version(h.cluster)
				fmt.Fprintf(&out, "Hello version: %s, instance: helloworld-%s-5d8f9b7c4-%s\n\nmclab-http-code=200\n", v, m.versionOf(h.cluster), h.cluster)
			default:
				fmt.Fprintf(&out, "%s\nmclab-http-code=%d\n", h.body, h.code)
			}
		}
		return out.String(), errOut.String(), nil
	}
	return "", "OCI runtime exec failed: exec failed: unable to start container process: exec: \"" + cmd[0] + "\": executable file not found in $PATH: unknown", fmt.Errorf("command terminated with exit code 126")
}

// versionOf is the version the lab gives a cluster's helloworld Deployment (its name).
func (m *simMesh) versionOf(cluster string) string {
	for i, c := range m.s.Clusters {
		if c.Name == cluster {
			return fmt.Sprintf("v%d", i+1)
		}
	}
	return "v0"
}

// adminClusters prints Envoy's /clusters text for the helloworld cluster of a client's sidecar, with
// the hosts it has sent to, plus a few lines of other clusters and stats as the real output has.
func (m *simMesh) adminClusters(client string) string {
	const name = "outbound|5000||helloworld.sample.svc.cluster.local"
	var b strings.Builder
	fmt.Fprintf(&b, "%s::observability_name::%s\n", name, name)
	fmt.Fprintf(&b, "%s::default_priority::max_connections::4294967295\n", name)
	fmt.Fprintf(&b, "%s::added_via_api::true\n", name)
	var hosts []string
	for h := range m.counters[client] {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, h := range hosts {
		for _, stat := range []string{"cx_active::1", "cx_connect_fail::0", "cx_total::1", "rq_active::0", "rq_error::0", "rq_success::" + strconv.Itoa(m.counters[client][h]), "rq_timeout::0", fmt.Sprintf("rq_total::%d", m.counters[client][h]), "hostname::", "health_flags::healthy", "weight::1", "region::region1", "zone::zone1"} {
			fmt.Fprintf(&b, "%s::%s::%s\n", name, h, stat)
		}
	}
	b.WriteString("outbound|8000||httpbin.sample.svc.cluster.local::10.10.0.7:8080::rq_total::4\n")
	return b.String()
}

// simTarget is a target over a scenario whose clusters have curl, helloworld and east-west gateway
// pods (fake API servers) and whose commands run in m.
func simTarget(t *testing.T, s *scenario.Scenario, m *simMesh) *Target {
	t.Helper()
	m.t, m.s = t, s
	if m.counters == nil {
		m.counters = map[string]map[string]int{}
	}
	if m.version == nil {
		m.version = m.versionOf
	}
	tg := &Target{Scenario: s, Clients: map[string]*kube.Client{}, Exec: m}
	for i, c := range s.Clusters {
		v := fmt.Sprintf("v%d", i+1)
		curl := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "curl-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "curl"}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(c.Name, 1)}}
		hw := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "helloworld-" + v + "-5d8f9b7c4-" + c.Name, Namespace: "sample", Labels: map[string]string{"app": "helloworld", "version": v}},
			Status: corev1.PodStatus{Phase: corev1.PodRunning, PodIP: podIP(c.Name, 2)}}
		gwSvc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "istio-eastwestgateway", Namespace: "istio-system"},
			Status: corev1.ServiceStatus{LoadBalancer: corev1.LoadBalancerStatus{Ingress: []corev1.LoadBalancerIngress{{IP: gatewayIP(c.Name)}}}}}
		tg.Clients[c.Name] = &kube.Client{Name: c.Name, Kube: fake.NewClientset(curl, hw, gwSvc)}
	}
	return tg
}

func podIP(cluster string, n int) string {
	return fmt.Sprintf("10.%s0.0.%d", strings.TrimPrefix(cluster, "c"), n)
}

func gatewayIP(cluster string) string { return "198.18.0." + strings.TrimPrefix(cluster, "c") }

// roundRobin sends request i from a client to the (i mod n)th cluster of the mesh: same-network
// clusters at their pod IP, other networks through their gateway, answered 200.
func roundRobin(s *scenario.Scenario) func(client string, i int) hop {
	return func(client string, i int) hop {
		c := s.Clusters[i%len(s.Clusters)]
		from := s.Cluster(client)
		host := podIP(c.Name, 2) + ":5000"
		if c.Network != from.Network {
			host = gatewayIP(c.Name) + ":15443"
		}
		return hop{cluster: c.Name, host: host, code: 200}
	}
}

func mustCompose(t *testing.T, topo scenario.Topology, n int) *scenario.Scenario {
	t.Helper()
	s, err := scenario.Compose(topo, scenario.MultiPrimary, n)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func joined(v Verdict) string { return strings.Join(v.Failures, "\n") }
