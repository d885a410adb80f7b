package lab_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/scenario"
)

// TestIntegrationExistingInstallsInClusterIstiod installs Istio on existing clusters (a local lab's
// API servers, reached through kubeconfig contexts) with istiod as the chart's Deployment: the mesh CA,
// base, and the istiod Deployment with the scenario's images are applied and waited for (kwok plays
// the kubelet). Reaching istiod then needs a port-forward into a container, which kwok pods do not
// have: the fake tunnel refuses as a kubelet-less API server would, and `up` stops there naming it.
// A second `up` resumes (the mesh is this lab's); another lab is refused.
func TestIntegrationExistingInstallsInClusterIstiod(t *testing.T) {
	labtest.SkipIfShort(t)
	host, out := labtest.Manager(t)
	host.SkipIstio = true
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	if err := host.Up(t.Context(), s, s.Name); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}
	ex := *s
	ex.Istio.Hub, ex.Istio.Tag = "docker.io/istio", "1.28.0"
	ex.Provider = scenario.Provider{Name: scenario.ProviderExisting, Existing: &scenario.ExistingOptions{Kubeconfig: host.Store.Kubeconfig(s.Name)}}
	gate, gout := labtest.Manager(t)
	tunnel := &labtest.Tunnel{Fail: "unable to upgrade connection: the pod runs no container (kwok)"}
	gate.Tunnel = tunnel
	for attempt := 1; attempt <= 2; attempt++ {
		err = gate.Up(t.Context(), &ex, "gate")
		if err == nil || !strings.Contains(err.Error(), "Creating remote secrets") || !strings.Contains(err.Error(), "reaching the istiod of c") || !strings.Contains(err.Error(), "unable to upgrade connection") {
			t.Fatalf("up #%d must stop where istiod has to be reached: %v\n%s", attempt, err, gout)
		}
	}
	if got := tunnel.CallsWithPrefix("port-forward"); len(got) == 0 || !strings.Contains(got[0], "istio-system/app=istiod [15010 15012 15014 8080]") {
		t.Errorf("port-forwards: %v", got)
	}
	for _, c := range s.Clusters {
		cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(&clientcmd.ClientConfigLoadingRules{ExplicitPath: host.Store.Kubeconfig(s.Name)}, &clientcmd.ConfigOverrides{CurrentContext: s.Name + "-" + c.Name}).ClientConfig()
		if err != nil {
			t.Fatal(err)
		}
		cs := kubernetes.NewForConfigOrDie(cfg)
		// The second up may have rolled the Deployment: wait for it to be available again (kwok).
		var d *appsv1.Deployment
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(time.Second) {
			if d, err = cs.AppsV1().Deployments(istio.IstioNamespace).Get(t.Context(), "istiod", metav1.GetOptions{}); err != nil {
				t.Fatalf("%s: %v", c.Name, err)
			}
			if d.Status.AvailableReplicas > 0 || time.Now().After(deadline) {
				break
			}
		}
		if img := d.Spec.Template.Spec.Containers[0].Image; img != "docker.io/istio/pilot:1.28.0" || d.Status.AvailableReplicas < 1 {
			t.Errorf("%s: istiod Deployment image %s, available %d", c.Name, img, d.Status.AvailableReplicas)
		}
		sec, err := cs.CoreV1().Secrets(istio.IstioNamespace).Get(t.Context(), istio.CACertsSecret, metav1.GetOptions{})
		if err != nil || sec.Labels[istio.LabLabel] != "gate" {
			t.Errorf("%s: cacerts %v labels %v", c.Name, err, sec.Labels)
		}
		other := "c2"
		if c.Name == "c2" {
			other = "c1"
		}
		if _, err := cs.CoreV1().Secrets(istio.IstioNamespace).Get(t.Context(), istio.RemoteSecretName(other), metav1.GetOptions{}); err != nil {
			t.Errorf("%s: remote secret for %s: %v", c.Name, other, err)
		}
	}
	intruder, _ := labtest.Manager(t)
	intruder.Tunnel = tunnel
	err = intruder.Up(t.Context(), &ex, "intruder")
	if !errors.Is(err, lab.ErrMeshExists) || !strings.Contains(err.Error(), "installed by mclab lab gate") {
		t.Errorf("another lab must not install over gate's mesh: %v", err)
	}
}
