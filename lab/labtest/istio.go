package labtest

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// AssertIstioLab checks a running lab with Istio (under stateDir, brought up by the CLI or a Manager)
// the way TestIntegrationIstioModels did on labs of its own: status healthy (AssertIstioHealthy), the
// samples injected by istiod's own webhook (AssertInjected), no token in up's output, the status or any
// log, keys and kubeconfigs 0600 (AssertNoSecretsLeak). Tests that bring labs up anyway call it on
// theirs, so that no lab is brought up for these checks alone.
func AssertIstioLab(t testing.TB, stateDir, name, upOutput string) {
	t.Helper()
	cache, err := binaries.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	m := &lab.Manager{Store: state.Store{Root: stateDir}, CacheDir: cache, Out: &SyncBuffer{}, Runner: exec.OS{}}
	rec, err := m.Store.Load(name)
	if err != nil {
		t.Fatalf("lab %s: %v", name, err)
	}
	st, err := m.Status(context.Background(), name)
	if err != nil {
		t.Fatalf("status of %s: %v", name, err)
	}
	AssertIstioHealthy(t, rec.Scenario, st)
	AssertInjected(t, m, rec.Scenario)
	AssertNoSecretsLeak(t, m, rec.Scenario, upOutput, st)
}

// AssertIstioHealthy checks what `mclab status` promises of a lab with Istio: every istiod ready, each
// primary with every other cluster of its mesh synced, east-west gateways with addresses where the model
// needs them, one root fingerprint per mesh (and different roots across federated meshes unless they
// share one).
func AssertIstioHealthy(t testing.TB, s *scenario.Scenario, st *lab.Status) {
	t.Helper()
	if !st.Ready() || len(st.Istio) != len(s.Clusters) {
		t.Fatalf("lab not ready: %+v", st.Istio)
	}
	topo := istio.Topology{S: s}
	roots := map[string]string{}
	for _, c := range st.Istio {
		if !c.IstiodReady || !strings.HasPrefix(c.IstioVersion, "1.31-dev") {
			t.Errorf("%s: istiod ready %v version %q", c.Cluster, c.IstiodReady, c.IstioVersion)
		}
		sc := *s.Cluster(c.Cluster)
		if sc.Role == scenario.Primary {
			synced := map[string]bool{}
			for _, r := range c.RemoteClusters {
				synced[r.ID] = r.SyncStatus == "synced"
			}
			for _, w := range topo.Watched(sc) {
				if !synced[w.Name] {
					t.Errorf("%s: %s not synced: %+v", c.Cluster, w.Name, c.RemoteClusters)
				}
			}
		}
		if topo.NeedsEastWestGateway(sc) && c.EastWestGateway == "" {
			t.Errorf("%s: east-west gateway has no address", c.Cluster)
		}
		if c.NetworkLabel != sc.Network {
			t.Errorf("%s: network label %q", c.Cluster, c.NetworkLabel)
		}
		if prev, ok := roots[c.Mesh]; ok && prev != c.RootFingerprint {
			t.Errorf("mesh %s has two roots: %s and %s", c.Mesh, prev, c.RootFingerprint)
		}
		roots[c.Mesh] = c.RootFingerprint
	}
	if f := s.Istio.Federation; f != nil {
		shared := roots["mesh1"] == roots["mesh2"]
		if shared != (f.Trust == scenario.TrustSharedRoot) {
			t.Errorf("federation trust %s, but mesh roots shared=%v", f.Trust, shared)
		}
	}
}

// AssertInjected checks that every sample pod was injected by istiod's webhook: the status annotation,
// the tlsMode label, the istio-proxy container with the cluster's identity; and that curl-plain, which
// opts out, was not.
func AssertInjected(t testing.TB, m *lab.Manager, s *scenario.Scenario) {
	t.Helper()
	for _, c := range s.Clusters {
		cs := Client(t, m.Store.Kubeconfig(s.Name), s.Name+"-"+c.Name)
		pods, err := cs.CoreV1().Pods(istio.SampleNamespace).List(context.Background(), metav1.ListOptions{})
		if err != nil || len(pods.Items) < 2 {
			t.Fatalf("%s: sample pods: %d, %v", c.Name, len(pods.Items), err)
		}
		plain := 0
		for _, p := range pods.Items {
			if p.Labels["app"] == "curl-plain" {
				plain++
				if p.Annotations["sidecar.istio.io/status"] != "" || len(p.Spec.Containers) != 1 {
					t.Errorf("%s/%s opts out of injection but has %d containers, status %q", c.Name, p.Name, len(p.Spec.Containers), p.Annotations["sidecar.istio.io/status"])
				}
				continue
			}
			if p.Annotations["sidecar.istio.io/status"] == "" || p.Labels["security.istio.io/tlsMode"] != "istio" {
				t.Errorf("%s/%s not injected: labels %v", c.Name, p.Name, p.Labels)
				continue
			}
			env := map[string]string{}
			for _, ct := range p.Spec.Containers {
				if ct.Name == "istio-proxy" {
					for _, e := range ct.Env {
						env[e.Name] = e.Value
					}
				}
			}
			if env["ISTIO_META_CLUSTER_ID"] != c.Name || env["ISTIO_META_NETWORK"] != c.Network {
				t.Errorf("%s/%s: proxy identity CLUSTER_ID=%q NETWORK=%q", c.Name, p.Name, env["ISTIO_META_CLUSTER_ID"], env["ISTIO_META_NETWORK"])
			}
		}
		if plain != 1 {
			t.Errorf("%s: %d curl-plain pods, want 1", c.Name, plain)
		}
	}
}

// AssertNoSecretsLeak: no service-account token in up's output, the status JSON or any log of the lab;
// CA keys, kubeconfigs and remote secrets' material on disk are 0600.
func AssertNoSecretsLeak(t testing.TB, m *lab.Manager, s *scenario.Scenario, output string, st *lab.Status) {
	t.Helper()
	statusJSON, _ := json.Marshal(st)
	haystacks := map[string]string{"up's output": output, "status": string(statusJSON)}
	logs, _ := filepath.Glob(filepath.Join(m.Store.Dir(s.Name), "local", "*", "logs", "*.log"))
	for _, l := range logs {
		data, _ := os.ReadFile(l)
		haystacks[l] = string(data)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, c := range s.Clusters {
		cs := Client(t, m.Store.Kubeconfig(s.Name), s.Name+"-"+c.Name)
		sec, err := cs.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, istio.ReaderTokenSecret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		token := string(sec.Data["token"])
		if len(token) < 100 {
			t.Fatalf("%s: reader token missing", c.Name)
		}
		for where, text := range haystacks {
			if strings.Contains(text, token) || strings.Contains(text, token[len(token)-40:]) {
				t.Errorf("the reader token of %s appears in %s", c.Name, where)
			}
		}
	}
	err := filepath.Walk(m.Store.Dir(s.Name), func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		base := filepath.Base(path)
		sensitive := strings.HasSuffix(base, ".key") || strings.HasSuffix(base, "key.pem") || strings.Contains(base, "kubeconfig")
		if sensitive && info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %o, want 600", path, info.Mode().Perm())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
