package lab_test

import (
	"context"
	"errors"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/kind/pkg/apis/config/v1alpha4"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/provider/kind/kindtest"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

func kindManager(t *testing.T, rt *kindtest.Runtime) (*lab.Manager, *strings.Builder) {
	t.Helper()
	out := &strings.Builder{}
	return &lab.Manager{Store: state.Store{Root: t.TempDir()}, Out: out, Runner: exec.OS{}, KindRuntime: rt}, out
}

// TestKindUpFailingMidwayLeavesNothing: a kind `up` that fails after some clusters exist (here: the
// third cluster's create fails after its node container started) exports every cluster's node logs,
// deletes every kind cluster of the lab, and removes the lab's state; --retain keeps them instead.
func TestKindUpFailingMidwayLeavesNothing(t *testing.T) {
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 3)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderKind
	rt := &kindtest.Runtime{Fail: map[string]string{"create " + s.Name + "-c3": "failed to init node with kubeadm: exit status 1"}}
	_ = rt.CreateCluster("someone-elses", &v1alpha4.Cluster{Nodes: []v1alpha4.Node{{Role: v1alpha4.ControlPlaneRole}}}, filepath.Join(t.TempDir(), "kc"), 0)
	m, out := kindManager(t, rt)
	err = m.Up(t.Context(), s, s.Name)
	if err == nil {
		t.Fatalf("up succeeded:\n%s", out)
	}
	for _, want := range []string{"creating kind cluster " + s.Name + "-c3", "kubeadm", "nothing was left behind", "logs of the failed up: "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if got := rt.Clusters(); len(got) != 1 || got[0] != "someone-elses" {
		t.Errorf("kind clusters left: %v (only the user's own should remain)", got)
	}
	if got := rt.CallsWithPrefix("logs "); len(got) != 3 {
		t.Errorf("node logs exported for %v, want all three clusters", got)
	}
	logs, _ := filepath.Glob(filepath.Join(m.Store.Root, "failed", s.Name+"-*", "c1", s.Name+"-c1-control-plane", "kubelet.log"))
	if len(logs) != 1 {
		t.Errorf("the node logs were not kept for the report: %v", logs)
	}
	if _, err := os.Stat(m.Store.Dir(s.Name)); !os.IsNotExist(err) {
		t.Errorf("the lab's state is left: %v", err)
	}

	t.Run("retain keeps the clusters", func(t *testing.T) {
		rt := &kindtest.Runtime{Fail: map[string]string{"docker exec multi-network-c1-control-plane ip route": "RTNETLINK answers: Network is unreachable"}}
		sn, _ := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
		sn.Name = "multi-network"
		sn.Provider.Name = scenario.ProviderKind
		m, _ := kindManager(t, rt)
		m.Retain = true
		err := m.Up(t.Context(), sn, sn.Name)
		if err == nil || !strings.Contains(err.Error(), "Network is unreachable") || !strings.Contains(err.Error(), "--retain") {
			t.Fatalf("up: %v", err)
		}
		if got := rt.Clusters(); len(got) != 2 {
			t.Errorf("--retain must keep the clusters: %v", got)
		}
		if existed, err := m.Down(t.Context(), sn.Name); !existed || err != nil {
			t.Fatalf("down: %v %v", existed, err)
		}
		if got := rt.Clusters(); len(got) != 0 {
			t.Errorf("down left clusters: %v", got)
		}
	})
}

// TestKindPreflightRefusesBeforeCreating: too little memory for the clusters stops `up` before any
// cluster exists.
func TestKindPreflightRefusesBeforeCreating(t *testing.T) {
	s, _ := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 3)
	s.Provider.Name = scenario.ProviderKind
	rt := &kindtest.Runtime{MemTotal: 3 << 30}
	m, _ := kindManager(t, rt)
	err := m.Up(t.Context(), s, s.Name)
	if err == nil || !strings.Contains(err.Error(), "Docker has 3.0 GiB of memory, 3 clusters need 6.0 GiB") {
		t.Fatalf("up: %v", err)
	}
	if got := rt.CallsWithPrefix("create "); len(got) != 0 {
		t.Errorf("clusters created after a failed preflight: %v", got)
	}
}

// runtimes answers `docker version` / `podman version` as the named runtimes would.
type runtimes map[string]string

