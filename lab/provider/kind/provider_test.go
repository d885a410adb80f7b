package kind

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/provider/kind/kindtest"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

func newFake(t *testing.T, s *scenario.Scenario, rt *kindtest.Runtime) (*Provider, *bytes.Buffer) {
	t.Helper()
	s.Default()
	out := &bytes.Buffer{}
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}, Scenario: s, Runtime: rt, Out: out, GOOS: "linux"})
	return p, out
}

func TestRoutesStepRunsDockerExecOnlyForSameNetwork(t *testing.T) {
	s := &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}, {Name: "c3", Network: "network2"}}}
	rt := &kindtest.Runtime{}
	p, _ := newFake(t, s, rt)
	if err := p.create(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := p.routes(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Control planes got 172.18.0.2, .3, .4 in creation order; c3 is on another network.
	ip := map[string]string{}
	for _, c := range []string{"lab-c1", "lab-c2", "lab-c3"} {
		ip[c], _ = p.containerIP(context.Background(), c+"-control-plane")
	}
	want := []string{
		"docker exec lab-c1-control-plane ip route replace 10.20.0.0/16 via " + ip["lab-c2"],
		"docker exec lab-c1-control-plane ip route replace 10.255.20.0/24 via " + ip["lab-c2"],
		"docker exec lab-c2-control-plane ip route replace 10.10.0.0/16 via " + ip["lab-c1"],
		"docker exec lab-c2-control-plane ip route replace 10.255.10.0/24 via " + ip["lab-c1"],
	}
	if got := rt.CallsWithPrefix("docker exec"); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("docker exec calls:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// TestKubeconfigsFromHostAndFromClusters: the host uses kind's published port, the other clusters the
// control-plane container's IP on the kind network; both files are 0600.
func TestKubeconfigsFromHostAndFromClusters(t *testing.T) {
	rt := &kindtest.Runtime{}
	p, _ := newFake(t, &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}}}, rt)
	ctx := context.Background()
	if err := p.create(ctx); err != nil {
		t.Fatal(err)
	}
	if err := p.kubeconfigs(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"c1", "c2"} {
		host, err := p.Kubeconfig(ctx, c, provider.FromHost)
		if err != nil {
			t.Fatal(err)
		}
		inLab, err := p.Kubeconfig(ctx, c, provider.FromCluster)
		if err != nil {
			t.Fatal(err)
		}
		ip, _ := p.containerIP(ctx, "lab-"+c+"-control-plane")
		if host.CurrentContext != c || !strings.HasPrefix(host.Clusters[c].Server, "https://127.0.0.1:") {
			t.Errorf("%s from the host: context %q server %q", c, host.CurrentContext, host.Clusters[c].Server)
		}
		if inLab.CurrentContext != c || inLab.Clusters[c].Server != "https://"+ip+":6443" {
			t.Errorf("%s from the clusters: context %q server %q, want https://%s:6443", c, inLab.CurrentContext, inLab.Clusters[c].Server, ip)
		}
		for _, f := range []string{p.hostKubeconfig(c), p.clusterKubeconfig(c)} {
			if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o600 {
				t.Errorf("%s: %v mode %v", f, err, fi.Mode())
			}
		}
	}
}

func TestRegistryMirrorsOnEveryNode(t *testing.T) {
	rt := &kindtest.Runtime{}
	s := &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}}, Provider: scenario.Provider{Kind: &scenario.KindOptions{Workers: 1, RegistryMirrors: map[string]string{"docker.io": "http://mirror:5000"}}}}
	p, _ := newFake(t, s, rt)
	if cfg := ClusterConfig(s.Clusters[0], *s.Provider.Kind); len(cfg.ContainerdConfigPatches) != 1 || !strings.Contains(cfg.ContainerdConfigPatches[0], `config_path = "/etc/containerd/certs.d"`) {
		t.Errorf("containerd patch: %q", cfg.ContainerdConfigPatches)
	}
	if err := p.create(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := rt.CallsWithPrefix("docker exec")
	if len(got) != 2 || !strings.HasPrefix(got[0], "docker exec lab-c1-control-plane sh -c mkdir -p /etc/containerd/certs.d/docker.io") ||
		!strings.HasPrefix(got[1], "docker exec lab-c1-worker ") || !strings.Contains(got[0], `server = "https://registry-1.docker.io"`) || !strings.Contains(got[0], `[host."http://mirror:5000"]`) {
		t.Errorf("mirror calls:\n%s", strings.Join(got, "\n"))
	}
}

func TestPreloadLoadsEveryImageOnceIntoEveryCluster(t *testing.T) {
	rt := &kindtest.Runtime{}
	s := &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}}, Istio: scenario.Istio{Hub: "docker.io/istio", Tag: "1.28.0"}, Provider: scenario.Provider{Kind: &scenario.KindOptions{PreloadImages: true}}}
	p, _ := newFake(t, s, rt)
	if err := p.preload(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(rt.CallsWithPrefix("load "), "\n")
	for _, img := range []string{"docker.io/istio/pilot:1.28.0", "docker.io/istio/proxyv2:1.28.0", "registry.istio.io/testing/metallb/controller:v0.14.3", "docker.io/curlimages/curl:8.16.0"} {
		if !strings.Contains(got, "load "+img+" into lab-c1,lab-c2") {
			t.Errorf("%s not loaded into both clusters:\n%s", img, got)
		}
	}
	if n := strings.Count(got, "pilot:1.28.0"); n != 1 {
		t.Errorf("pilot loaded %d times", n)
	}
}

