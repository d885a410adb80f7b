package suites

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
)

// CheckRemoteClustersSynced: every primary's istiod reads each cluster of its mesh through a remote
// secret, synced (what `istioctl remote-clusters` shows). Diagnoses a missing secret, a secret istiod
// did not load, and a secret whose server does not answer.
func CheckRemoteClustersSynced(ctx context.Context, t *Target) Verdict {
	var v Verdict
	topo := t.topo()
	for _, p := range topo.Primaries() {
		ep, err := t.Istiod(p.Name)
		if err != nil {
			v.cannot("reaching istiod of %s: %v", p.Name, err)
			continue
		}
		syncs, err := istio.Clusterz(ctx, ep.Debug)
		if err != nil {
			v.cannot("istiod of %s does not answer /debug/clusterz at %s (is it running?): %v", p.Name, ep.Debug, err)
			continue
		}
		state := map[string]istio.ClusterSync{}
		for _, s := range syncs {
			state[s.ID] = s
		}
		v.saw("istiod of %s /debug/clusterz: %+v", p.Name, syncs)
		for _, w := range topo.Watched(p) {
			s, ok := state[w.Name]
			switch {
			case ok && s.SyncStatus == "synced":
			case !ok:
				v.fail("%s", t.diagnoseMissingSecret(ctx, p.Name, w.Name))
			default:
				v.failWhy(func() string { return t.diagnoseSecretServer(ctx, p.Name, w.Name) }, "istiod of %s cannot sync %s (state %s)", p.Name, w.Name, s.SyncStatus)
			}
		}
	}
	return v
}

func (t *Target) diagnoseMissingSecret(ctx context.Context, primary, remote string) string {
	name := istio.RemoteSecretName(remote)
	_, err := t.Clients[primary].Kube.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("istiod of %s has no remote secret for %s (Secret %s/%s: %v); recreate it (`mclab up` converges)", primary, remote, istio.IstioNamespace, name, err)
	}
	return fmt.Sprintf("istiod of %s did not load Secret %s/%s for %s: check its label %s=true and its data key", primary, istio.IstioNamespace, name, remote, istio.MultiClusterLabel)
}

// diagnoseSecretServer says where a remote secret points and whether that server answers. The token is
// never read into the message.
func (t *Target) diagnoseSecretServer(ctx context.Context, primary, remote string) string {
	s, err := t.Clients[primary].Kube.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, istio.RemoteSecretName(remote), metav1.GetOptions{})
	if err != nil {
		return fmt.Sprintf("its remote secret is gone (%v)", err)
	}
	kc, err := clientcmd.Load(s.Data[remote])
	if err != nil {
		return fmt.Sprintf("its remote secret holds no valid kubeconfig (%v)", err)
	}
	for _, c := range kc.Clusters {
		if loopback(c.Server) && t.istiodInPod(ctx, primary) {
			return fmt.Sprintf("its remote secret points at %s, a loopback address, which from istiod's pod is the pod itself; the server must be an address the cluster reaches (kind: the control-plane container's, as kind's internal kubeconfig has it)", c.Server)
		}
		u, err := url.Parse(c.Server)
		if err != nil {
			return fmt.Sprintf("its remote secret's server %q is not a URL", c.Server)
		}
		conn, err := net.DialTimeout("tcp", u.Host, 2*time.Second)
		if err != nil {
			return fmt.Sprintf("its remote secret points at %s, which does not answer (%v); fix the server address", c.Server, err)
		}
		conn.Close()
		// It answers: try the secret's credentials, as istiod does.
		if cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig(); err == nil {
			cfg.Timeout = RemoteAPITimeout
			if cs, err := kubernetes.NewForConfig(cfg); err == nil {
				if _, err := cs.Discovery().ServerVersion(); err != nil {
					return credentialTrouble(err, primary, remote, c.Server)
				}
				return fmt.Sprintf("its remote secret points at %s, which answers and accepts the secret's credentials: istiod may hold a client made from an older secret (istio/istio#49780); restart istiod of %s", c.Server, primary)
			}
		}
		return fmt.Sprintf("its remote secret points at %s, which answers: check the secret's credentials", c.Server)
	}
	return "its remote secret has no cluster"
}
