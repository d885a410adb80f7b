package istio

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// TestRemoteSecretHasIstioctlShape checks the Secret against what istioctl create-remote-secret makes
// (istioctl/pkg/multicluster/remote_secret.go: createRemoteServiceAccountSecret,
// createBearerTokenKubeconfig): name istio-remote-secret-<cluster>; label istio/multiCluster=true
// (pkg/kube/multicluster MultiClusterSecretLabel); annotation networking.istio.io/cluster=<cluster>;
// one data key, the cluster's name, holding a valid kubeconfig whose one cluster, user and context are
// all named after the cluster, with the CA data, the server and a bearer token.
func TestRemoteSecretHasIstioctlShape(t *testing.T) {
	s, err := RemoteSecret("c2", "https://10.0.0.2:6443", []byte("CA"), []byte("TOKEN"))
	if err != nil {
		t.Fatal(err)
	}
	if s.Name != "istio-remote-secret-c2" || s.Namespace != "istio-system" || s.Type != corev1.SecretTypeOpaque {
		t.Errorf("metadata: %s/%s %s", s.Namespace, s.Name, s.Type)
	}
	if len(s.Labels) != 1 || s.Labels["istio/multiCluster"] != "true" {
		t.Errorf("labels %v", s.Labels)
	}
	if len(s.Annotations) != 1 || s.Annotations["networking.istio.io/cluster"] != "c2" {
		t.Errorf("annotations %v", s.Annotations)
	}
	if len(s.Data) != 1 || s.Data["c2"] == nil {
		t.Fatalf("data keys: %v", s.Data)
	}
	kc, err := clientcmd.Load(s.Data["c2"])
	if err != nil {
		t.Fatal(err)
	}
	if err := clientcmd.Validate(*kc); err != nil {
		t.Fatalf("istioctl validates the kubeconfig the same way: %v", err)
	}
	if len(kc.Clusters) != 1 || len(kc.AuthInfos) != 1 || len(kc.Contexts) != 1 || kc.CurrentContext != "c2" {
		t.Fatalf("kubeconfig shape: %+v", kc)
	}
	cl, user, ctx := kc.Clusters["c2"], kc.AuthInfos["c2"], kc.Contexts["c2"]
	if cl == nil || user == nil || ctx == nil || ctx.Cluster != "c2" || ctx.AuthInfo != "c2" {
		t.Fatalf("names: %+v", kc)
	}
	if cl.Server != "https://10.0.0.2:6443" || string(cl.CertificateAuthorityData) != "CA" || user.Token != "TOKEN" {
		t.Errorf("content: server %s ca %q token %q", cl.Server, cl.CertificateAuthorityData, user.Token)
	}
}

// clusterzProvider serves /debug/clusterz from a function, as istiod's debug port does.
type clusterzProvider struct {
	fakeProcessProvider
	debug string
}

func (p clusterzProvider) IstiodEndpoint(string) (provider.IstiodEndpoint, error) {
	return provider.IstiodEndpoint{Debug: p.debug}, nil
}

func clusterzServer(t *testing.T, f func() []ClusterSync) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/debug/clusterz" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(f())
	}))
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A watched cluster that istiod does not list at all (it missed a re-created secret, istio/istio#49780)
// is given up on after unseenWait, so up restarts istiod then instead of after the whole syncWait; one
// that istiod lists as syncing is waited for until it is synced.
func TestWaitSyncedGivesUpEarlyOnlyOnAClusterIstiodDoesNotList(t *testing.T) {
	sw, uw := syncWait, unseenWait
	syncWait, unseenWait = 10*time.Second, 500*time.Millisecond
	t.Cleanup(func() { syncWait, unseenWait = sw, uw })
	c1 := scenario.Cluster{Name: "c1"}
	watched := []scenario.Cluster{{Name: "c2"}}

	unlisted := clusterzServer(t, func() []ClusterSync { return []ClusterSync{{ID: "c1", SyncStatus: "synced"}} })
	in := &Installer{Provider: clusterzProvider{debug: unlisted}}
	start := time.Now()
	err := in.waitSyncedOnce(context.Background(), c1, watched)
	if err == nil || !strings.Contains(err.Error(), "does not list c2 as syncing after 500ms") {
		t.Fatalf("want the early give-up naming c2, got %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("gave up after %s, want about unseenWait", took)
	}

	var mu sync.Mutex
	calls := 0
	slow := clusterzServer(t, func() []ClusterSync {
		mu.Lock()
		defer mu.Unlock()
		calls++
		if calls < 8 { // about 2 s of syncing: longer than unseenWait
			return []ClusterSync{{ID: "c2", SecretName: "istio-system/istio-remote-secret-c2", SyncStatus: "syncing"}}
		}
		return []ClusterSync{{ID: "c2", SecretName: "istio-system/istio-remote-secret-c2", SyncStatus: "synced"}}
	})
	in = &Installer{Provider: clusterzProvider{debug: slow}}
	if err := in.waitSyncedOnce(context.Background(), c1, watched); err != nil {
		t.Errorf("a cluster istiod lists as syncing must be waited for: %v", err)
	}
}