func (r runtimes) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	if v, ok := r[name]; ok && v != "" {
		return []byte(v + "\n"), nil
	}
	if _, ok := r[name]; ok {
		return []byte("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"), &exec.RunError{Command: append([]string{name}, args...), Output: []byte("Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?\n"), Err: errors.New("exit status 1")}
	}
	return nil, &exec.RunError{Command: append([]string{name}, args...), Err: osexec.ErrNotFound}
}

// TestAutoProviderSaysWhy: auto picks kind when Docker answers and local otherwise, and the plan says
// which and why.
func TestAutoProviderSaysWhy(t *testing.T) {
	s, _ := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	for _, tc := range []struct {
		name     string
		runner   runtimes
		provider string
		note     string
	}{
		{"docker daemon down", runtimes{"docker": ""}, "local", "provider auto: chose local because no container runtime answered (docker: Cannot connect to the Docker daemon"},
		{"nothing installed", runtimes{}, "local", "docker: not installed; podman: not installed"},
		{"docker answers, images there", runtimes{"docker": "28.1.1"}, "kind", "provider auto: chose kind because docker answered (engine 28.1.1)"},
		{"podman only", runtimes{"podman": "5.2.0"}, "local", "mclab's kind provider drives Docker"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &lab.Manager{Store: state.Store{Root: t.TempDir()}, Out: io.Discard, Runner: tc.runner}
			pl, _, err := m.Plan(t.Context(), s, "x")
			if err != nil {
				t.Fatal(err)
			}
			if pl.Provider != tc.provider || len(pl.Notes) != 1 || !strings.Contains(pl.Notes[0], tc.note) {
				t.Errorf("provider %s, notes %q; want %s and %q", pl.Provider, pl.Notes, tc.provider, tc.note)
			}
		})
	}
}

// offlineDocker answers like this machine's Docker 20.10.24 with the kind-offline node image built and
// no registry reachable (outputs recorded from the real daemon).
type offlineDocker struct{ present, pullable []string }

func (o offlineDocker) Run(_ context.Context, name string, args ...string) ([]byte, error) {
	if name != "docker" {
		return nil, &exec.RunError{Command: append([]string{name}, args...), Err: osexec.ErrNotFound}
	}
	fail := func(out string) ([]byte, error) {
		return []byte(out), &exec.RunError{Command: append([]string{name}, args...), Output: []byte(out), Err: errors.New("exit status 1")}
	}
	switch {
	case args[0] == "version":
		return []byte("20.10.24+dfsg1\n"), nil
	case args[0] == "image" && args[1] == "inspect":
		img := args[len(args)-1]
		if slices.Contains(o.present, img) {
			return []byte("sha256:4f1c8e0b\n"), nil
		}
		return fail("Error response from daemon: no such image: " + img + ": No such image: " + img + "\n")
	case args[0] == "pull":
		if slices.Contains(o.pullable, args[1]) {
			return []byte("v0.14.3: Pulling from testing/metallb/controller\nStatus: Image is up to date for " + args[1] + "\n"), nil
		}
		host, _, _ := strings.Cut(args[1], "/")
		return fail(`Error response from daemon: Get "https://` + host + `/v2/": dial tcp: lookup ` + host + " on 10.255.255.53:53: no such host\n")
	}
	return nil, errors.New("unexpected docker " + strings.Join(args, " "))
}

// TestAutoChoosesLocalWhenKindCannotStart: Docker answers but nothing can be pulled (this machine with
// kind-offline's node image): a kind lab would fail at MetalLB, so auto chooses local and says why;
// with MetalLB pullable, or offline images, it chooses kind.
func TestAutoChoosesLocalWhenKindCannotStart(t *testing.T) {
	t.Setenv("MCLAB_KIND_NODE_IMAGE", "mclab.local/kind-node:v1.37.2")
	const node, metallb = "mclab.local/kind-node:v1.37.2", "registry.istio.io/testing/metallb/controller:v0.14.3"
	for _, tc := range []struct {
		name     string
		present  []string
		pullable []string
		offline  bool
		provider string
		note     string
	}{
		{"node image only", []string{node}, nil, false, "local", "provider auto: chose local because docker answered (engine 20.10.24+dfsg1), but image registry.istio.io/testing/metallb/controller:v0.14.3 cannot be pulled (the nodes pull it themselves) (Error response from daemon: Get \"https://registry.istio.io/v2/\": dial tcp: lookup registry.istio.io"},
		{"no node image", nil, nil, false, "local", "image mclab.local/kind-node:v1.37.2 is not in docker and cannot be pulled"},
		// Seen in CI: `mclab images` had put MetalLB's image into the host's Docker, but the nodes pull
		// it from its registry unless the lab loads it (offline or preloaded images).
		{"MetalLB in the host's Docker only", []string{node, metallb}, nil, false, "local", "cannot be pulled (the nodes pull it themselves)"},
		{"MetalLB pullable", []string{node}, []string{metallb}, false, "kind", "provider auto: chose kind because docker answered"},
		{"offline images", []string{node}, nil, true, "kind", "provider auto: chose kind because docker answered"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := &lab.Manager{Store: state.Store{Root: t.TempDir()}, Out: io.Discard, Runner: offlineDocker{tc.present, tc.pullable}}
			s, _ := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
			if tc.offline {
				s.Provider.Kind = &scenario.KindOptions{OfflineImages: true}
			}
			pl, _, err := m.Plan(t.Context(), s, "x")
			if err != nil {
				t.Fatal(err)
			}
			if pl.Provider != tc.provider || len(pl.Notes) != 1 || !strings.Contains(pl.Notes[0], tc.note) {
				t.Errorf("provider %s, notes %q; want %s and %q", pl.Provider, pl.Notes, tc.provider, tc.note)
			}
		})
	}
}

