package main_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/labtest"
)

// kindLab is one lab of TestIntegrationRealKindModels: its scenario, and helpers over the CLI.
type kindLab struct {
	t              *testing.T
	bin, stateDir  string
	name, scenario string
}

func newKindLab(t *testing.T, bin, stateDir, name, image, body string) *kindLab {
	t.Helper()
	doc := fmt.Sprintf("apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nname: %s\nprovider: {name: kind, kind: {nodeImage: %s, offlineImages: true}}\n%s", name, image, body)
	path := filepath.Join(t.TempDir(), name+".yaml")
	must(t, os.WriteFile(path, []byte(doc), 0o600))
	return &kindLab{t: t, bin: bin, stateDir: stateDir, name: name, scenario: path}
}

// up brings the lab up and returns up's progress output.
func (l *kindLab) up() string {
	l.t.Helper()
	start := time.Now()
	out, stderr, code := mclabWithin(l.t, 20*time.Minute, l.bin, l.stateDir, "up", "--scenario", l.scenario)
	if code != 0 {
		l.t.Fatalf("up of %s exited %d:\n%s%s", l.name, code, out, stderr)
	}
	l.t.Logf("real kind: %s up in %s", l.name, time.Since(start).Round(time.Second))
	return stderr
}

// verify runs verify with args and returns its output, ginkgo.json, the report directory and the code.
func (l *kindLab) verify(label string, args ...string) (string, string, string, int) {
	l.t.Helper()
	dir := filepath.Join(l.t.TempDir(), label)
	start := time.Now()
	out, stderr, code := mclab(l.t, l.bin, l.stateDir, append([]string{"verify", "--name", l.name, "--report-dir", dir}, args...)...)
	l.t.Logf("verify of %s (%s): exit %d in %s", l.name, label, code, time.Since(start).Round(100*time.Millisecond))
	report, _ := os.ReadFile(filepath.Join(dir, "ginkgo.json"))
	return out + stderr, string(report), dir, code
}

// verifyUntil retries verify (a fault takes a push, a repair a restart) until it exits with want.
func (l *kindLab) verifyUntil(label string, want int, args ...string) (string, string, string) {
	l.t.Helper()
	var out, report, dir string
	code := -1
	for i := 0; i < 10 && code != want; i++ {
		if i > 0 {
			time.Sleep(3 * time.Second)
		}
		out, report, dir, code = l.verify(label, args...)
		if code != want {
			l.t.Logf("verify of %s (%s) exited %d:\n%s", l.name, label, code, verdictOf(out))
		}
	}
	if code != want {
		l.t.Fatalf("verify of %s (%s) exited %d, want %d:\n%s", l.name, label, code, want, out)
	}
	return out, report, dir
}

// memory logs what each node container of the lab uses (docker stats), the figure the issue asks for.
func (l *kindLab) memory() {
	l.t.Helper()
	out := docker(l.t, "stats", "--no-stream", "--format", "{{.Name}} {{.MemUsage}}")
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, l.name+"-") {
			l.t.Logf("real kind memory: %s", line)
		}
	}
}

func (l *kindLab) down() {
	l.t.Helper()
	if _, stderr, code := mclab(l.t, l.bin, l.stateDir, "down", "--name", l.name); code != 0 {
		l.t.Fatalf("down of %s: %s", l.name, stderr)
	}
	if got := kindContainers(l.t, l.name+"-"); len(got) != 0 {
		l.t.Errorf("containers left after down of %s: %v", l.name, got)
	}
}

// tarNames lists the entries of a .tar.gz.
func tarNames(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	must(t, err)
	tr := tar.NewReader(zr)
	var out []string
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		must(t, err)
		out = append(out, h.Name)
	}
}

