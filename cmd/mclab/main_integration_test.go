package main_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/labtest"
)

// TestMain builds nothing itself; it removes what the package's tests shared (the binary, the shared
// labs) once every test has run.
func TestMain(m *testing.M) {
	code := m.Run()
	stopSharedLabs()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	binErr    error
)

// buildMclab builds the CLI as users run it, once per test binary (every test runs the same program;
// a link of it costs seconds), and points KUBECONFIG at a file of the test's own: up merges the lab's
// contexts into the user's kubeconfig, a test's own, never the machine's.
func buildMclab(t testing.TB) string {
	t.Helper()
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "user-kubeconfig"))
	buildOnce.Do(func() {
		if binDir, binErr = os.MkdirTemp("", "mclab-bin-"); binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "mclab")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

func mclab(t testing.TB, bin, stateDir string, args ...string) (string, string, int) {
	t.Helper()
	return mclabWithin(t, 5*time.Minute, bin, stateDir, args...)
}

// mclabWithin runs mclab with a bound on its time and returns its outputs and exit code.
func mclabWithin(t testing.TB, d time.Duration, bin, stateDir string, args ...string) (string, string, int) {
	t.Helper()
	stdout, stderr, code, err := runMclab(d, bin, stateDir, args...)
	if err != nil {
		t.Fatal(err)
	}
	return stdout, stderr, code
}

// TestIntegrationCLI drives the user's path: up, kubeconfig, status (text and JSON), list, down.
func TestIntegrationCLI(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })

	// The user's kubeconfig has an entry of their own, which up and down must leave as it is.
	user := os.Getenv("KUBECONFIG")
	mine := "apiVersion: v1\nkind: Config\nclusters:\n- name: prod\n  cluster: {server: 'https://prod.example:6443'}\ncontexts:\n- name: prod\n  context: {cluster: prod, user: me, namespace: apps}\ncurrent-context: prod\nusers:\n- name: me\n  user: {token: t0k3n}\n"
	must(t, os.WriteFile(user, []byte(mine), 0o600))
	_, stderr, code := mclab(t, bin, stateDir, "up", "--topology", "multi-network", "--provider", "auto")
	if code != 0 {
		t.Fatalf("up exited %d:\n%s", code, stderr)
	}
	for _, want := range []string{"provider auto: chose local because", "✓ Starting clusters c1, c2", `Lab "multi-network" is ready`} {
		if !strings.Contains(stderr, want) {
			t.Errorf("up's output lacks %q:\n%s", want, stderr)
		}
	}
	kc, _, code := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "multi-network")
	if code != 0 {
		t.Fatalf("kubeconfig exited %d", code)
	}
	for _, c := range []string{"c1", "c2"} {
		cs := labtest.Client(t, strings.TrimSpace(kc), "multi-network-"+c)
		nodes, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{})
		if err != nil || len(nodes.Items) != 1 {
			t.Fatalf("%s nodes: %v %v", c, nodes, err)
		}
	}
	// As after kind create cluster: the user's kubeconfig has the lab's contexts, the first current, the
	// user's own entries kept; `mclab kubeconfig` prints the lab's config.
	if cfg, err := clientcmd.LoadFromFile(user); err != nil || cfg.CurrentContext != "multi-network-c1" || cfg.Contexts["multi-network-c2"] == nil || cfg.Contexts["prod"] == nil || cfg.Contexts["prod"].Namespace != "apps" {
		t.Errorf("the user's kubeconfig after up: %+v %v", cfg, err)
	} else {
		cs := labtest.Client(t, user, "multi-network-c2")
		if _, err := cs.CoreV1().Nodes().List(t.Context(), metav1.ListOptions{}); err != nil {
			t.Errorf("kubectl --context multi-network-c2 with the user's kubeconfig: %v", err)
		}
	}
	if printed, _, code := mclab(t, bin, stateDir, "kubeconfig", "--name", "multi-network"); code != 0 || !strings.Contains(printed, "name: multi-network-c2") || !strings.Contains(printed, "client-key-data") {
		t.Errorf("kubeconfig prints the config (exit %d)", code)
	}
	out, _, code := mclab(t, bin, stateDir, "status", "--name", "multi-network", "-o", "json")
	if code != 0 {
		t.Fatalf("status exited %d: %s", code, out)
	}
	var st struct {
		Phase    string `json:"phase"`
		Clusters []struct {
			Name, Network string
			Ready         bool
		} `json:"clusters"`
	}
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatalf("status -o json: %v\n%s", err, out)
	}
	if st.Phase != "Ready" || len(st.Clusters) != 2 || !st.Clusters[0].Ready || st.Clusters[1].Network != "network2" {
		t.Errorf("status: %+v", st)
	}
	out, _, _ = mclab(t, bin, stateDir, "status", "--name", "multi-network")
	if !strings.Contains(out, "kube-apiserver running") || !strings.Contains(out, "provider local runs no containers") {
		t.Errorf("status text:\n%s", out)
	}
	out, _, _ = mclab(t, bin, stateDir, "list")
	if !strings.Contains(out, "multi-network") || !strings.Contains(out, "Ready") {
		t.Errorf("list:\n%s", out)
	}
	_, stderr, code = mclab(t, bin, stateDir, "down", "--name", "multi-network")
	if code != 0 || !strings.Contains(stderr, `Deleted lab "multi-network"`) {
		t.Fatalf("down exited %d: %s", code, stderr)
	}
	if pids := labtest.ProcessesUnder(stateDir); len(pids) > 0 {
		t.Errorf("down left processes: %v", pids)
	}
	if cfg, err := clientcmd.LoadFromFile(user); err != nil || len(cfg.Contexts) != 1 || cfg.Contexts["prod"] == nil || cfg.Clusters["prod"].Server != "https://prod.example:6443" || cfg.AuthInfos["me"].Token != "t0k3n" || cfg.CurrentContext != "" {
		t.Errorf("down must remove exactly the lab's entries from the user's kubeconfig: %+v %v", cfg, err)
	}
	_, _, code = mclab(t, bin, stateDir, "status", "--name", "multi-network")
	if code == 0 {
		t.Error("status of a deleted lab must fail")
	}
}

