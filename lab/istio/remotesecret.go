package istio

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// Remote-secret conventions (istioctl/pkg/multicluster, pkg/kube/multicluster/secretcontroller.go).
const (
	// MultiClusterLabel marks the Secrets istiod's secret controller watches.
	MultiClusterLabel = "istio/multiCluster"
	// ClusterAnnotation names the cluster a remote secret describes (istioctl's; istiod reads the data key).
	ClusterAnnotation = "networking.istio.io/cluster"
)

// RemoteSecretName is the Secret istioctl create-remote-secret makes for a cluster.
func RemoteSecretName(cluster string) string { return "istio-remote-secret-" + cluster }

// RemoteSecret builds what `istioctl create-remote-secret --name <cluster>` prints: a Secret labelled
// istio/multiCluster=true, annotated with the cluster, whose one data key (the cluster's name, which
// istiod takes as its cluster ID) holds a kubeconfig with one cluster, user and context, all named after
// the cluster, and a bearer token.
func RemoteSecret(cluster, server string, caData, token []byte) (*corev1.Secret, error) {
	kc := clientcmdapi.NewConfig()
	kc.Clusters[cluster] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: caData}
	kc.AuthInfos[cluster] = &clientcmdapi.AuthInfo{Token: string(token)}
	kc.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster}
	kc.CurrentContext = cluster
	data, err := clientcmd.Write(*kc)
	if err != nil {
		return nil, err
	}
	return &corev1.Secret{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Secret"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        RemoteSecretName(cluster),
			Namespace:   IstioNamespace,
			Labels:      map[string]string{MultiClusterLabel: "true"},
			Annotations: map[string]string{ClusterAnnotation: cluster},
		},
		Type: corev1.SecretTypeOpaque,
		Data: map[string][]byte{cluster: data},
	}, nil
}

// remoteSecrets gives every primary a remote secret for every cluster it watches, with a server address
// the primary's istiod can reach (the provider's in-lab view), then waits until each is synced.
func (in *Installer) remoteSecrets(ctx context.Context) error {
	t := in.topo()
	for _, p := range t.Primaries() {
		pc, err := in.client(ctx, p.Name)
		if err != nil {
			return err
		}
		for _, w := range t.Watched(p) {
			wc, err := in.client(ctx, w.Name)
			if err != nil {
				return err
			}
			token, ca, err := readerToken(ctx, wc)
			if err != nil {
				return err
			}
			kc, err := in.Provider.Kubeconfig(ctx, w.Name, provider.FromCluster)
			if err != nil {
				return err
			}
			server := ""
			for _, cl := range kc.Clusters {
				server = cl.Server
			}
			secret, err := RemoteSecret(w.Name, server, ca, token)
			if err != nil {
				return err
			}
			if err := pc.ApplyTyped(ctx, secret); err != nil {
				return err
			}
		}
	}
	return in.forEach(ctx, t.Primaries(), func(ctx context.Context, p scenario.Cluster) error {
		return in.waitSynced(ctx, p, t.Watched(p))
	})
}

// ClusterSync is one entry of istiod's /debug/clusterz.
type ClusterSync struct {
	ID         string `json:"id"`
	SecretName string `json:"secretName"`
	SyncStatus string `json:"syncStatus"`
}

// Clusterz reads an istiod's /debug/clusterz (what `istioctl remote-clusters` shows).
func Clusterz(ctx context.Context, debugAddr string) ([]ClusterSync, error) {
	var out []ClusterSync
	return out, getJSON(ctx, "http://"+debugAddr+"/debug/clusterz", &out)
}

func getJSON(ctx context.Context, url string, v any) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: HTTP %d: %s", url, resp.StatusCode, body)
	}
	return json.Unmarshal(body, v)
}

func (in *Installer) waitSynced(ctx context.Context, p scenario.Cluster, watched []scenario.Cluster) error {
	err := in.waitSyncedOnce(ctx, p, watched)
	if err == nil || ctx.Err() != nil {
		return err
	}
	// istiod can miss a remote secret that is created again after its cluster failed to sync (it logs
	// nothing for the new Secret; seen on a local lab here, and istio/istio#49780: "works again after
	// an istiod restart"). Restart it once, as operators do, and wait again.
	if rerr := in.restartIstiod(ctx, p); rerr != nil {
		return fmt.Errorf("%w; restarting istiod of %s: %v", err, p.Name, rerr)
	}
	if err2 := in.waitSyncedOnce(ctx, p, watched); err2 != nil {
		return fmt.Errorf("%w (also after restarting istiod of %s)", err2, p.Name)
	}
	return nil
}

// restartIstiod restarts a primary's istiod: its process, or its pods (the Deployment makes new ones).
func (in *Installer) restartIstiod(ctx context.Context, p scenario.Cluster) error {
	if r, ok := in.Provider.(provider.IstiodRestarter); ok {
		if err := r.StopIstiod(ctx, p.Name); err != nil {
			return err
		}
		return in.startIstiod(ctx, p)
	}
	kc, err := in.client(ctx, p.Name)
	if err != nil {
		return err
	}
	if err := kc.Kube.CoreV1().Pods(IstioNamespace).DeleteCollection(ctx, metav1.DeleteOptions{}, metav1.ListOptions{LabelSelector: IstiodSelector}); err != nil {
		return err
	}
	in.mu.Lock()
	if in.eps != nil {
		in.eps.Close() // port-forwards to the old pod
		in.eps = nil
	}
	in.mu.Unlock()
	return in.startIstiod(ctx, p)
}

// syncWait bounds the wait for istiod to sync every remote cluster; unseenWait is how long a watched
// cluster may stay absent from /debug/clusterz (or closed, or timed out) before istiod is taken to have
// missed its secret: a secret istiod does see is listed within a second (re-created: 0.2 s p99 to its
// endpoints, `mclab bench --scenario propagation`), and one it missed stays unlisted until a restart.
var (
	syncWait   = 60 * time.Second
	unseenWait = 10 * time.Second
)

// stuckStatus reports whether a cluster's /debug/clusterz status will not become synced by waiting.
func stuckStatus(status string, listed bool) bool {
	return !listed || status == "closed" || status == "timeout"
}

func (in *Installer) waitSyncedOnce(ctx context.Context, p scenario.Cluster, watched []scenario.Cluster) error {
	ep, err := in.istiodEndpoint(ctx, p.Name)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	var last []ClusterSync
	var stuckSince time.Time
	for {
		got, err := Clusterz(ctx, ep.Debug)
		if err == nil {
			last = got
			status := map[string]string{}
			listed := map[string]bool{}
			for _, s := range got {
				status[s.ID], listed[s.ID] = s.SyncStatus, true
			}
			missing, stuck := "", false
			for _, w := range watched {
				if status[w.Name] != "synced" {
					missing = w.Name
					stuck = stuck || stuckStatus(status[w.Name], listed[w.Name])
				}
			}
			if missing == "" {
				return nil
			}
			switch {
			case !stuck:
				stuckSince = time.Time{}
			case stuckSince.IsZero():
				stuckSince = time.Now()
			case time.Since(stuckSince) >= unseenWait:
				return fmt.Errorf("istiod of %s does not list %s as syncing after %s: /debug/clusterz says %+v", p.Name, missing, unseenWait, last)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("istiod of %s has not synced every remote cluster after %s: /debug/clusterz says %+v", p.Name, syncWait, last)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// DebugJSON reads one of istiod's debug endpoints (/debug/mesh, /debug/networkz, ...) as JSON.
func DebugJSON(ctx context.Context, debugAddr, path string, v any) error {
	return getJSON(ctx, "http://"+debugAddr+path, v)
}
