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
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationVerifyModels: `mclab verify` is conformant for every model on both topologies
// (data-plane checks skipped with their reason), and the model-specific checks fail with the right
// diagnosis when their property is broken: a federated import removed, a remote's injector gone.
func TestIntegrationVerifyModels(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	ctx := context.Background()
	for _, tc := range []struct {
		scenario string
		fault    func(t *testing.T, kubeconfig string)
		cause    string
	}{
		{scenario: "single-network"},
		{scenario: "single-network-primary-remote"},
		{scenario: "multi-network-primary-remote", fault: func(t *testing.T, kc string) {
			c2 := client(t, kc, "multi-network-primary-remote-c2")
			must(t, c2.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(ctx, "istio-sidecar-injector", metav1.DeleteOptions{}))
			must(t, c2.CoreV1().Pods("sample").DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: "app=curl"}))
		}, cause: "curl in remote c2 was not injected"},
		{scenario: "multi-network-federated", fault: func(t *testing.T, kc string) {
			cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: kc},
				&clientcmd.ConfigOverrides{CurrentContext: "multi-network-federated-c2"}).ClientConfig()
			must(t, err)
			dc, err := dynamic.NewForConfig(cfg)
			must(t, err)
			se := schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "serviceentries"}
			must(t, dc.Resource(se).Namespace("sample").Delete(ctx, "httpbin-from-mesh1", metav1.DeleteOptions{}))
		}, cause: "gets no endpoint for httpbin.sample.svc.cluster.local exported by mesh1"},
		{scenario: "federated-shared-root"},
	} {
		t.Run(tc.scenario, func(t *testing.T) {
			if _, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", tc.scenario, "--provider", "local"); code != 0 {
				t.Fatalf("up: %s", stderr)
			}
			defer mclab(t, bin, stateDir, "down", "--name", tc.scenario)
			dir := filepath.Join(t.TempDir(), "healthy")
			out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", tc.scenario, "--report-dir", dir)
			if code != 0 {
				t.Fatalf("verify of a healthy %s exited %d:\n%s%s", tc.scenario, code, out, stderr)
			}
			report, _ := os.ReadFile(filepath.Join(dir, "conformance-report.yaml"))
			if !strings.Contains(string(report), "provider local runs no containers") {
				t.Errorf("data-plane checks must be reported as skipped with the reason:\n%s", report)
			}
			if tc.fault == nil {
				return
			}
			kc, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--name", tc.scenario)
			tc.fault(t, strings.TrimSpace(kc))
			for i := 0; i < 20; i++ {
				out, stderr, code = mclab(t, bin, stateDir, "verify", "--name", tc.scenario, "--report-dir", filepath.Join(t.TempDir(), "fault"))
				if code == 1 && strings.Contains(out, tc.cause) {
					break
				}
				time.Sleep(500 * time.Millisecond)
			}
			if code != 1 || !strings.Contains(out, tc.cause) {
				t.Errorf("with the fault, verify must exit 1 naming %q; got %d:\n%s%s", tc.cause, code, out, stderr)
			}
		})
	}
}
