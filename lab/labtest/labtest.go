// Package labtest has helpers for tests that bring real labs up: a Manager on a temporary state root
// that shares the upstream binary cache, clients per cluster, and process and port checks.
package labtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/state"
)

// SkipIfShort skips integration tests and benchmarks under -short.
func SkipIfShort(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("integration: runs real local clusters; skipped with -short")
	}
}

// EnvLong names the variable that turns on the exhaustive matrix (make test-long, the nightly job).
const EnvLong = "MCLAB_TEST_LONG"

// Long reports whether the exhaustive matrix runs: `make test-long` sets MCLAB_TEST_LONG=1. `make test`
// runs every real test with the cheaper cut of its matrix (one seed per exercise and lab, the kind
// models that cover each provider path once); the long run adds the rest.
func Long() bool {
	v := os.Getenv(EnvLong)
	return v != "" && v != "0" && v != "false"
}

// SyncBuffer is a bytes.Buffer safe for concurrent writers (parallel cluster steps).
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written.
func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Manager returns a lab manager on a fresh state root, with the shared binary cache. When the test
// ends it deletes every lab left under that root.
func Manager(tb testing.TB) (*lab.Manager, *SyncBuffer) {
	tb.Helper()
	cache, err := binaries.DefaultCacheDir()
	if err != nil {
		tb.Fatal(err)
	}
	out := &SyncBuffer{}
	m := &lab.Manager{Store: state.Store{Root: StateRoot(tb)}, CacheDir: cache, Out: out, Runner: exec.OS{}}
	tb.Cleanup(func() {
		names, _ := m.Store.List()
		for _, n := range names {
			if _, err := m.Down(context.Background(), n); err != nil {
				tb.Errorf("cleanup: down %s: %v", n, err)
			}
		}
	})
	return m, out
}

// StateRoot is a temporary state root.
func StateRoot(tb testing.TB) string {
	tb.Helper()
	dir, err := os.MkdirTemp("", "mclab-state-")
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Client returns a clientset for a context of the lab's merged kubeconfig.
func Client(tb testing.TB, kubeconfig, context string) *kubernetes.Clientset {
	tb.Helper()
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig},
		&clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		tb.Fatalf("kubeconfig %s context %s: %v", kubeconfig, context, err)
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return cs
}

// RSS returns a process's resident set size in bytes (0 when it is gone).
func RSS(pid int) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, _ := strconv.ParseInt(f[0], 10, 64)
				return kb * 1024
			}
		}
	}
	return 0
}

// Alive reports whether a PID exists and is not a zombie.
func Alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	return i > 0 && len(s) > i+2 && s[i+2] != 'Z'
}

// Listening reports whether something accepts connections on 127.0.0.1:port.
func Listening(port int) bool {
	c, err := net.Dial("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// LabPIDs reads every PID a lab's local provider recorded, by file.
func LabPIDs(tb testing.TB, labDir string) map[string]int {
	tb.Helper()
	files, _ := filepath.Glob(filepath.Join(labDir, "local", "*", "run", "*.json"))
	out := map[string]int{}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		var rec struct {
			PID int `json:"pid"`
		}
		if err := json.Unmarshal(data, &rec); err == nil && rec.PID > 0 {
			out[f] = rec.PID
		}
	}
	return out
}

// LabPorts reads every port a lab's local provider allocated.
func LabPorts(tb testing.TB, labDir string) []int {
	tb.Helper()
	data, err := os.ReadFile(filepath.Join(labDir, "local", "ports.json"))
	if err != nil {
		return nil
	}
	var lp map[string]map[string]int
	if err := json.Unmarshal(data, &lp); err != nil {
		tb.Fatal(err)
	}
	var out []int
	for _, ps := range lp {
		for _, p := range ps {
			out = append(out, p)
		}
	}
	return out
}

// ProcessesUnder returns the live processes whose command line mentions dir (every lab process is
// started with paths under its state root), as pid -> command line.
func ProcessesUnder(dir string) map[int]string {
	out := map[int]string{}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		cmd := strings.ReplaceAll(string(data), "\x00", " ")
		if strings.Contains(cmd, dir) && Alive(pid) {
			out[pid] = cmd
		}
	}
	return out
}

// Tunnel is a provider.PodTunnel for labs whose pods run no containers: a port-forward to istiod's
// pod lands on the istiod process that serves the cluster (what a kubelet's port-forward would reach
// in a pod), and exec fails as it would without a container. It records every call.
type Tunnel struct {
	// Istiods are the istiod processes' endpoints, by cluster.
	Istiods map[string]provider.IstiodEndpoint
	// Fail, when set, fails every port-forward with this text.
	Fail string

	mu    sync.Mutex
	Calls []string
}

// PortForward implements provider.PodTunnel.
func (t *Tunnel) PortForward(_ context.Context, cluster, namespace, selector string, ports []int) (map[int]string, func(), error) {
	t.mu.Lock()
	t.Calls = append(t.Calls, fmt.Sprintf("port-forward %s %s/%s %v", cluster, namespace, selector, ports))
	t.mu.Unlock()
	if t.Fail != "" {
		return nil, nil, errors.New(t.Fail)
	}
	ep, ok := t.Istiods[cluster]
	if !ok || namespace != "istio-system" || selector != "app=istiod" {
		return nil, nil, fmt.Errorf("no pod matches %s in %s/%s", selector, cluster, namespace)
	}
	byPort := map[int]string{15010: ep.XDS, 15012: ep.XDSTLS, 15014: ep.Monitoring, 8080: ep.Debug}
	out := map[int]string{}
	for _, p := range ports {
		if byPort[p] == "" {
			return nil, nil, fmt.Errorf("istiod of %s does not listen on %d", cluster, p)
		}
		out[p] = byPort[p]
	}
	return out, func() {}, nil
}

// Exec implements provider.PodTunnel: there are no containers to run commands in.
func (t *Tunnel) Exec(_ context.Context, cluster, namespace, pod, container string, cmd []string) (string, string, error) {
	t.mu.Lock()
	t.Calls = append(t.Calls, fmt.Sprintf("exec %s %s/%s %s", cluster, namespace, pod, container))
	t.mu.Unlock()
	return "", "", errors.New("pods run no containers here")
}

// CallsWithPrefix returns the recorded calls that start with prefix.
func (t *Tunnel) CallsWithPrefix(prefix string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []string
	for _, c := range t.Calls {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}
