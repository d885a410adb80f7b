// Package kindtest is a fake kind.Runtime: it records every call, keeps kind clusters as names and node
// lists, and answers docker commands as Docker would. Tests run the kind provider's whole path (and
// mclab's up/down with it) against it on machines without Docker.
package kindtest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"mclab.dev/mclab/lab/exec"
)

// Runtime is the fake.
type Runtime struct {
	// NCPU and MemTotal are what `docker info` reports (default 8 CPUs, 16 GiB).
	NCPU     int
	MemTotal uint64
	// Subnets is what `docker network inspect kind` reports (default "172.18.0.0/16 fc00:f853:ccd:e793::/64").
	Subnets string
	// DockerDown makes every docker command fail as with a stopped daemon.
	DockerDown bool
	// Fail makes a call fail when its recorded form starts with the key (e.g. "create lab-c2",
	// "docker exec lab-c1-control-plane ip route"); the value is the error's text.
	Fail map[string]string
	// Sysctls are the host's kernel settings (default: what kind's docs ask for).
	Sysctls map[string]int
	// OnCreate, when set, runs at the start of every CreateCluster (e.g. to interrupt an up).
	OnCreate func(name string)
	// Kubeconfigs, when set for a cluster name, is returned as both its internal and external
	// kubeconfig (e.g. a real API server standing in for the kind node).
	Kubeconfigs map[string]string

	mu       sync.Mutex
	calls    []string
	clusters map[string][]string
	ips      map[string]string
}

// Calls returns every recorded call, in order.
func (r *Runtime) Calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// CallsWithPrefix returns the recorded calls that start with prefix.
func (r *Runtime) CallsWithPrefix(prefix string) []string {
	var out []string
	for _, c := range r.Calls() {
		if strings.HasPrefix(c, prefix) {
			out = append(out, c)
		}
	}
	return out
}

// Clusters returns the kind clusters that exist, sorted.
func (r *Runtime) Clusters() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for n := range r.clusters {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

func (r *Runtime) record(call string) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, call)
	for prefix, msg := range r.Fail {
		if strings.HasPrefix(call, prefix) {
			return fmt.Errorf("%s", msg)
		}
	}
	return nil
}

// ip gives every container a stable address on the kind network, in creation order.
func (r *Runtime) ip(container string) string {
	if r.ips == nil {
		r.ips = map[string]string{}
	}
	if ip, ok := r.ips[container]; ok {
		return ip
	}
	ip := fmt.Sprintf("172.18.0.%d", len(r.ips)+2)
	r.ips[container] = ip
	return ip
}

