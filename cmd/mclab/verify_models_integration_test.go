package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationVerifyModels: every model on both topologies comes up healthy as `mclab status`
// promises (labtest.AssertIstioLab: istiods ready, remotes synced, gateways with addresses, one root per
// mesh, samples injected by istiod's webhook, no token leaked, keys 0600), `mclab verify` is conformant
// (data-plane checks skipped with their reason), and the model-specific checks fail with the right
// diagnosis when their property is broken: a federated import removed, a remote's injector gone. The
// labs are independent, so they run side by side (go test's -parallel: GOMAXPROCS); single-network is
// the shared lab that TestIntegrationVerifyExistingClusters reads too.
func TestIntegrationVerifyModels(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	ctx := context.Background()
	type fault struct {
		seed  func(t *testing.T, kubeconfig, labDir string)
		cause string
	}
	for _, tc := range []struct {
		scenario string
		faults   []fault
	}{
		{scenario: "single-network"},
		{scenario: "single-network-primary-remote"},
		{scenario: "multi-network-primary-remote", faults: []fault{{func(t *testing.T, kc, _ string) {
			c2 := client(t, kc, "multi-network-primary-remote-c2")
			must(t, c2.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector", metav1.DeleteOptions{}))
			must(t, c2.CoreV1().Pods("sample").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=curl"}))
		}, "curl in remote c2 was not injected"}}},
		{scenario: "multi-network-federated", faults: []fault{{func(t *testing.T, kc, _ string) {
			dc := dynamicClient(t, kc, "multi-network-federated-c2")
			se := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
			must(t, dc.Resource(se).Namespace("sample").Delete(ctx, "httpbin-from-mesh1", metav1.DeleteOptions{}))
		}, "gets no endpoint for httpbin.sample.svc.cluster.local exported by mesh1: visibility: c2 ServiceEntry sample/httpbin-from-mesh1 spec.hosts = absent"}, {func(t *testing.T, kc, _ string) {
			// The federation trust bundle loses the other mesh's root: c1's istiod (it watches the istio
			// ConfigMap) pushes a PCDS bundle without mesh2's root.
			dropMeshSetting(t, client(t, kc, "multi-network-federated-c1"), "caCertificates:")
		}, "the trust bundle istiod of c1 pushes lacks mesh mesh2's root"}}},
		{scenario: "federated-shared-root"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			t.Parallel()
			stateDir := stateDir
			if len(tc.faults) == 0 && tc.scenario == "single-network" {
				stateDir = useSharedLab(t, bin, tc.scenario).stateDir
			} else {
				out, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", tc.scenario, "--provider", "local")
				if code != 0 {
					t.Fatalf("up: %s", stderr)
				}
				defer mclab(t, bin, stateDir, "down", "--name", tc.scenario)
				labtest.AssertIstioLab(t, stateDir, tc.scenario, out+stderr)
			}
			dir := filepath.Join(t.TempDir(), "healthy")
			out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", tc.scenario, "--report-dir", dir)
			if code != 0 {
				t.Fatalf("verify of a healthy %s exited %d:\n%s%s", tc.scenario, code, out, stderr)
			}
			report, _ := os.ReadFile(filepath.Join(dir, "conformance-report.yaml"))
			if !strings.Contains(string(report), "provider local runs no containers") {
				t.Errorf("data-plane checks must be reported as skipped with the reason:\n%s", report)
			}
			if !strings.Contains(out, "Verdict: conformant (control plane; data plane not run: provider local runs no containers") {
				t.Errorf("the verdict must name its scope:\n%s", out)
			}
			kc, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", tc.scenario)
			labDir := filepath.Join(stateDir, "labs", tc.scenario)
			for i, f := range tc.faults {
				f.seed(t, strings.TrimSpace(kc), labDir)
				for i := 0; i < 20; i++ {
					out, stderr, code = mclab(t, bin, stateDir, "verify", "--name", tc.scenario, "--report-dir", filepath.Join(t.TempDir(), "fault"))
					if code == 1 && strings.Contains(out, f.cause) {
						break
					}
					time.Sleep(500 * time.Millisecond)
				}
				if code != 1 || !strings.Contains(out, f.cause) {
					t.Errorf("with the fault, verify must exit 1 naming %q; got %d:\n%s%s", f.cause, code, out, stderr)
				}
				if i == len(tc.faults)-1 {
					break // the lab goes down next
				}
				if _, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", tc.scenario, "--provider", "local"); code != 0 {
					t.Fatalf("up must converge the lab after the fault: %s", stderr)
				}
				if !eventuallyConformant(t, bin, stateDir, tc.scenario) {
					t.Errorf("the converged lab is not conformant again")
				}
			}
		})
	}
}

// dynamicClient talks to one context of a lab's kubeconfig.
func dynamicClient(t testing.TB, kubeconfig, context string) dynamic.Interface {
	t.Helper()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	must(t, err)
	dc, err := dynamic.NewForConfig(cfg)
	must(t, err)
	return dc
}

// dropMeshSetting removes a top-level setting (and its indented value) from an istiod mesh config
// file; istiod watches the file and reloads it.
func dropMeshSetting(t *testing.T, cs kubernetes.Interface, key string) {
	t.Helper()
	editMeshConfig(t, cs, func(mesh string) string {
		var kept []string
		skip := false
		for _, line := range strings.Split(mesh, "\n") {
			if strings.HasPrefix(line, key) {
				skip = true
				continue
			}
			if skip && (strings.HasPrefix(line, " ") || strings.HasPrefix(line, "-")) {
				continue
			}
			skip = false
			kept = append(kept, line)
		}
		if len(kept) == len(strings.Split(mesh, "\n")) {
			t.Fatalf("the mesh config has no %s:\n%s", key, mesh)
		}
		return strings.Join(kept, "\n")
	})
}

// editMeshConfig edits the mesh config as a user does: the mesh key of ConfigMap istio-system/istio,
// which istiod watches (on the local provider too).
func editMeshConfig(t *testing.T, cs kubernetes.Interface, edit func(string) string) {
	t.Helper()
	ctx := context.Background()
	cm, err := cs.CoreV1().ConfigMaps("istio-system").Get(ctx, "istio", metav1.GetOptions{})
	must(t, err)
	cm.Data["mesh"] = edit(cm.Data["mesh"])
	_, err = cs.CoreV1().ConfigMaps("istio-system").Update(ctx, cm, metav1.UpdateOptions{})
	must(t, err)
}

// eventuallyConformant runs verify until it exits 0 (a converged lab settles within seconds).
func eventuallyConformant(t *testing.T, bin, stateDir, lab string) bool {
	t.Helper()
	for i := 0; i < 20; i++ {
		if _, _, code := mclab(t, bin, stateDir, "verify", "--name", lab, "--report-dir", filepath.Join(t.TempDir(), "healed")); code == 0 {
			return true
		}
		time.Sleep(500 * time.Millisecond)
	}
	return false
}