// TestIntegrationRealKindModels: the other models on real kind with everything built here and no Envoy
// (offline images, proxyless samples), one lab at a time.
//
//   - primary-remote: the remote is injected by the primary's istiod through istiod-lb (a LoadBalancer
//     Service from MetalLB, as Istio's test framework exposes an external control plane), its pods
//     get xDS from the primary, and verify is conformant; seeded fault: istiod-lb deleted, so the
//     remote reaches no istiod: non-conformant naming it, with an evidence bundle holding `kind export
//     logs` (text only); up restores it.
//   - multi-network: discovery and the gateways' configuration are judged on the control plane
//     (conformant with --view control-plane); the east-west gateways cannot run (no Envoy), which the
//     full run says, naming pilot-agent's own error: inconclusive, never conformant.
//   - federated (two meshes, ca-certificates trust): conformant; the meshes stay apart. make test-long
//     only (MCLAB_TEST_LONG=1): its kind path is multi-network's with a second root, and the federation
//     itself is judged on local labs in every make test (TestIntegrationVerifyModels).
//
// The labs are independent (their own names, MetalLB pools that never overlap), so they come up side
// by side, as many at once as go test's -parallel allows (GOMAXPROCS: 2 here).
func TestIntegrationRealKindModels(t *testing.T) {
	image := realKind(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	// The offline images are built once (by the first lab that needs them), before the labs fork.
	if _, stderr, code := mclabWithin(t, 20*time.Minute, bin, stateDir, "images"); code != 0 {
		t.Fatalf("images: %s", stderr)
	}

	t.Run("primary-remote", func(t *testing.T) {
		t.Parallel()
		l := newKindLab(t, bin, stateDir, "kindpr", image, "istio: {model: primary-remote}\nclusters:\n- {name: c1}\n- {name: c2, role: remote, primary: c1}\n")
		progress := l.up()
		if !strings.Contains(progress, "Exposing istiod of c1 to its remotes through a LoadBalancer Service") {
			t.Errorf("up did not expose istiod through a LoadBalancer:\n%s", progress)
		}
		status, _, _ := mclab(t, bin, stateDir, "status", "--name", l.name)
		if !strings.Contains(status, "ready (c1)") || !strings.Contains(status, "c2=synced") {
			t.Errorf("status of the remote:\n%s", status)
		}
		l.memory()
		out, report, _ := l.verifyUntil("healthy", 0)
		if !strings.Contains(out, "Verdict: conformant (control plane and data plane") {
			t.Errorf("verdict:\n%s", out)
		}
		for _, re := range []string{`remote c2: Service istiod points at 172\.18\.\d+\.\d+ \(c1's Service istiod-lb\)`, `proxyless from c2: 20 of 20 replies, reached map\[c1:\d+ c2:\d+\]`, `remote c2: echo injected with CLUSTER_ID=c2`} {
			if !regexp.MustCompile(re).MatchString(report) {
				t.Errorf("evidence lacks %s", re)
			}
		}

		kc, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", l.name)
		c1 := client(t, strings.TrimSpace(kc), l.name+"-c1")
		must(t, c1.CoreV1().Services("istio-system").Delete(context.Background(), "istiod-lb", metav1.DeleteOptions{}))
		out, _, dir := l.verifyUntil("istiod-lb-deleted", 1)
		if !strings.Contains(out, "remote c2 reaches istiod of c1 through c1's Service istiod-lb, which does not exist") {
			t.Errorf("the finding must name the missing istiod-lb:\n%s", out)
		}
		names := strings.Join(tarNames(t, filepath.Join(dir, "evidence.tar.gz")), "\n")
		for _, want := range []string{"logs/c1/kindpr-c1-control-plane/kubelet.log", "logs/c2/kindpr-c2-control-plane/containerd.log"} {
			if !strings.Contains(names, want) {
				t.Errorf("evidence bundle lacks %s (kind export logs):\n%s", want, names)
			}
		}
		if strings.Contains(names, "/journal/") || strings.Contains(names, "/wtmp") {
			t.Errorf("evidence bundle holds binary logs that cannot be redacted")
		}
		l.up()
		l.verifyUntil("restored", 0)
		l.down()
	})

	t.Run("multi-network", func(t *testing.T) {
		t.Parallel()
		l := newKindLab(t, bin, stateDir, "kindmn", image, "clusters:\n- {name: c1, network: network1}\n- {name: c2, network: network2}\n")
		l.up()
		l.memory()
		out, report, _ := l.verifyUntil("control-plane", 0, "--view", "control-plane")
		if !strings.Contains(out, "Verdict: conformant (control plane;") {
			t.Errorf("verdict:\n%s", out)
		}
		if !strings.Contains(report, "a client in c1: other networks' echo endpoints not expected") {
			t.Errorf("the control plane judged on the proxyless sample; evidence:\n%s", grepLines(report, "EDS for a client"))
		}
		out, _, _ = l.verifyUntil("all", 2)
		for _, want := range []string{"Verdict: inconclusive", "every east-west gateway runs a Ready pod", "cannot run on offline images", "failed to initialize envoy agent"} {
			if !strings.Contains(out, want) {
				t.Errorf("a lab whose gateways cannot run must say so (%q):\n%s", want, out)
			}
		}
		l.down()
	})

	t.Run("federated", func(t *testing.T) {
		if !labtest.Long() {
			t.Skip("real kind federated: make test-long only (MCLAB_TEST_LONG=1); make test judges federation on local labs")
		}
		t.Parallel()
		l := newKindLab(t, bin, stateDir, "kindfed", image, "istio: {model: federated}\nmeshes: [{id: mesh1}, {id: mesh2}]\nclusters:\n- {name: c1, network: network1, mesh: mesh1}\n- {name: c2, network: network2, mesh: mesh2}\n")
		l.up()
		out, report, _ := l.verifyUntil("healthy", 0)
		if !strings.Contains(out, "Verdict: conformant (control plane and data plane") {
			t.Errorf("verdict:\n%s", out)
		}
		if !regexp.MustCompile(`proxyless from c1: 10 of 10 replies, reached map\[c1:10\]`).MatchString(report) {
			t.Errorf("each mesh's clients reach only their mesh; evidence:\n%s", grepLines(report, "proxyless from"))
		}
		l.down()
	})
}

// verdictOf is the verdict block of verify's output.
func verdictOf(out string) string {
	if i := strings.Index(out, "Verdict:"); i >= 0 {
		return out[i:]
	}
	return out
}
