package suites

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

// reachability remembers, for one run, which remote secrets' API servers do not answer with the
// secret's credentials. istiod reviews the tokens of a remote cluster's workloads at that cluster's API
// server through its remote secret (KubeJWTAuthenticator): when that server does not answer, every xDS
// stream and certificate request of the remote's proxies waits for istiod's TokenReview to time out.
// The run learns it once and every check that needs the path fails at once, naming the server, instead
// of waiting out its own 15-20 s timeout on each poll.
type reachability struct {
	mu sync.Mutex
	// seen is keyed by primary/remote; an answering server is asked again after answeringFor.
	seen map[string]reachResult
}

type reachResult struct {
	server string
	err    error
	at     time.Time
}

// answeringFor is how long a server seen answering is trusted before it is asked again.
const answeringFor = 5 * time.Second

var reachInit sync.Mutex

func (t *Target) reach() *reachability {
	reachInit.Lock()
	defer reachInit.Unlock()
	if t.reachable == nil {
		t.reachable = &reachability{seen: map[string]reachResult{}}
	}
	return t.reachable
}

// secretConfig is the client configuration of primary's remote secret for remote, as istiod builds it
// (the kubeconfig under the key named after the cluster), with RemoteAPITimeout per call.
func (t *Target) secretConfig(ctx context.Context, primary, remote string) (*rest.Config, error) {
	name := istio.RemoteSecretName(remote)
	s, err := t.Clients[primary].Kube.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("reading Secret %s/%s in %s: %w", istio.IstioNamespace, name, primary, err)
	}
	kc, err := clientcmd.Load(s.Data[remote])
	if err != nil || len(kc.Clusters) == 0 {
		return nil, fmt.Errorf("Secret %s/%s in %s holds no kubeconfig under key %q (%v)", istio.IstioNamespace, name, primary, remote, err)
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("the kubeconfig in Secret %s/%s of %s is unusable: %w", istio.IstioNamespace, name, primary, err)
	}
	cfg.Timeout = RemoteAPITimeout
	return cfg, nil
}

// noteSecretServer records what a call through primary's remote secret for remote found: err nil when
// the server answered, an unreachable error when it did not (any other error is not about reaching it).
func (t *Target) noteSecretServer(primary, remote, server string, err error) {
	if err != nil && !unreachable(err) {
		return
	}
	r := t.reach()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen[primary+"/"+remote] = reachResult{server: server, err: err, at: time.Now()}
}

// secretServerDown says, as a finding, that istiod of serving cannot review the tokens of cluster c's
// workloads because its remote secret for c points at an API server that does not answer; nil when
// serving is c itself, when the server answers, or when the secret cannot be read (the remote-access
// checks name that). A server seen down stays down for the run; one seen answering is asked again
// after answeringFor.
func (t *Target) secretServerDown(ctx context.Context, serving, c scenario.Cluster) error {
	if serving.Name == c.Name || t.Clients[serving.Name] == nil {
		return nil
	}
	key := serving.Name + "/" + c.Name
	r := t.reach()
	r.mu.Lock()
	res, ok := r.seen[key]
	r.mu.Unlock()
	if !ok || (res.err == nil && time.Since(res.at) > answeringFor) {
		cfg, err := t.secretConfig(ctx, serving.Name, c.Name)
		if err != nil {
			return nil
		}
		cs, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			return nil
		}
		_, err = cs.Discovery().ServerVersion()
		t.noteSecretServer(serving.Name, c.Name, cfg.Host, err)
		if err != nil && !unreachable(err) {
			return nil
		}
		res = reachResult{server: cfg.Host, err: err}
	}
	if res.err == nil {
		return nil
	}
	return finding(fmt.Errorf("istiod of %s cannot authenticate %s's proxies: it reviews their tokens at %s's API server through its remote secret for %s, which points at %s, and that does not answer (%v)", serving.Name, c.Name, c.Name, c.Name, res.server, short(res.err)))
}
