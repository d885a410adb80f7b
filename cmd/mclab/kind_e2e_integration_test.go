package main_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/labtest"
)

// realKind skips unless a Docker daemon answers and the kind node image is there: kind-offline's
// ensure.sh (run by .ci/run) provides both on this machine; nothing can be pulled here.
func realKind(t *testing.T) string {
	t.Helper()
	labtest.SkipIfShort(t)
	image := os.Getenv("MCLAB_KIND_NODE_IMAGE")
	if image == "" {
		t.Skip(`real kind: MCLAB_KIND_NODE_IMAGE is not set (eval "$(../shared/kind-offline/ensure.sh)" first; .ci/run does)`)
	}
	if out, err := exec.Command("docker", "image", "inspect", "--format", "{{.Id}}", image).CombinedOutput(); err != nil {
		t.Skipf("real kind: node image %s is not in docker: %v %s", image, err, out)
	}
	return image
}

func docker(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("docker", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("docker %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// kindContainers lists the node containers of kind clusters whose names start with prefix.
func kindContainers(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	for _, n := range strings.Fields(docker(t, "ps", "-a", "--filter", "label=io.x-k8s.kind.cluster", "--format", "{{.Names}}")) {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	return out
}

func kindScenario(t *testing.T, name, image string, clusters int) string {
	t.Helper()
	var cs []string
	for i := 1; i <= clusters; i++ {
		cs = append(cs, fmt.Sprintf("- {name: c%d, network: network1}", i))
	}
	doc := fmt.Sprintf(`apiVersion: mclab.dev/v1alpha1
kind: Scenario
name: %s
istio: {model: multi-primary}
provider: {name: kind, kind: {nodeImage: %s, loadBalancer: none}}
clusters:
%s
`, name, image, strings.Join(cs, "\n"))
	path := filepath.Join(t.TempDir(), name+".yaml")
	must(t, os.WriteFile(path, []byte(doc), 0o600))
	return path
}

// TestIntegrationRealKind runs the kind provider against the real Docker daemon and a locally built
// node image (kind-offline): a 2-cluster single-network lab (clusters only: nothing else can be pulled
// here), its kubeconfigs from the host and from the other cluster, routes between the nodes carrying
// real traffic to the other cluster's pods, status, a second lab whose name the first one's prefixes
// (down of one leaves the other), an interrupted up, and down leaving no container and the user's
// kubeconfig untouched.
func TestIntegrationRealKind(t *testing.T) {
	image := realKind(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	userKC := filepath.Join(t.TempDir(), "config")
	must(t, os.WriteFile(userKC, []byte("apiVersion: v1\nkind: Config\nclusters: []\n"), 0o600))
	t.Setenv("KUBECONFIG", userKC)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })

	start := time.Now()
	out, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", kindScenario(t, "kinde2e", image, 2), "--skip-istio")
	if code != 0 {
		t.Fatalf("up on real kind exited %d:\n%s%s", code, out, stderr)
	}
	t.Logf("real kind: 2-cluster lab up in %s", time.Since(start).Round(time.Second))
	if got := kindContainers(t, "kinde2e-"); strings.Join(got, ",") != "kinde2e-c1-control-plane,kinde2e-c2-control-plane" && strings.Join(got, ",") != "kinde2e-c2-control-plane,kinde2e-c1-control-plane" {
		t.Fatalf("node containers: %v", got)
	}
	if out, stderr, code := mclab(t, bin, stateDir, "status", "--name", "kinde2e"); code != 0 {
		t.Errorf("status exited %d:\n%s%s", code, out, stderr)
	}

	kcPath, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "kinde2e")
	ctx := context.Background()
	podCIDR := map[string]string{}
	ip := map[string]string{}
	for _, c := range []string{"c1", "c2"} {
		cs := client(t, strings.TrimSpace(kcPath), "kinde2e-"+c)
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		must(t, err)
		if len(nodes.Items) != 1 || !ready(nodes.Items[0]) {
			t.Fatalf("%s nodes: %+v", c, nodes.Items)
		}
		podCIDR[c] = nodes.Items[0].Spec.PodCIDR
		ip[c] = docker(t, "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", "kinde2e-"+c+"-control-plane")
	}
	// Routes: each node reaches the other cluster's pod CIDR through the other node.
	routes := docker(t, "exec", "kinde2e-c1-control-plane", "ip", "route")
	if !routedVia(routes, podCIDR["c2"], ip["c2"]) {
		t.Errorf("c1's node has no route to c2's pods (%s via %s):\n%s", podCIDR["c2"], ip["c2"], routes)
	}
	// Real traffic from c1's node to a pod of c2 (CoreDNS's health port) over that route.
	c2 := client(t, strings.TrimSpace(kcPath), "kinde2e-c2")
	var dnsIP string
	for deadline := time.Now().Add(2 * time.Minute); dnsIP == "" && time.Now().Before(deadline); time.Sleep(2 * time.Second) {
		pods, err := c2.CoreV1().Pods("kube-system").List(ctx, metav1.ListOptions{LabelSelector: "k8s-app=kube-dns"})
		must(t, err)
		for _, p := range pods.Items {
			if p.Status.PodIP != "" && p.Status.Phase == corev1.PodRunning {
				dnsIP = p.Status.PodIP
			}
		}
	}
	if dnsIP == "" {
		t.Fatal("CoreDNS of c2 never got an IP")
	}
	if health := docker(t, "exec", "kinde2e-c1-control-plane", "curl", "-sS", "--max-time", "5", "http://"+dnsIP+":8080/health"); health != "OK" {
		t.Errorf("c1's node reached c2's CoreDNS at %s: %q", dnsIP, health)
	}
	// The kubeconfig istiod would use from c1 (internal, rewritten to the container IP) reaches c2.
	if v := docker(t, "exec", "kinde2e-c1-control-plane", "curl", "-sk", "--max-time", "5", "https://"+ip["c2"]+":6443/version"); !strings.Contains(v, `"gitVersion": "v1.37.2"`) {
		t.Errorf("c2's API server from c1's node: %s", v)
	}

	// A second lab whose name shares the first one's prefix; down of the first leaves it.
	if out, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", kindScenario(t, "kinde2e-2", image, 1), "--skip-istio"); code != 0 {
		t.Fatalf("second lab: %d\n%s%s", code, out, stderr)
	}
	if _, stderr, code := mclab(t, bin, stateDir, "down", "--name", "kinde2e"); code != 0 {
		t.Fatalf("down: %s", stderr)
	}
	if got := kindContainers(t, "kinde2e-"); len(got) != 1 || got[0] != "kinde2e-2-c1-control-plane" {
		t.Errorf("down of kinde2e must leave exactly kinde2e-2's node, left %v", got)
	}
	// Lab kinde2e with a cluster 2-c1 joins to kind-e2e-2's kind cluster kinde2e-2-c1 (issue 31): up
	// refuses it before creating anything, naming the cluster, and its down deletes nothing of kinde2e-2.
	collide := filepath.Join(t.TempDir(), "collide.yaml")
	must(t, os.WriteFile(collide, []byte(fmt.Sprintf(`apiVersion: mclab.dev/v1alpha1
kind: Scenario
name: kinde2e
istio: {model: multi-primary}
provider: {name: kind, kind: {nodeImage: %s, loadBalancer: none}}
clusters:
- {name: 2-c1, network: network1}
`, image)), 0o600))
	out, stderr, code = mclab(t, bin, stateDir, "up", "--scenario", collide, "--skip-istio")
	if code == 0 || !strings.Contains(stderr, "kind cluster kinde2e-2-c1 (lab kinde2e, cluster 2-c1) already exists and is not this lab's") {
		t.Errorf("up of a lab whose kind cluster name is another lab's: exit %d, want a refusal naming kinde2e-2-c1\n%s%s", code, out, stderr)
	}
	mclab(t, bin, stateDir, "down", "--name", "kinde2e")
	if got := kindContainers(t, "kinde2e-"); len(got) != 1 || got[0] != "kinde2e-2-c1-control-plane" {
		t.Errorf("the refused colliding lab's up and down must leave kinde2e-2's node alone, left %v", got)
	}
	other := client(t, strings.TrimSpace(kcPath2(t, bin, stateDir, "kinde2e-2")), "kinde2e-2-c1")
	if _, err := other.CoreV1().Namespaces().Get(ctx, "kube-system", metav1.GetOptions{}); err != nil {
		t.Errorf("kinde2e-2's cluster after the colliding lab's up and down: %v", err)
	}
	if _, stderr, code := mclab(t, bin, stateDir, "down", "--name", "kinde2e-2"); code != 0 {
		t.Fatalf("down: %s", stderr)
	}
	if got := kindContainers(t, "kinde2e"); len(got) != 0 {
		t.Errorf("containers left after down: %v", got)
	}
	// up merged the labs' contexts (as kind does); down removed exactly those.
	if cfg, err := clientcmd.LoadFromFile(userKC); err != nil || len(cfg.Contexts)+len(cfg.Clusters)+len(cfg.AuthInfos) != 0 {
		data, _ := os.ReadFile(userKC)
		t.Errorf("the user's kubeconfig keeps entries of deleted labs (%v):\n%s", err, data)
	}

	// An interrupted up (Ctrl-C while kind creates the node) leaves nothing.
	cmd := exec.Command(bin, "up", "--scenario", kindScenario(t, "kinde2e-int", image, 1), "--skip-istio")
	cmd.Env = append(os.Environ(), "MCLAB_STATE_DIR="+stateDir)
	pipe, err := cmd.StderrPipe()
	must(t, err)
	must(t, cmd.Start())
	var output strings.Builder
	lines := bufio.NewScanner(pipe)
	for lines.Scan() {
		output.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "Creating kind clusters") {
			break
		}
	}
	for deadline := time.Now().Add(30 * time.Second); len(kindContainers(t, "kinde2e-int")) == 0 && time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
	}
	must(t, cmd.Process.Signal(syscall.SIGINT))
	for lines.Scan() {
		output.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 || !strings.Contains(output.String(), "nothing was left behind") {
		t.Errorf("interrupted up: %v\n%s", err, output.String())
	}
	if got := kindContainers(t, "kinde2e-int"); len(got) != 0 {
		t.Errorf("interrupted up left %v", got)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "labs", "kinde2e-int")); !os.IsNotExist(err) {
		t.Errorf("interrupted up left its state: %v", err)
	}
}