func TestRewriteServerToContainerIP(t *testing.T) {
	in := clientcmdapi.NewConfig()
	in.Clusters["kind-lab-c1"] = &clientcmdapi.Cluster{Server: "https://lab-c1-control-plane:6443", CertificateAuthorityData: []byte("CA")}
	in.AuthInfos["kind-lab-c1"] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("C"), ClientKeyData: []byte("K")}
	in.Contexts["kind-lab-c1"] = &clientcmdapi.Context{Cluster: "kind-lab-c1", AuthInfo: "kind-lab-c1"}
	in.CurrentContext = "kind-lab-c1"
	raw, _ := clientcmd.Write(*in)
	out, err := RewriteServer(raw, "c1", "https://172.18.0.11:6443")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := clientcmd.Load(out)
	if err != nil {
		t.Fatal(err)
	}
	if kc.CurrentContext != "c1" || kc.Clusters["c1"].Server != "https://172.18.0.11:6443" || string(kc.Clusters["c1"].CertificateAuthorityData) != "CA" {
		t.Errorf("rewritten kubeconfig: %+v", kc)
	}
}

func TestPreflightSaysHowToFix(t *testing.T) {
	three := func() *scenario.Scenario {
		return &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}, {Name: "c3"}}}
	}
	for _, tc := range []struct {
		name string
		rt   *kindtest.Runtime
		want []string
	}{
		{"docker down", &kindtest.Runtime{DockerDown: true}, []string{"docker does not answer", "Cannot connect to the Docker daemon", "start Docker", "--provider local"}},
		{"too little memory", &kindtest.Runtime{MemTotal: 4 << 30}, []string{"Docker has 4.0 GiB of memory, 3 clusters need 6.0 GiB", "Settings > Resources", "fewer clusters"}},
		{"too few CPUs", &kindtest.Runtime{NCPU: 1}, []string{"Docker has 1 CPUs, 3 clusters need 4", "give Docker more CPUs"}},
		{"inotify limits", &kindtest.Runtime{Sysctls: map[string]int{"fs.inotify.max_user_instances": 128}}, []string{"fs.inotify.max_user_instances is 128", "sudo sysctl fs.inotify.max_user_instances=512"}},
		{"kind network overlaps the clusters", &kindtest.Runtime{Subnets: "10.20.0.0/16"}, []string{"the kind network's subnet 10.20.0.0/16 overlaps c2's subnet 10.20.0.0/16", "docker network rm kind"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := newFake(t, three(), tc.rt)
			if tc.rt.Subnets != "" {
				_ = tc.rt.CreateCluster("other-c1", ClusterConfig(scenario.Cluster{Name: "x"}, scenario.KindOptions{}), filepath.Join(t.TempDir(), "kc"), 0) // the kind network exists
			}
			err := p.preflight(context.Background())
			for _, w := range tc.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("preflight error lacks %q: %v", w, err)
				}
			}
		})
	}
	t.Run("healthy docker passes, with the host-routing note on macOS", func(t *testing.T) {
		p, out := newFake(t, three(), &kindtest.Runtime{})
		p.cfg.GOOS = "darwin"
		if err := p.preflight(context.Background()); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(out.String(), "the host cannot reach container IPs or MetalLB addresses") {
			t.Errorf("no macOS note: %q", out)
		}
	})
}

func TestNetworkSubnetPicksIPv4OfDualStack(t *testing.T) {
	rt := &kindtest.Runtime{}
	p, _ := newFake(t, &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}}}, rt)
	if _, err := p.NetworkSubnet(context.Background()); !errors.Is(err, errNoNetwork) {
		t.Fatalf("before any cluster: %v", err)
	}
	_ = p.create(context.Background())
	rt.Subnets = "172.19.0.0/16 fc00:f853:ccd:e793::/64"
	got, err := p.NetworkSubnet(context.Background())
	if err != nil || got.String() != "172.19.0.0/16" {
		t.Fatalf("NetworkSubnet = %v, %v", got, err)
	}
}

// TestClustersReportsMissingAndDown: status says which kind cluster is gone, or that Docker is down.
func TestClustersReportsMissingAndDown(t *testing.T) {
	rt := &kindtest.Runtime{}
	p, _ := newFake(t, &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}}}, rt)
	infos, _ := p.Clusters(context.Background())
	if infos[0].Ready || infos[0].Message != "kind cluster lab-c1 does not exist" {
		t.Errorf("missing cluster: %+v", infos[0])
	}
	rt.DockerDown = true
	infos, _ = p.Clusters(context.Background())
	if infos[0].Ready || !strings.Contains(infos[0].Message, "docker does not answer") {
		t.Errorf("docker down: %+v", infos[0])
	}
}

// TestCloudProviderKindInsteadOfMetalLB: with loadBalancer: cloud-provider-kind, mclab installs no
// MetalLB and says who gives the addresses.
func TestCloudProviderKindInsteadOfMetalLB(t *testing.T) {
	s := &scenario.Scenario{Clusters: []scenario.Cluster{{Name: "c1"}}, Provider: scenario.Provider{Kind: &scenario.KindOptions{LoadBalancer: scenario.KindLBCloudProviderKind}}}
	p, _ := newFake(t, s, &kindtest.Runtime{})
	steps, err := p.Plan(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range steps {
		if strings.Contains(st.Title, "MetalLB") {
			t.Errorf("step %q with cloud-provider-kind", st.Title)
		}
	}
	if p.Capabilities().LoadBalancer != "cloud-provider-kind" || !strings.Contains(strings.Join(steps[0].Details, "\n"), "sudo cloud-provider-kind") {
		t.Errorf("capabilities %+v, preflight %q", p.Capabilities(), steps[0].Details)
	}
}
