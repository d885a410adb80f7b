package existing

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

func writeConfig(t *testing.T, path string, contexts ...string) {
	t.Helper()
	c := clientcmdapi.NewConfig()
	for _, n := range contexts {
		c.Clusters[n] = &clientcmdapi.Cluster{Server: "https://" + n + ":6443", CertificateAuthority: "ca-" + n + ".crt"}
		c.AuthInfos[n] = &clientcmdapi.AuthInfo{Token: "t"}
		c.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	if err := clientcmd.WriteToFile(*c, path); err != nil {
		t.Fatal(err)
	}
}

// TestKubeconfigLikeKubectl: contexts are found across a $KUBECONFIG list (as kubectl merges it), with
// file-relative paths resolved against their file; an explicit kubeconfig is read alone; a context
// nowhere is named with the files read.
func TestKubeconfigLikeKubectl(t *testing.T) {
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeConfig(t, a, "east")
	writeConfig(t, b, "west")
	t.Setenv("KUBECONFIG", a+string(os.PathListSeparator)+filepath.Join(dir, "missing")+string(os.PathListSeparator)+b)
	s := &scenario.Scenario{Name: "gate", Clusters: []scenario.Cluster{{Name: "c1"}, {Name: "c2"}},
		Provider: scenario.Provider{Name: scenario.ProviderExisting, Existing: &scenario.ExistingOptions{Contexts: map[string]string{"c1": "east", "c2": "west"}}}}
	p := New("gate", s)
	for c, want := range map[string]string{"c1": "https://east:6443", "c2": "https://west:6443"} {
		kc, err := p.Kubeconfig(context.Background(), c, provider.FromHost)
		if err != nil {
			t.Fatalf("%s: %v", c, err)
		}
		if kc.Clusters[c].Server != want || kc.Clusters[c].CertificateAuthority != filepath.Join(dir, "ca-"+map[string]string{"c1": "east", "c2": "west"}[c]+".crt") {
			t.Errorf("%s: %+v", c, kc.Clusters[c])
		}
	}
	s.Provider.Existing.Kubeconfig = a
	if _, err := p.Context("c2"); err == nil || !strings.Contains(err.Error(), "no context west in "+a) {
		t.Errorf("an explicit kubeconfig is read alone: %v", err)
	}
}
