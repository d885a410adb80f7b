package istio

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/clientcmd"
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
