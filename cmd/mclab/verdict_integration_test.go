package main_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/labtest"
)

// labPID is the PID of a component of a cluster of the lab under test (local provider).
func labPID(t *testing.T, stateDir, lab, cluster, component string) int {
	t.Helper()
	labDir := filepath.Join(stateDir, "labs", lab)
	pid := labtest.LabPIDs(t, labDir)[filepath.Join(labDir, "local", cluster, "run", component+".json")]
	if pid == 0 || !labtest.Alive(pid) {
		t.Fatalf("no running %s for %s", component, cluster)
	}
	return pid
}

// verdictRules checks each rule of suites/README.md "Verdicts" against the healthy multi-network lab,
// through the real binary.
func verdictRules(t *testing.T, bin, stateDir, kcPath string) {
	run := func(args ...string) (string, string, int) {
		dir := filepath.Join(t.TempDir(), "r")
		out, stderr, code := mclab(t, bin, stateDir, append([]string{"verify", "--name", "multi-network", "--report-dir", dir}, args...)...)
		report, _ := os.ReadFile(filepath.Join(dir, "conformance-report.yaml"))
		return out + stderr, string(report), code
	}
	t.Run("a label filter that selects no spec is inconclusive", func(t *testing.T) {
		out, report, code := run("--label-filter", "MC-MTSL")
		if code != 2 || !strings.Contains(out, "the label filter selects no spec") || !strings.Contains(report, "verdict: inconclusive") {
			t.Errorf("exit %d, want 2 naming the empty selection and a report:\n%s\n%s", code, out, report)
		}
	})
	t.Run("an invalid label filter is a usage error, before Ginkgo", func(t *testing.T) {
		out, _, code := run("--label-filter", "MC-MTLS &&")
		if code != 2 || !strings.Contains(out, "is not a valid Ginkgo label filter") || !strings.Contains(out, "Usage: mclab verify") || !strings.Contains(out, "labels: MC-DISCOVERY") {
			t.Errorf("exit %d, want 2 with the usage line and the labels:\n%s", code, out)
		}
	})
	t.Run("a mistyped flag is a usage error", func(t *testing.T) {
		out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "multi-network", "--lable-filter", "MC-MTLS")
		if code != 2 || !strings.Contains(stderr, "unknown flag: --lable-filter") || !strings.Contains(stderr, "Usage:") {
			t.Errorf("exit %d, want 2:\n%s%s", code, out, stderr)
		}
	})
	t.Run("a negative window is a usage error naming the flag", func(t *testing.T) {
		out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "multi-network", "--window", "-1s")
		if code != 2 || !strings.Contains(stderr, "--window -1s: give a positive duration") {
			t.Errorf("exit %d, want 2 naming --window:\n%s%s", code, out, stderr)
		}
	})
	t.Run("a Required spec of the scope that was skipped makes the run inconclusive", func(t *testing.T) {
		out, report, code := run("--view", "data-plane")
		if code != 2 || !strings.Contains(out, "was not run: data-plane check") || !strings.Contains(out, "inconclusive (data plane") {
			t.Errorf("exit %d, want 2 naming the skipped Required specs:\n%s\n%s", code, out, report)
		}
	})
	t.Run("an infrastructure error mid-check is inconclusive, with the cause", func(t *testing.T) {
		must(t, syscall.Kill(labPID(t, stateDir, "multi-network", "c2", "istiod"), syscall.SIGKILL))
		out, _, code := run("--label-filter", "MC-DISCOVERY")
		if code != 2 || !strings.Contains(out, "istiod of c2") || !strings.Contains(out, "connection refused") {
			t.Errorf("exit %d, want 2 naming istiod of c2:\n%s", code, out)
		}
		if _, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "local"); code != 0 {
			t.Fatalf("up must restart istiod: %s", stderr)
		}
		if !eventuallyConformant(t, bin, stateDir, "multi-network") {
			t.Errorf("not conformant after up restarted istiod")
		}
	})
	t.Run("a flapping safety property is non-conformant", func(t *testing.T) {
		// mTLS is off 2 s in every 3 s: the old retry passed on the first success; a safety property
		// judged over its window must fail. The window is set to 3 s (--window), one whole flap: the
		// local default (1 s) could fall into the 1 s that mTLS is on.
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			dc := dynamicClient(t, strings.TrimSpace(kcPath), "multi-network-c2")
			for ctx.Err() == nil {
				_ = peerAuthentication(dc, "DISABLE")
				sleep(ctx, 2*time.Second)
				_ = dc.Resource(peerAuthGVR).Namespace("sample").Delete(context.Background(), "mtls-off", metav1.DeleteOptions{})
				sleep(ctx, time.Second)
			}
			_ = dc.Resource(peerAuthGVR).Namespace("sample").Delete(context.Background(), "mtls-off", metav1.DeleteOptions{})
		}()
		time.Sleep(500 * time.Millisecond)
		out, report, code := run("--label-filter", "MC-MTLS && control-plane", "--window", "3s")
		cancel()
		wg.Wait()
		if code != 1 || !strings.Contains(out, "in plaintext") || !strings.Contains(report, "violated at attempt") {
			t.Errorf("exit %d, want 1 with the violation and its attempts:\n%s\n%s", code, out, report)
		}
		if !eventuallyConformant(t, bin, stateDir, "multi-network") {
			t.Errorf("not conformant once mTLS stays on")
		}
	})
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// remoteAPIServerStopped: c2's API server stops after istiod of c1 synced it (istiod keeps saying
// "synced"); verify must name the server within 60 s, with exit 1 or 2, never hang. Then up restarts it.
func remoteAPIServerStopped(t *testing.T, bin, stateDir string) {
	t.Run("a remote API server stopped after istiod synced", func(t *testing.T) {
		must(t, syscall.Kill(labPID(t, stateDir, "multi-network", "c2", "kube-apiserver"), syscall.SIGKILL))
		start := time.Now()
		out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "multi-network", "--report-dir", filepath.Join(t.TempDir(), "apiserver"))
		took := time.Since(start)
		t.Logf("verify with c2's API server stopped: exit %d in %s", code, took.Round(time.Second))
		if took > 60*time.Second {
			t.Errorf("verify took %s with a stopped API server, want under 60 s", took)
		}
		if code != 1 || !strings.Contains(out, "c2's API server at https://127.0.0.1:") || !strings.Contains(out, "does not answer with the credentials of c1's remote secret") {
			t.Errorf("exit %d, want 1 naming c2's API server:\n%s%s", code, out, stderr)
		}
		if _, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "local"); code != 0 {
			t.Fatalf("up must restart the API server: %s", stderr)
		}
		if !eventuallyConformant(t, bin, stateDir, "multi-network") {
			t.Errorf("not conformant after up restarted the API server")
		}
	})
}