// TestIntegrationInterruptedUp sends SIGINT to `mclab up` while its control planes start and checks
// that it exits non-zero, says it was interrupted, and leaves no process or state behind.
func TestIntegrationInterruptedUp(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	// Make sure the binaries are cached, so the interrupt lands on cluster start-up, not on the build.
	if _, stderr, code := mclab(t, bin, stateDir, "tools"); code != 0 {
		t.Fatalf("tools: %s", stderr)
	}

	cmd := exec.Command(bin, "up", "--topology", "single-network", "--provider", "local", "--name", "interrupted")
	cmd.Env = append(os.Environ(), "MCLAB_STATE_DIR="+stateDir)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var output strings.Builder
	lines := bufio.NewScanner(stderr)
	for lines.Scan() {
		output.WriteString(lines.Text() + "\n")
		if strings.Contains(lines.Text(), "Starting clusters") {
			break
		}
	}
	// Wait until processes of the lab run, then interrupt.
	labDir := filepath.Join(stateDir, "labs", "interrupted")
	deadline := time.Now().Add(20 * time.Second)
	for len(labtest.LabPIDs(t, labDir)) < 2 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	pids := labtest.LabPIDs(t, labDir)
	if len(pids) < 2 {
		t.Fatalf("no lab processes started:\n%s", output.String())
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	for lines.Scan() {
		output.WriteString(lines.Text() + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("interrupted up should exit non-zero, got %v\n%s", err, output.String())
	}
	if !strings.Contains(output.String(), "interrupted") || !strings.Contains(output.String(), "nothing was left behind") {
		t.Errorf("output should say it was interrupted and cleaned up:\n%s", output.String())
	}
	for f, pid := range pids {
		if labtest.Alive(pid) {
			t.Errorf("process %d (%s) survived the interrupt", pid, f)
		}
	}
	if left := labtest.ProcessesUnder(stateDir); len(left) > 0 {
		t.Errorf("processes left: %v", left)
	}
	if _, err := os.Stat(labDir); !os.IsNotExist(err) {
		t.Errorf("interrupted up left %s", labDir)
	}
}
