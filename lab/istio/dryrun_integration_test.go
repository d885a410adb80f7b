package istio_test

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// TestIntegrationDryRunEveryManifest renders every manifest of every model and role and server-side
// dry-run applies it to a local-provider API server that has Istio's CRDs: schema, defaulting and
// admission must accept each one.
func TestIntegrationDryRunEveryManifest(t *testing.T) {
	labtest.SkipIfShort(t)
	m, out := labtest.Manager(t)
	m.SkipIstio = true
	host, err := scenario.Compose(scenario.MultiNetwork, scenario.PrimaryRemote, 2)
	if err != nil {
		t.Fatal(err)
	}
	host.Provider.Name = scenario.ProviderLocal
	if err := m.Up(t.Context(), host, "dryrun"); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	_, p, err := m.Plan(t.Context(), host, "dryrun")
	if err != nil {
		t.Fatal(err)
	}
	kc, err := p.Kubeconfig(t.Context(), "c1", provider.FromHost)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	real, err := kube.NewClient("c1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	dry, err := kube.NewClient("c1", cfg)
	if err != nil {
		t.Fatal(err)
	}
	dry.DryRun = true
	for _, ns := range []string{istio.IstioNamespace, istio.SampleNamespace} {
		if err := real.ApplyTyped(t.Context(), &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			t.Fatal(err)
		}
	}
	crdsInstalled := false
	for _, sc := range []struct {
		t scenario.Topology
		m scenario.Model
	}{
		{scenario.MultiNetwork, scenario.MultiPrimary},
		{scenario.SingleNetwork, scenario.MultiPrimary},
		{scenario.MultiNetwork, scenario.PrimaryRemote},
		{scenario.SingleNetwork, scenario.PrimaryRemote},
		{scenario.MultiNetwork, scenario.Federated},
	} {
		s, err := scenario.Compose(sc.t, sc.m, 2)
		if err != nil {
			t.Fatal(err)
		}
		s.Istio.Hub, s.Istio.Tag = "docker.io/istio", "1.28.0"
		dir := t.TempDir()
		for _, runtime := range []provider.Provider{p, inCluster{Provider: p, lb: p.(provider.LoadBalancerAssigner)}} {
			in := &istio.Installer{S: s, Dir: dir, Provider: runtime}
			if err := in.PrepareCA(); err != nil {
				t.Fatal(err)
			}
			for _, c := range s.Clusters {
				ms, err := in.Manifests(c)
				if err != nil {
					t.Fatalf("%s/%s: %v", s.Name, c.Name, err)
				}
				if !crdsInstalled {
					objs, err := kube.Decode(ms["base"])
					if err != nil {
						t.Fatal(err)
					}
					var crds []*unstructured.Unstructured
					for _, o := range objs {
						if o.GetKind() == "CustomResourceDefinition" {
							crds = append(crds, o)
						}
					}
					if len(crds) < 10 {
						t.Fatalf("base renders %d CRDs", len(crds))
					}
					if err := real.Apply(t.Context(), "", crds...); err != nil {
						t.Fatal(err)
					}
					crdsInstalled = true
				}
				for name, manifest := range ms {
					ns := istio.IstioNamespace
					if name == "samples" {
						ns = istio.SampleNamespace
					}
					if err := dry.ApplyManifest(t.Context(), manifest, ns); err != nil {
						t.Errorf("%s/%s %s (istiod %s): dry-run apply: %v", s.Name, c.Name, name, runtime.Capabilities().Istiod, err)
					}
				}
				if c.Role == scenario.Primary && runtime.Capabilities().Istiod == provider.IstiodInCluster && !strings.Contains(ms["istiod"], `image: "docker.io/istio/pilot:1.28.0"`) {
					t.Errorf("%s/%s: the in-cluster istiod Deployment does not run docker.io/istio/pilot:1.28.0", s.Name, c.Name)
				}
			}
		}
	}
	// The dry run persisted nothing.
	if _, err := real.Kube.CoreV1().ConfigMaps(istio.IstioNamespace).Get(t.Context(), "istio", metav1.GetOptions{}); err == nil || !strings.Contains(err.Error(), "not found") {
		t.Errorf("a dry run created ConfigMap istio: %v", err)
	}
}

// inCluster is the local provider seen as one whose istiod runs in the cluster (the chart's
// Deployment), as on kind and existing clusters.
type inCluster struct {
	provider.Provider
	lb provider.LoadBalancerAssigner
}

func (w inCluster) Capabilities() provider.Capabilities {
	c := w.Provider.Capabilities()
	c.Istiod = provider.IstiodInCluster
	return c
}

func (w inCluster) LoadBalancerAddress(cluster string) (string, error) {
	return w.lb.LoadBalancerAddress(cluster)
}
