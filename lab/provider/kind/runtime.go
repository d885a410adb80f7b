package kind

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"
	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"mclab.dev/mclab/lab/exec"
)

// Runtime is everything the kind provider does to the container runtime: kind's cluster lifecycle
// (through kind's Go API, never the kind binary) and docker commands. The provider does nothing to
// Docker except through it, so the whole kind path runs in tests against a fake that records calls and
// answers like Docker.
type Runtime interface {
	// Docker runs the docker CLI and returns its combined output.
	Docker(ctx context.Context, args ...string) ([]byte, error)
	// ListClusters lists kind clusters by name.
	ListClusters() ([]string, error)
	// CreateCluster creates a kind cluster from cfg and waits up to wait for its nodes to be Ready; kind
	// writes the external kubeconfig into kubeconfigPath (never the user's).
	CreateCluster(name string, cfg *v1alpha4.Cluster, kubeconfigPath string, wait time.Duration) error
	// DeleteCluster deletes a kind cluster and its entry in kubeconfigPath.
	DeleteCluster(name, kubeconfigPath string) error
	// KubeConfig returns a cluster's kubeconfig: internal (server https://<name>-control-plane:6443) or
	// external (the port published on the host).
	KubeConfig(name string, internal bool) (string, error)
	// ListNodes lists the node containers of a cluster.
	ListNodes(name string) ([]string, error)
	// LoadImage loads a host image into every node of the clusters (`kind load docker-image`), pulling it
	// on the host first when it is not there.
	LoadImage(ctx context.Context, image string, clusters []string) error
	// CollectLogs exports a cluster's node logs into dir (`kind export logs`).
	CollectLogs(name, dir string) error
	// Sysctl reads a kernel setting of the host the nodes share (e.g. fs.inotify.max_user_watches).
	Sysctl(key string) (int, error)
}

// NewRuntime is the real Runtime: kind's Go API with its Docker provider, and runner for docker. kind's
// own progress (its sub-steps of creating a cluster) goes to out, each line naming the cluster.
func NewRuntime(runner exec.Runner, out io.Writer) Runtime {
	if out == nil {
		out = io.Discard
	}
	return &kindRuntime{kp: kindcluster.NewProvider(kindcluster.ProviderWithDocker()), runner: runner, out: out, mu: &sync.Mutex{}}
}

type kindRuntime struct {
	kp     *kindcluster.Provider
	runner exec.Runner
	out    io.Writer
	mu     *sync.Mutex
}

func (r *kindRuntime) Docker(ctx context.Context, args ...string) ([]byte, error) {
	return r.runner.Run(ctx, "docker", args...)
}

func (r *kindRuntime) ListClusters() ([]string, error) { return r.kp.List() }

func (r *kindRuntime) CreateCluster(name string, cfg *v1alpha4.Cluster, kubeconfigPath string, wait time.Duration) error {
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker(), kindcluster.ProviderWithLogger(stepLogger{mu: r.mu, w: r.out, cluster: name, tty: isTerminal(r.out)}))
	return kp.Create(name,
		kindcluster.CreateWithV1Alpha4Config(cfg),
		kindcluster.CreateWithWaitForReady(wait),
		kindcluster.CreateWithKubeconfigPath(kubeconfigPath),
		kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false))
}

func (r *kindRuntime) DeleteCluster(name, kubeconfigPath string) error {
	return r.kp.Delete(name, kubeconfigPath)
}

func (r *kindRuntime) KubeConfig(name string, internal bool) (string, error) {
	return r.kp.KubeConfig(name, internal)
}

func (r *kindRuntime) ListNodes(name string) ([]string, error) {
	nodes, err := r.kp.ListNodes(name)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, n := range nodes {
		out = append(out, n.String())
	}
	return out, nil
}

func (r *kindRuntime) LoadImage(ctx context.Context, image string, clusters []string) error {
	if _, err := r.Docker(ctx, "image", "inspect", "--format", "{{.Id}}", image); err != nil {
		if out, err := r.Docker(ctx, "pull", image); err != nil {
			return fmt.Errorf("pulling %s on the host: %w (%s)", image, err, firstLineOf(string(out)))
		}
	}
	dir, err := os.MkdirTemp("", "mclab-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	tar := filepath.Join(dir, "image.tar")
	if out, err := r.Docker(ctx, "save", "-o", tar, image); err != nil {
		return fmt.Errorf("saving %s: %w (%s)", image, err, firstLineOf(string(out)))
	}
	for _, c := range clusters {
		nodes, err := r.kp.ListNodes(c)
		if err != nil {
			return err
		}
		for _, n := range nodes {
			f, err := os.Open(tar)
			if err != nil {
				return err
			}
			err = nodeutils.LoadImageArchive(n, f)
			f.Close()
			if err != nil {
				return fmt.Errorf("loading %s into %s: %w", image, n, err)
			}
		}
	}
	return nil
}

func (r *kindRuntime) CollectLogs(name, dir string) error { return r.kp.CollectLogs(name, dir) }

func (r *kindRuntime) Sysctl(key string) (int, error) {
	data, err := os.ReadFile("/proc/sys/" + strings.ReplaceAll(key, ".", "/"))
	if err != nil {
		return 0, err
	}
	var v int
	_, err = fmt.Sscan(strings.TrimSpace(string(data)), &v)
	return v, err
}

func firstLineOf(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
