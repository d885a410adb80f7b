package istio

import (
	"context"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

var update = flag.Bool("update", false, "rewrite golden files")

// fakeProcessProvider answers like the local provider with fixed addresses, so rendered manifests
// are deterministic.
type fakeProcessProvider struct{}

func (fakeProcessProvider) Name() scenario.ProviderName { return scenario.ProviderLocal }
func (fakeProcessProvider) Capabilities() provider.Capabilities {
	return provider.Capabilities{CreatesClusters: true, LoadBalancer: "lab-assigned", Istiod: provider.IstiodProcess}
}
func (fakeProcessProvider) Plan(*scenario.Scenario) ([]plan.Step, error) { return nil, nil }
func (fakeProcessProvider) Delete(context.Context) error                 { return nil }
func (fakeProcessProvider) Kubeconfig(context.Context, string, provider.Viewpoint) (*clientcmdapi.Config, error) {
	return clientcmdapi.NewConfig(), nil
}
func (fakeProcessProvider) Clusters(context.Context) ([]provider.ClusterInfo, error) { return nil, nil }
func (fakeProcessProvider) IstiodEndpoint(cluster string) (provider.IstiodEndpoint, error) {
	return provider.IstiodEndpoint{XDS: "127.0.0.1:15010", XDSTLS: "127.0.0.1:15012", Webhook: "localhost:15017", Monitoring: "127.0.0.1:15014", Debug: "127.0.0.1:8080"}, nil
}
func (fakeProcessProvider) StartIstiod(context.Context, string, provider.IstiodSpec) error {
	return nil
}
func (fakeProcessProvider) LoadBalancerAddress(cluster string) (string, error) {
	return "198.18.0." + cluster[len(cluster)-1:], nil
}

// fakeInClusterProvider runs istiod as the chart's Deployment (kind, existing clusters).
type fakeInClusterProvider struct{ fakeProcessProvider }

func (fakeInClusterProvider) Name() scenario.ProviderName { return scenario.ProviderKind }
func (fakeInClusterProvider) Capabilities() provider.Capabilities {
	return provider.Capabilities{CreatesClusters: true, RunsContainers: true, LoadBalancer: "lab-assigned", Istiod: provider.IstiodInCluster}
}

// goldenInstaller is an installer over fixed placeholder CA files.
func goldenInstaller(t *testing.T, s *scenario.Scenario) *Installer {
	return goldenInstallerFor(t, s, fakeProcessProvider{})
}

func goldenInstallerFor(t *testing.T, s *scenario.Scenario, p provider.Provider) *Installer {
	t.Helper()
	dir := t.TempDir()
	in := &Installer{S: s, Dir: dir, Provider: p}
	for _, c := range s.Clusters {
		cc := &pki.CACerts{CACert: []byte("CA-CERT-" + c.Name), CAKey: []byte("CA-KEY"), RootCert: []byte("ROOT-CERT-" + c.Mesh), CertChain: []byte("CHAIN")}
		if err := cc.Write(in.cacertsDir(c.Name)); err != nil {
			t.Fatal(err)
		}
	}
	return in
}

// TestRenderedManifestsGolden pins every manifest the install applies, for every model and role
// (CRDs left out: they are Istio's crd-all.gen.yaml, verbatim).
// The in-cluster variants (istiod as the chart's Deployment, images from a release hub) are under
// testdata/manifests/in-cluster.
func TestRenderedManifestsGolden(t *testing.T) {
	for _, sc := range []struct {
		t         scenario.Topology
		m         scenario.Model
		inCluster bool
	}{
		{scenario.MultiNetwork, scenario.MultiPrimary, false},
		{scenario.SingleNetwork, scenario.MultiPrimary, false},
		{scenario.MultiNetwork, scenario.PrimaryRemote, false},
		{scenario.MultiNetwork, scenario.Federated, false},
		{scenario.MultiNetwork, scenario.MultiPrimary, true},
		{scenario.MultiNetwork, scenario.PrimaryRemote, true},
	} {
		s, err := scenario.Compose(sc.t, sc.m, 2)
		if err != nil {
			t.Fatal(err)
		}
		in, dir := goldenInstaller(t, s), filepath.Join("testdata", "manifests")
		if sc.inCluster {
			s.Istio.Hub, s.Istio.Tag = "docker.io/istio", "1.28.0"
			in, dir = goldenInstallerFor(t, s, fakeInClusterProvider{}), filepath.Join(dir, "in-cluster")
		}
		for _, c := range s.Clusters {
			ms, err := in.Manifests(c)
			if err != nil {
				t.Fatalf("%s %s: %v", s.Name, c.Name, err)
			}
			for name, m := range ms {
				golden := filepath.Join(dir, s.Name, string(c.Role)+"-"+c.Name, name+".yaml")
				got := withoutCRDs(m)
				if *update {
					_ = os.MkdirAll(filepath.Dir(golden), 0o755)
					if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
						t.Fatal(err)
					}
					continue
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (go test ./lab/istio -update)", err)
				}
				if got != string(want) {
					t.Errorf("%s differs from its golden file (run with -update if intended)", golden)
				}
			}
		}
	}
}