// TestKindInterruptedUpLeavesNothing: Ctrl-C while kind creates the clusters stops the up after the
// running step, then deletes every cluster it made.
func TestKindInterruptedUpLeavesNothing(t *testing.T) {
	s, _ := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	s.Provider.Name = scenario.ProviderKind
	ctx, cancel := context.WithCancel(t.Context())
	rt := &kindtest.Runtime{OnCreate: func(string) { cancel() }}
	m, _ := kindManager(t, rt)
	err := m.Up(ctx, s, s.Name)
	if err == nil || !strings.Contains(err.Error(), "interrupted") || !strings.Contains(err.Error(), "nothing was left behind") {
		t.Fatalf("up: %v", err)
	}
	if len(rt.CallsWithPrefix("create ")) != 2 || len(rt.Clusters()) != 0 {
		t.Errorf("created %v, left %v", rt.CallsWithPrefix("create "), rt.Clusters())
	}
	if _, err := os.Stat(m.Store.Dir(s.Name)); !os.IsNotExist(err) {
		t.Errorf("the lab's state is left: %v", err)
	}
}

// TestDownWithoutLabJSON: down of a kind lab whose lab.json is corrupt deletes the kind clusters its
// own record lists (it used to fall back to the local provider and orphan them); a lab whose clusters
// no record proves (lab.json gone, the kind record gone too) keeps them and its state, and says which
// (lab.ErrUnproven, exit 2), while another lab's recorded clusters that share the prefix are not
// counted against it.
func TestDownWithoutLabJSON(t *testing.T) {
	s, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderKind
	s.Provider.Kind = &scenario.KindOptions{LoadBalancer: "none"}
	rt := &kindtest.Runtime{}
	m, out := kindManager(t, rt)
	m.SkipIstio = true
	for _, name := range []string{"a", "a-3"} {
		if err := m.Up(t.Context(), s, name); err != nil {
			t.Fatalf("up %s: %v\n%s", name, err, out)
		}
	}
	if err := os.WriteFile(filepath.Join(m.Store.Dir("a"), "lab.json"), []byte("{corrupt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Down(t.Context(), "a"); err != nil {
		t.Fatalf("down of a with a corrupt lab.json: %v", err)
	}
	if got := strings.Join(rt.Clusters(), ","); got != "a-3-c1,a-3-c2" {
		t.Errorf("after down a: kind clusters %q, want exactly lab a-3's", got)
	}
	// Lab a-3 loses both lab.json and its kind record: its clusters are named for it, unproven.
	if err := os.Remove(filepath.Join(m.Store.Dir("a-3"), "lab.json")); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(m.Store.Dir("a-3"), "kind")); err != nil {
		t.Fatal(err)
	}
	_, err = m.Down(t.Context(), "a-3")
	if !errors.Is(err, lab.ErrUnproven) || !strings.Contains(err.Error(), "kind clusters a-3-c1, a-3-c2 are named for lab a-3") {
		t.Fatalf("want ErrUnproven naming the clusters, got %v", err)
	}
	if got := strings.Join(rt.Clusters(), ","); got != "a-3-c1,a-3-c2" {
		t.Errorf("unproven clusters were deleted: %q", got)
	}
	if _, err := os.Stat(m.Store.Dir("a-3")); err != nil {
		t.Errorf("the state of a lab with unproven clusters must be kept: %v", err)
	}
}
