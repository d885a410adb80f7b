package lab_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

// TestIntegrationLocalMultiNetwork brings up the default scenario on the local provider and checks what
// the lab promises: nodes Ready through the merged kubeconfig's <lab>-<cluster> contexts, a Deployment's
// pods Running with IPs inside their cluster's pod subnet, EndpointSlices for a Service; that a second
// up converges without restarting anything; that down leaves no process and no listening port.
func TestIntegrationLocalMultiNetwork(t *testing.T) {
	labtest.SkipIfShort(t)
	m, out := labtest.Manager(t)
	m.SkipIstio = true
	ctx := t.Context()
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	if err := m.Up(ctx, s, s.Name); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	kubeconfig := m.Store.Kubeconfig(s.Name)
	assertMode0600(t, kubeconfig)
	for _, c := range s.Clusters {
		cs := labtest.Client(t, kubeconfig, s.Name+"-"+c.Name)
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if len(nodes.Items) != 1 || !nodeReady(nodes.Items[0]) {
			t.Fatalf("%s: want 1 Ready node, got %+v", c.Name, nodes.Items)
		}
		if got := nodes.Items[0].Labels[corev1.LabelTopologyRegion]; got != c.Region {
			t.Errorf("%s: node region %q, want %q", c.Name, got, c.Region)
		}
		deploymentRunsInSubnet(t, cs, c.PodSubnet)
	}
	st, err := m.Status(ctx, s.Name)
	if err != nil || !st.Ready() {
		t.Fatalf("status not ready: %+v %v", st, err)
	}
	for _, f := range []string{"lab.json", "local/c1/pki/ca.key", "local/c1/pki/sa.key", "local/c1/admin.kubeconfig", "local/ports.json"} {
		assertMode0600(t, filepath.Join(m.Store.Dir(s.Name), f))
	}

	pidsBefore := labtest.LabPIDs(t, m.Store.Dir(s.Name))
	ports := labtest.LabPorts(t, m.Store.Dir(s.Name))
	if len(pidsBefore) != 10 {
		t.Fatalf("want 10 processes (5 per cluster), got %d", len(pidsBefore))
	}
	if err := m.Up(ctx, s, s.Name); err != nil {
		t.Fatalf("second up must converge: %v\n%s", err, out)
	}
	if pidsAfter := labtest.LabPIDs(t, m.Store.Dir(s.Name)); fmt.Sprint(pidsAfter) != fmt.Sprint(pidsBefore) {
		t.Errorf("second up restarted processes: before %v after %v", pidsBefore, pidsAfter)
	}

	if existed, err := m.Down(ctx, s.Name); err != nil || !existed {
		t.Fatalf("down: %v (existed %v)", err, existed)
	}
	assertGone(t, pidsBefore, ports)
	if pids := labtest.ProcessesUnder(m.Store.Root); len(pids) > 0 {
		t.Errorf("down left processes running: %v", pids)
	}
	if _, err := os.Stat(m.Store.Dir(s.Name)); !os.IsNotExist(err) {
		t.Errorf("down left the lab's state: %v", err)
	}
}

// TestIntegrationIstioCITopologyBesideAnotherLab brings up Istio's own 3-cluster topology file while a
// second lab runs, and checks the clusters' subnets and networks and that the labs share no port.
func TestIntegrationIstioCITopologyBesideAnotherLab(t *testing.T) {
	labtest.SkipIfShort(t)
	m, out := labtest.Manager(t)
	m.SkipIstio = true
	ctx := t.Context()
	other, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 1)
	if err != nil {
		t.Fatal(err)
	}
	other.Provider.Name = scenario.ProviderLocal
	if err := m.Up(ctx, other, "neighbour"); err != nil {
		t.Fatalf("up neighbour: %v\n%s", err, out)
	}
	s, err := scenario.Load("istio-ci", scenarios.FS)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	if err := m.Up(ctx, s, s.Name); err != nil {
		t.Fatalf("up istio-ci: %v\n%s", err, out)
	}
	st, err := m.Status(ctx, s.Name)
	if err != nil || !st.Ready() {
		t.Fatalf("status: %+v %v", st, err)
	}
	want := map[string][3]string{
		"primary":               {"network-1", "10.10.0.0/16", "10.255.10.0/24"},
		"remote":                {"network-1", "10.20.0.0/16", "10.255.20.0/24"},
		"cross-network-primary": {"network-2", "10.30.0.0/16", "10.255.30.0/24"},
	}
	if len(st.Clusters) != 3 {
		t.Fatalf("want 3 clusters, got %d", len(st.Clusters))
	}
	for _, c := range st.Clusters {
		w := want[c.Name]
		if c.Network != w[0] || c.PodSubnet != w[1] || c.ServiceSubnet != w[2] {
			t.Errorf("%s: %s %s %s, want %v", c.Name, c.Network, c.PodSubnet, c.ServiceSubnet, w)
		}
		podCIDR := netip.MustParsePrefix(c.Nodes[0].PodCIDR)
		if !netip.MustParsePrefix(w[1]).Contains(podCIDR.Addr()) {
			t.Errorf("%s: node podCIDR %s outside %s", c.Name, podCIDR, w[1])
		}
	}
	mine := labtest.LabPorts(t, m.Store.Dir(s.Name))
	theirs := map[int]bool{}
	for _, p := range labtest.LabPorts(t, m.Store.Dir("neighbour")) {
		theirs[p] = true
	}
	for _, p := range mine {
		if theirs[p] {
			t.Errorf("labs share port %d", p)
		}
	}
}

