package main_test

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/reports"
)

// TestIntegrationVerify checks a multi-network lab as status promises it (labtest.AssertIstioLab), runs
// `mclab verify` against it healthy (exit 0, data-plane
// checks skipped with their reason, every report written), then seeds one fault at a time and expects
// exit 1 with the cause named in the output and in the conformance report, converging the lab with
// `mclab up` between faults. Finally a lab whose API server is gone is inconclusive (exit 2) and still
// gets a JUnit file.
func TestIntegrationVerify(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	upOut, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "local")
	if code != 0 {
		t.Fatalf("up: %s", stderr)
	}
	// The lab is what status promises (the checks every model's lab gets, TestIntegrationVerifyModels).
	labtest.AssertIstioLab(t, stateDir, "multi-network", upOut+stderr)
	kcPath, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "multi-network")
	c1 := client(t, strings.TrimSpace(kcPath), "multi-network-c1")
	c2 := client(t, strings.TrimSpace(kcPath), "multi-network-c2")

	lastReport := ""
	verify := func(name string) (string, string, int) {
		dir := filepath.Join(t.TempDir(), name)
		lastReport = dir
		out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "multi-network", "--report-dir", dir)
		report, _ := os.ReadFile(filepath.Join(dir, "conformance-report.yaml"))
		return out + stderr, string(report), code
	}

	out, report, code := verify("healthy")
	if code != 0 {
		t.Fatalf("a healthy lab must be conformant (exit %d):\n%s", code, out)
	}
	for _, want := range []string{"verdict: conformant", "provider local runs no containers", "view: data-plane"} {
		if !strings.Contains(report, want) {
			t.Errorf("conformance report lacks %q:\n%s", want, report)
		}
	}
	// Concise by default (issue 23): a healthy 2-cluster lab in at most 25 lines, a line per spec group;
	// Ginkgo's own blocks are in the reports.
	if n := strings.Count(strings.TrimSpace(out), "\n") + 1; n > 25 || strings.Contains(out, "Report Entries") || !strings.Contains(out, "MC-FEDERATION      not-run") {
		t.Errorf("verify of a healthy lab printed %d lines (want <= 25, one per spec group, no Ginkgo blocks):\n%s", n, out)
	}
	if data, err := os.ReadFile(filepath.Join(lastReport, "ginkgo-output.txt")); err != nil || !strings.Contains(string(data), "Report Entries") {
		t.Errorf("Ginkgo's own output is not in the reports (%v)", err)
	}

	ctx := context.Background()
	verdictRules(t, bin, stateDir, kcPath)
	faults := []struct {
		name  string
		seed  func(t *testing.T)
		cause string
		also  string // a second check the fault must fail, if any
	}{
		{"remote secret deleted", func(t *testing.T) {
			must(t, c1.CoreV1().Secrets("istio-system").Delete(ctx, "istio-remote-secret-c2", metav1.DeleteOptions{}))
		}, "istiod of c1 has no remote secret for c2", ""},
		{"remote secret pointing at a dead server", func(t *testing.T) {
			s, err := c1.CoreV1().Secrets("istio-system").Get(ctx, "istio-remote-secret-c2", metav1.GetOptions{})
			must(t, err)
			kc, err := clientcmd.Load(s.Data["c2"])
			must(t, err)
			for _, cl := range kc.Clusters {
				cl.Server = "https://127.0.0.1:1"
			}
			s.Data["c2"], err = clientcmd.Write(*kc)
			must(t, err)
			_, err = c1.CoreV1().Secrets("istio-system").Update(ctx, s, metav1.UpdateOptions{})
			must(t, err)
		}, "its remote secret points at https://127.0.0.1:1, which does not answer", ""},
		{"cacerts from a different root", func(t *testing.T) {
			root, err := pki.NewRoot("rogue", 0)
			must(t, err)
			inter, err := pki.NewIntermediate(root, "c2", 0)
			must(t, err)
			s, err := c2.CoreV1().Secrets("istio-system").Get(ctx, "cacerts", metav1.GetOptions{})
			must(t, err)
			s.Data = pki.NewCACerts(inter, root).Files()
			_, err = c2.CoreV1().Secrets("istio-system").Update(ctx, s, metav1.UpdateOptions{})
			must(t, err)
		}, "c2's root (sha256 ", "istiod c2 serves a certificate that does not chain to the root in c2's cacerts Secret"},
		{"network label missing on istio-system", func(t *testing.T) {
			ns, err := c2.CoreV1().Namespaces().Get(ctx, "istio-system", metav1.GetOptions{})
			must(t, err)
			delete(ns.Labels, "topology.istio.io/network")
			_, err = c2.CoreV1().Namespaces().Update(ctx, ns, metav1.UpdateOptions{})
			must(t, err)
		}, "network label missing on c2's istio-system", ""},
		{"cluster-local setting missing from istiod's mesh config", func(t *testing.T) {
			// istiod watches the istio ConfigMap: drop serviceSettings from c1's.
			dropMeshSetting(t, c1, "serviceSettings:")
		}, "curl.sample.svc.cluster.local is cluster-local but a client in c1 gets an endpoint of c2",
			// derived by the inverse chain from istiod's mesh config in effect (/debug/mesh)
			"mesh config: c1 ConfigMap istio-system/istio data.mesh serviceSettings[].settings.clusterLocal = no serviceSettings; istiod holds shards [Kubernetes/c2] of it"},
		{"expose-services Gateway deleted", func(t *testing.T) {
			gw := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}
			must(t, dynamicClient(t, strings.TrimSpace(kcPath), "multi-network-c2").Resource(gw).Namespace("istio-system").Delete(ctx, "cross-network-gateway", metav1.DeleteOptions{}))
		}, "c2's east-west gateway has no 15443 AUTO_PASSTHROUGH listener", "no Gateway with an AUTO_PASSTHROUGH server on port 15443 in c2's istio-system"},
		{"a PeerAuthentication turns mTLS off in c2's sample namespace", func(t *testing.T) {
			applyPeerAuthentication(t, strings.TrimSpace(kcPath), "DISABLE")
		}, "a client in c2 reaches helloworld.sample.svc.cluster.local in plaintext", "turned off by PeerAuthentication sample/mtls-off in c2 (mtls.mode DISABLE)"},
		{"meshID differs in c2", func(t *testing.T) {
			editMeshConfig(t, c2, func(mesh string) string {
				if !strings.Contains(mesh, "meshId: mesh1") {
					t.Fatalf("c2's mesh config has no meshId: mesh1:\n%s", mesh)
				}
				return strings.ReplaceAll(mesh, "meshId: mesh1", "meshId: mesh-other")
			})
		}, `istiod of c2 runs mesh ID "mesh-other", but c2 belongs to mesh "mesh1"`, ""},
		{"east-west gateway without an address", func(t *testing.T) {
			svc, err := c2.CoreV1().Services("istio-system").Get(ctx, "istio-eastwestgateway", metav1.GetOptions{})
			must(t, err)
			svc.Status.LoadBalancer.Ingress = nil
			_, err = c2.CoreV1().Services("istio-system").UpdateStatus(ctx, svc, metav1.UpdateOptions{})
			must(t, err)
		}, "network2's gateway has no address", ""},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			f.seed(t)
			var out, report string
			var code int
			// istiod reacts to the fault within a second or two; the verdict must follow.
			for i := 0; i < 20; i++ {
				out, report, code = verify(strings.ReplaceAll(f.name, " ", "-"))
				if code == 1 && strings.Contains(out, f.cause) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if code != 1 {
				t.Errorf("verify exited %d, want 1 (non-conformant):\n%s", code, out)
			}
			if !strings.Contains(out, f.cause) || !strings.Contains(reasons(t, report), f.cause) {
				t.Errorf("the cause %q must be named in the output and the report:\n%s\n%s", f.cause, out, report)
			}
			if f.also != "" && !strings.Contains(reasons(t, report), f.also) {
				t.Errorf("the fault must also fail with %q:\n%s", f.also, out)
			}
			evidence := filepath.Join(lastReport, "evidence")
			if _, err := os.Stat(filepath.Join(evidence, "logs", "c1", "istiod.log")); err != nil {
				t.Errorf("the evidence bundle lacks the components' logs: %v", err)
			}
			if fi, err := os.Stat(evidence + ".tar.gz"); err != nil || fi.Size() == 0 {
				t.Errorf("no evidence tarball: %v", err)
			}
			// Every file verify wrote (reports, evidence, logs copied in): no JWT, no PEM key, no
			// base64-encoded PEM key; files 0600, folders 0700.
			if leak := grepTree(t, lastReport, "eyJ", "PRIVATE KEY-----", "LS0tLS1CRUdJTiBFQyBQUklWQVRF", "LS0tLS1CRUdJTiBQUklWQVRF", "LS0tLS1CRUdJTiBSU0EgUFJJVkFURS"); leak != "" {
				t.Errorf("the reports carry a secret: %s", leak)
			}
			if loose := looseModes(t, lastReport); loose != "" {
				t.Errorf("report files must be 0600 and folders 0700: %s", loose)
			}
			// A user's object is not mclab's to converge: remove the PeerAuthentication the fault added.
			_ = dynamicClient(t, strings.TrimSpace(kcPath), "multi-network-c2").Resource(peerAuthGVR).Namespace("sample").Delete(ctx, "mtls-off", metav1.DeleteOptions{})
			if _, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "local"); code != 0 {
				t.Fatalf("up must converge the lab after the fault: %s", stderr)
			}
			for i := 0; i < 20; i++ {
				if _, _, code = verify("healed"); code == 0 {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if code != 0 {
				t.Errorf("the converged lab is not conformant again (exit %d)", code)
			}
		})
	}

	remoteAPIServerStopped(t, bin, stateDir)

	// Inconclusive: the lab's API servers are gone.
	mclab(t, bin, stateDir, "down", "--name", "multi-network")
	dir := filepath.Join(t.TempDir(), "gone")
	out, stderr, code = mclab(t, bin, stateDir, "verify", "--name", "multi-network", "--report-dir", dir)
	if code != 2 {
		t.Errorf("verify of a missing lab must be inconclusive (2), got %d: %s%s", code, out, stderr)
	}
	if junit, err := os.ReadFile(filepath.Join(dir, "junit.xml")); err != nil || !strings.Contains(string(junit), "inconclusive") {
		t.Errorf("JUnit must be written when setup fails: %v %s", err, junit)
	}
}