// kcPath2 is the path of lab name's kubeconfig.
func kcPath2(t *testing.T, bin, stateDir, name string) string {
	t.Helper()
	out, stderr, code := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", name)
	if code != 0 {
		t.Fatalf("kubeconfig --path --name %s: exit %d\n%s", name, code, stderr)
	}
	return out
}

func ready(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// routedVia reports whether `ip route` output sends the node CIDR cidr through gateway via (a route to
// the cluster's whole pod subnet counts).
func routedVia(routes, cidr, via string) bool {
	want, err := netip.ParsePrefix(cidr)
	if err != nil {
		return false
	}
	for _, line := range strings.Split(routes, "\n") {
		f := strings.Fields(line)
		if len(f) >= 3 && f[1] == "via" && f[2] == via {
			if p, err := netip.ParsePrefix(f[0]); err == nil && p.Bits() <= want.Bits() && p.Contains(want.Addr()) {
				return true
			}
		}
	}
	return false
}

// TestIntegrationRealKindIstio: a single-network multi-primary lab on real kind with everything built
// here (--offline-images) and a real data plane without Envoy (--samples proxyless): MetalLB's
// controller and speaker give a LoadBalancer Service a real address from the lab's pool; istiod runs
// in-cluster as the chart's Deployment from the pilot image built from pilot-discovery and injects
// Istio's echo app with the grpc-agent template (pilot-agent, no Envoy); remote secrets carry the
// internal kubeconfigs and each istiod syncs the other cluster through them; verify reaches istiod and
// the echo apps through real port-forwards and is conformant, its proxyless gRPC requests answered by
// both clusters. Seeded faults: a remote secret pointing at kind's host address (127.0.0.1), and the
// route between the nodes removed.
func TestIntegrationRealKindIstio(t *testing.T) {
	image := realKind(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	doc := fmt.Sprintf(`apiVersion: mclab.dev/v1alpha1
kind: Scenario
name: kindistio
istio: {model: multi-primary, samples: proxyless}
provider: {name: kind, kind: {nodeImage: %s, offlineImages: true}}
clusters:
- {name: c1, network: network1}
- {name: c2, network: network1}
`, image)
	path := filepath.Join(t.TempDir(), "kindistio.yaml")
	must(t, os.WriteFile(path, []byte(doc), 0o600))
	start := time.Now()
	out, stderr, code := mclabWithin(t, 20*time.Minute, bin, stateDir, "up", "--scenario", path)
	if code != 0 {
		t.Fatalf("up with Istio on real kind exited %d:\n%s%s", code, out, stderr)
	}
	t.Logf("real kind with Istio in-cluster and proxyless samples: up in %s", time.Since(start).Round(time.Second))
	for _, want := range []string{"Building offline images", "Installing MetalLB", "Starting istiod for c1, c2", "Creating remote secrets", "Deploying proxyless gRPC samples"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("up did not %q:\n%s", want, stderr)
		}
	}
	status, serr, code := mclab(t, bin, stateDir, "status", "--name", "kindistio")
	if code != 0 || !strings.Contains(status, "c2=synced") || !strings.Contains(status, "c1=synced") {
		t.Errorf("status exited %d:\n%s%s", code, status, serr)
	}

	// MetalLB (built here) gives a LoadBalancer Service an address from c1's pool.
	kcPath, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "kindistio")
	kc := strings.TrimSpace(kcPath)
	c1 := client(t, kc, "kindistio-c1")
	ctx := context.Background()
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "lb-probe", Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeLoadBalancer, Ports: []corev1.ServicePort{{Port: 80}}, Selector: map[string]string{"app": "none"}}}
	_, err := c1.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{})
	must(t, err)
	var lb string
	for deadline := time.Now().Add(time.Minute); lb == "" && time.Now().Before(deadline); time.Sleep(time.Second) {
		got, err := c1.CoreV1().Services("default").Get(ctx, "lb-probe", metav1.GetOptions{})
		must(t, err)
		for _, ing := range got.Status.LoadBalancer.Ingress {
			lb = ing.IP
		}
	}
	if !strings.HasPrefix(lb, "172.18.") {
		t.Errorf("MetalLB gave the LoadBalancer Service %q, want an address of the kind network", lb)
	}

	verify := func(name string) (string, string, int) {
		dir := filepath.Join(t.TempDir(), name)
		start := time.Now()
		out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "kindistio", "--report-dir", dir)
		t.Logf("verify (%s) on real kind: exit %d in %s", name, code, time.Since(start).Round(100*time.Millisecond))
		report, _ := os.ReadFile(filepath.Join(dir, "ginkgo.json"))
		return out + stderr, string(report), code
	}
	var vout, report string
	for i := 0; i < 10; i++ {
		if vout, report, code = verify("healthy"); code == 0 {
			break
		}
		time.Sleep(3 * time.Second)
	}
	if code != 0 || !strings.Contains(vout, "Verdict: conformant (control plane and data plane; sidecar sample checks not run") {
		t.Fatalf("verify of a healthy proxyless lab on real kind exited %d:\n%s", code, vout)
	}
	if !regexp.MustCompile(`proxyless from c1: 20 of 20 replies, reached map\[c1:\d+ c2:\d+\]`).MatchString(report) {
		t.Errorf("proxyless requests from c1 must be answered by both clusters; evidence:\n%s", grepLines(report, "proxyless from"))
	}
	// mclab explain on real kind (issue 23): istiod's debug endpoints through a port-forward to the
	// istiod pod, the API servers through the lab's kubeconfig; the healthy lab has no broken link.
	explain := func() (string, int) {
		out, stderr, code := mclab(t, bin, stateDir, "explain", "--name", "kindistio", "--from", "c1/proxyless", "--to", "echo.proxyless", "--source", "c2")
		return out + stderr, code
	}
	if out, code := explain(); code != 0 || !strings.Contains(out, "no link is broken as far as istiod's state shows") || !strings.Contains(out, "✓ remote access") {
		t.Errorf("explain of a healthy kind lab: exit %d, want 0 with no broken link:\n%s", code, out)
	}

	// Fault: c1's remote secret for c2 points at kind's host address (127.0.0.1:<port>), which answers
	// on the host but is the istiod pod itself where istiod runs.
	hostKC, err := clientcmd.LoadFromFile(kc)
	must(t, err)
	secret, err := c1.CoreV1().Secrets("istio-system").Get(ctx, "istio-remote-secret-c2", metav1.GetOptions{})
	must(t, err)
	inner, err := clientcmd.Load(secret.Data["c2"])
	must(t, err)
	for _, cl := range inner.Clusters {
		cl.Server = hostKC.Clusters["kindistio-c2"].Server
	}
	secret.Data["c2"], err = clientcmd.Write(*inner)
	must(t, err)
	_, err = c1.CoreV1().Secrets("istio-system").Update(ctx, secret, metav1.UpdateOptions{})
	must(t, err)
	for i := 0; i < 10; i++ {
		if vout, _, code = verify("loopback-secret"); code == 1 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if code != 1 || !strings.Contains(vout, "c1's remote secret for c2 points at https://127.0.0.1:") || !strings.Contains(vout, "a loopback address") {
		t.Errorf("a remote secret at kind's host address must be non-conformant, named (exit %d):\n%s", code, vout)
	}
	if out, code := explain(); code != 1 || !strings.Contains(out, "✗ remote access") || !strings.Contains(out, "c1 Secret istio-system/istio-remote-secret-c2") {
		t.Errorf("explain with the loopback secret: exit %d, want 1 naming c1's remote secret:\n%s", code, out)
	} else {
		t.Logf("explain on real kind, loopback secret:\n%s", out)
	}
	if _, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", path); code != 0 {
		t.Fatalf("up must converge the secret: %s", stderr)
	}

	// Fault: the route from c1's node to c2's pods is gone; proxyless requests to c2's echo fail.
	routes := docker(t, "exec", "kindistio-c1-control-plane", "ip", "route")
	var gone string
	for _, line := range strings.Split(routes, "\n") {
		if strings.HasPrefix(line, "10.20.0.0/16 via ") {
			gone = strings.Fields(line)[0]
		}
	}
	if gone == "" {
		t.Fatalf("no route to c2's pods on c1's node:\n%s", routes)
	}
	docker(t, "exec", "kindistio-c1-control-plane", "ip", "route", "del", gone)
	for i := 0; i < 10; i++ {
		if vout, _, code = verify("route-missing"); code == 1 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	// gRPC's xDS balancer moves requests off endpoints it cannot connect to: c2 is never reached, while
	// istiod does send its endpoints, and the diagnosis says so.
	// How it shows depends on where the unroutable packets go (seen here: c2 never reached, or a
	// request answered by something else with HTTP 404); either way a finding, naming the routes.
	if code != 1 || !strings.Contains(vout, "proxyless gRPC") || !strings.Contains(vout, "pod IPs of the same network must be routable") {
		t.Errorf("a missing route between same-network nodes must be non-conformant (exit %d):\n%s", code, vout)
	}
	if _, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", path); code != 0 {
		t.Fatalf("up must restore the route: %s", stderr)
	}
	if !strings.Contains(docker(t, "exec", "kindistio-c1-control-plane", "ip", "route"), "10.20.0.0/16 via ") {
		t.Errorf("up did not restore the route")
	}

	if _, stderr, code := mclab(t, bin, stateDir, "down", "--name", "kindistio"); code != 0 {
		t.Fatalf("down: %s", stderr)
	}
	if got := kindContainers(t, "kindistio-"); len(got) != 0 {
		t.Errorf("containers left after down: %v", got)
	}
}

func grepLines(s, needle string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, needle) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return strings.Join(out, "\n")
}