// TestIntegrationFailedUpLeavesNothing makes a fresh up fail mid-way (kube-apiserver exits at start,
// after etcd is already running) and checks that the error names the component and its log, and that
// no process, port or state is left behind.
func TestIntegrationFailedUpLeavesNothing(t *testing.T) {
	labtest.SkipIfShort(t)
	m, out := labtest.Manager(t)
	m.SkipIstio = true
	real, err := (&binaries.Builder{CacheDir: m.CacheDir, Out: out}).Ensure(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	for _, p := range binaries.Programs {
		if p.Name == "kube-apiserver" {
			script := "#!/bin/sh\necho 'E1125 seeded fault: cannot load TLS certificate' >&2\nexit 1\n"
			if err := os.WriteFile(filepath.Join(broken, p.Name), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.Symlink(real.Path(p.Name), filepath.Join(broken, p.Name)); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv(binaries.EnvBinDir, broken)
	s, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	err = m.Up(t.Context(), s, "doomed")
	if err == nil {
		t.Fatalf("up should fail when kube-apiserver cannot start\n%s", out)
	}
	for _, want := range []string{"kube-apiserver of c", "exited", "seeded fault: cannot load TLS certificate", "nothing was left behind", "logs of the failed up: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, statErr := os.Stat(m.Store.Dir("doomed")); !os.IsNotExist(statErr) {
		t.Errorf("failed up left state behind: %v", statErr)
	}
	if pids := labtest.ProcessesUnder(m.Store.Root); len(pids) > 0 {
		t.Errorf("failed up left processes running: %v", pids)
	}
	// Both clusters start in parallel; the first API server to fail stops the other, which may be
	// stopped before its own (equally broken) program wrote anything: the failing one's log is kept.
	logs, _ := filepath.Glob(filepath.Join(m.Store.Root, "failed", "doomed-*", "c*", "kube-apiserver.log"))
	if len(logs) != 2 {
		t.Errorf("the failed up's logs must be kept for the report, one per cluster: %v", logs)
	}
	seen := false
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		seen = seen || strings.Contains(string(data), "seeded fault")
	}
	if !seen {
		t.Errorf("no kept kube-apiserver log has the failure: %v", logs)
	}
}

func deploymentRunsInSubnet(t *testing.T, cs *kubernetes.Clientset, subnet string) {
	t.Helper()
	ctx := t.Context()
	labels := map[string]string{"app": "probe"}
	replicas := int32(2)
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: "registry.k8s.io/pause:3.10", Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}},
			},
		},
	}
	if _, err := cs.AppsV1().Deployments("default").Create(ctx, dep, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	svc := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default"},
		Spec:       corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80}}},
	}
	if _, err := cs.CoreV1().Services("default").Create(ctx, svc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	prefix := netip.MustParsePrefix(subnet)
	eventually(t, 30*time.Second, func() error {
		pods, err := cs.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: "app=probe"})
		if err != nil {
			return err
		}
		running := 0
		for _, p := range pods.Items {
			if p.Status.Phase != corev1.PodRunning {
				continue
			}
			ip, err := netip.ParseAddr(p.Status.PodIP)
			if err != nil || !prefix.Contains(ip) {
				return fmt.Errorf("pod %s IP %q is outside %s", p.Name, p.Status.PodIP, subnet)
			}
			running++
		}
		if running != 2 {
			return fmt.Errorf("%d of 2 pods Running", running)
		}
		return nil
	})
	eventually(t, 30*time.Second, func() error {
		slices, err := cs.DiscoveryV1().EndpointSlices("default").List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=probe"})
		if err != nil {
			return err
		}
		ready := 0
		for _, sl := range slices.Items {
			for _, ep := range sl.Endpoints {
				if ep.Conditions.Ready != nil && *ep.Conditions.Ready {
					ready++
				}
			}
		}
		if ready != 2 {
			return fmt.Errorf("EndpointSlices of probe have %d ready endpoints, want 2", ready)
		}
		return nil
	})
}

func eventually(t *testing.T, d time.Duration, f func() error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	var err error
	for {
		if err = f(); err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("after %s: %v", d, err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

func nodeReady(n corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

func assertMode0600(t *testing.T, path string) {
	t.Helper()
	st, err := os.Stat(path)
	if err != nil {
		t.Error(err)
		return
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %o, want 600", path, st.Mode().Perm())
	}
}

func assertGone(t *testing.T, pids map[string]int, ports []int) {
	t.Helper()
	for f, pid := range pids {
		if labtest.Alive(pid) {
			t.Errorf("process %d (%s) still runs", pid, f)
		}
	}
	for _, p := range ports {
		if labtest.Listening(p) {
			t.Errorf("port %d still listens", p)
		}
	}
}