var peerAuthGVR = schema.GroupVersionResource{Group: "security.istio.io", Version: "v1", Resource: "peerauthentications"}

// applyPeerAuthentication creates (or updates) sample/mtls-off in c2 with the given mode.
func applyPeerAuthentication(t *testing.T, kubeconfig, mode string) {
	t.Helper()
	must(t, peerAuthentication(dynamicClient(t, kubeconfig, "multi-network-c2"), mode))
}

// peerAuthentication applies sample/mtls-off with mode (safe from any goroutine).
func peerAuthentication(dc dynamic.Interface, mode string) error {
	pa := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "security.istio.io/v1", "kind": "PeerAuthentication",
		"metadata": map[string]any{"name": "mtls-off", "namespace": "sample"},
		"spec":     map[string]any{"mtls": map[string]any{"mode": mode}},
	}}
	data, err := pa.MarshalJSON()
	if err != nil {
		return err
	}
	_, err = dc.Resource(peerAuthGVR).Namespace("sample").Patch(context.Background(), "mtls-off", types.ApplyPatchType, data, metav1.PatchOptions{FieldManager: "mclab-test", Force: ptrTo(true)})
	return err
}

func ptrTo[T any](v T) *T { return &v }

// looseModes returns the first file (not 0600) or folder (not 0700) under dir.
func looseModes(t *testing.T, dir string) string {
	t.Helper()
	found := ""
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || found != "" {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		want := os.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			found = fmt.Sprintf("%s is %v", path, fi.Mode().Perm())
		}
		return nil
	})
	return found
}