func withoutCRDs(manifest string) string {
	docs := strings.Split(manifest, "\n---\n")
	var keep []string
	for _, d := range docs {
		if strings.Contains(d, "\nkind: CustomResourceDefinition\n") {
			continue
		}
		keep = append(keep, d)
	}
	return strings.Join(keep, "\n---\n")
}

// TestInClusterIstiod: where istiod runs in the cluster, the chart's Deployment is applied with the
// scenario's images, and webhooks go through the istiod Service (no URL, no process address).
func TestInClusterIstiod(t *testing.T) {
	s, _ := scenario.Compose(scenario.MultiNetwork, scenario.PrimaryRemote, 2)
	s.Istio.Hub, s.Istio.Tag = "docker.io/istio", "1.28.0"
	in := goldenInstallerFor(t, s, fakeInClusterProvider{})
	for _, c := range s.Clusters {
		m, err := in.istiodManifest(c)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(m, "localhost:15017") {
			t.Errorf("%s: in-cluster manifests point at a process address", c.Name)
		}
		switch c.Role {
		case scenario.Primary:
			for _, want := range []string{"# Source: istiod/templates/deployment.yaml", `image: "docker.io/istio/pilot:1.28.0"`, `"hub": "docker.io/istio"`, "service:\n      name: istiod\n      namespace: \"istio-system\"\n      path: \"/inject\""} {
				if !strings.Contains(m, want) {
					t.Errorf("primary manifest lacks %q", want)
				}
			}
		case scenario.Remote:
			if strings.Contains(m, "\nkind: Deployment\n") {
				t.Error("a remote runs no istiod")
			}
			for _, want := range []string{"198.18.0.1", "path: \"/inject/cluster/c2/net/network2\""} {
				if !strings.Contains(m, want) {
					t.Errorf("remote manifest lacks %q", want)
				}
			}
		}
	}
}

// TestValuesPerRole checks the values Istio's docs require per role.
func TestValuesPerRole(t *testing.T) {
	s, _ := scenario.Compose(scenario.MultiNetwork, scenario.PrimaryRemote, 2)
	in := goldenInstaller(t, s)
	for _, c := range s.Clusters {
		m, err := in.istiodManifest(c)
		if err != nil {
			t.Fatal(err)
		}
		switch c.Role {
		case scenario.Primary:
			for _, want := range []string{`"clusterName": "c1"`, `"network": "network1"`, `"meshID": "mesh1"`, `"externalIstiod": true`, "url: \"https://localhost:15017/inject/cluster/c1/net/network1\""} {
				if !strings.Contains(m, want) {
					t.Errorf("primary manifest lacks %s", want)
				}
			}
			if strings.Contains(m, "# Source: istiod/templates/deployment.yaml") {
				t.Error("a process runtime must not apply istiod's Deployment")
			}
		case scenario.Remote:
			for _, want := range []string{"https://localhost:15017/inject/cluster/c2/net/network2", "198.18.0.1"} {
				if !strings.Contains(m, want) {
					t.Errorf("remote manifest lacks %s", want)
				}
			}
		}
	}
}