// Docker implements kind.Runtime.
func (r *Runtime) Docker(ctx context.Context, args ...string) ([]byte, error) {
	call := "docker " + strings.Join(args, " ")
	if r.DockerDown {
		r.record(call)
		return []byte("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?"), &exec.RunError{Command: append([]string{"docker"}, args...), Err: fmt.Errorf("exit status 1")}
	}
	if err := r.record(call); err != nil {
		return []byte(err.Error()), &exec.RunError{Command: append([]string{"docker"}, args...), Err: fmt.Errorf("exit status 1")}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	switch {
	case len(args) > 0 && args[0] == "version":
		return []byte("28.1.1\n"), nil
	case len(args) > 0 && args[0] == "info":
		info := map[string]any{"NCPU": r.NCPU, "MemTotal": r.MemTotal, "DockerRootDir": "", "OSType": "linux", "Name": "fake"}
		if r.NCPU == 0 {
			info["NCPU"] = 8
		}
		if r.MemTotal == 0 {
			info["MemTotal"] = uint64(16 << 30)
		}
		return json.Marshal(info)
	case len(args) > 1 && args[0] == "network" && args[1] == "inspect":
		if len(r.clusters) == 0 {
			return []byte("Error response from daemon: network kind not found"), &exec.RunError{Command: args, Err: fmt.Errorf("exit status 1")}
		}
		if r.Subnets == "" {
			return []byte("172.18.0.0/16 fc00:f853:ccd:e793::/64 \n"), nil
		}
		return []byte(r.Subnets + "\n"), nil
	case len(args) > 0 && args[0] == "inspect":
		container := args[len(args)-1]
		for _, nodes := range r.clusters {
			if slices.Contains(nodes, container) {
				return []byte(r.ip(container) + "\n"), nil
			}
		}
		return []byte("Error: No such object: " + container), &exec.RunError{Command: args, Err: fmt.Errorf("exit status 1")}
	}
	return nil, nil
}

// ListClusters implements kind.Runtime.
func (r *Runtime) ListClusters() ([]string, error) {
	if r.DockerDown {
		return nil, fmt.Errorf("failed to list clusters: docker does not answer")
	}
	if err := r.record("list"); err != nil {
		return nil, err
	}
	return r.Clusters(), nil
}

// CreateCluster implements kind.Runtime: the cluster's nodes exist afterwards, even when the create
// fails (as a kind create that fails after its containers started), and kind's kubeconfig is written.
func (r *Runtime) CreateCluster(name string, cfg *v1alpha4.Cluster, kubeconfigPath string, wait time.Duration) error {
	if r.OnCreate != nil {
		r.OnCreate(name)
	}
	err := r.record("create " + name)
	r.mu.Lock()
	if r.clusters == nil {
		r.clusters = map[string][]string{}
	}
	var nodes []string
	workers := 0
	for _, n := range cfg.Nodes {
		switch n.Role {
		case v1alpha4.ControlPlaneRole:
			nodes = append(nodes, name+"-control-plane")
		case v1alpha4.WorkerRole:
			workers++
			if workers == 1 {
				nodes = append(nodes, name+"-worker")
			} else {
				nodes = append(nodes, fmt.Sprintf("%s-worker%d", name, workers))
			}
		}
	}
	r.clusters[name] = nodes
	for _, n := range nodes {
		r.ip(n)
	}
	r.mu.Unlock()
	if err != nil {
		return err
	}
	kc, _ := r.KubeConfig(name, false)
	if err := os.MkdirAll(filepath.Dir(kubeconfigPath), 0o700); err != nil {
		return err
	}
	return os.WriteFile(kubeconfigPath, []byte(kc), 0o600)
}

// DeleteCluster implements kind.Runtime.
func (r *Runtime) DeleteCluster(name, kubeconfigPath string) error {
	if err := r.record("delete " + name); err != nil {
		return err
	}
	r.mu.Lock()
	delete(r.clusters, name)
	r.mu.Unlock()
	return nil
}

// KubeConfig implements kind.Runtime.
func (r *Runtime) KubeConfig(name string, internal bool) (string, error) {
	r.mu.Lock()
	_, ok := r.clusters[name]
	backing := r.Kubeconfigs[name]
	r.mu.Unlock()
	if !ok {
		return "", fmt.Errorf("kind cluster %s does not exist", name)
	}
	if backing != "" {
		return backing, nil
	}
	server := "https://127.0.0.1:4" + fmt.Sprintf("%04d", len(name))
	if internal {
		server = "https://" + name + "-control-plane:6443"
	}
	return fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
- name: kind-%[1]s
  cluster: {server: %[2]q, insecure-skip-tls-verify: true}
users:
- name: kind-%[1]s
  user: {token: fake-token}
contexts:
- name: kind-%[1]s
  context: {cluster: kind-%[1]s, user: kind-%[1]s}
current-context: kind-%[1]s
`, name, server), nil
}

// ListNodes implements kind.Runtime.
func (r *Runtime) ListNodes(name string) ([]string, error) {
	if err := r.record("nodes " + name); err != nil {
		return nil, err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.clusters[name]), nil
}

// LoadImage implements kind.Runtime.
func (r *Runtime) LoadImage(ctx context.Context, image string, clusters []string) error {
	return r.record("load " + image + " into " + strings.Join(clusters, ","))
}

// CollectLogs implements kind.Runtime: a file per node, as `kind export logs` writes a directory each.
func (r *Runtime) CollectLogs(name, dir string) error {
	if err := r.record("logs " + name); err != nil {
		return err
	}
	nodes, _ := r.ListNodes(name)
	for _, n := range nodes {
		if err := os.MkdirAll(filepath.Join(dir, n), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, n, "kubelet.log"), []byte("fake kubelet log of "+n+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// Sysctl implements kind.Runtime.
func (r *Runtime) Sysctl(key string) (int, error) {
	if v, ok := r.Sysctls[key]; ok {
		return v, nil
	}
	return map[string]int{"fs.inotify.max_user_watches": 524288, "fs.inotify.max_user_instances": 512}[key], nil
}