// grepTree returns the first file under dir containing any of the strings, with the string.
func grepTree(t *testing.T, dir string, needles ...string) string {
	t.Helper()
	found := ""
	_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || found != "" {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".tar.gz") {
			// Its entries, not its compressed bytes (where any 3-byte needle turns up by chance).
			data = tarContents(t, path)
		}
		for _, n := range needles {
			if strings.Contains(string(data), n) {
				found = path + ": " + strings.TrimSpace(n)
			}
		}
		return nil
	})
	return found
}

// tarContents is every entry of a .tar.gz, concatenated.
func tarContents(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	must(t, err)
	defer f.Close()
	zr, err := gzip.NewReader(f)
	must(t, err)
	tr := tar.NewReader(zr)
	var out bytes.Buffer
	for {
		_, err := tr.Next()
		if err != nil {
			return out.Bytes()
		}
		_, _ = io.Copy(&out, tr)
		out.WriteByte('\n')
	}
}

func client(t testing.TB, kubeconfig, context string) *kubernetes.Clientset {
	t.Helper()
	return labtest.Client(t, kubeconfig, context)
}

// reasons reads the conformance report (typed) and joins every failed test's reason.
func reasons(t *testing.T, report string) string {
	t.Helper()
	var cr reports.ConformanceReport
	if err := yaml.Unmarshal([]byte(report), &cr); err != nil {
		t.Fatalf("conformance report: %v", err)
	}
	var out []string
	for _, p := range cr.Profiles {
		for _, f := range p.Core.FailedTests {
			out = append(out, f.Reason)
		}
	}
	return strings.Join(out, "\n")
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
