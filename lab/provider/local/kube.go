package local

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// writeAdminKubeconfig writes the cluster's admin kubeconfig (certificates embedded, mode 0600), with
// one context named after the cluster.
func writeAdminKubeconfig(l clusterLayout, cluster string, port int) error {
	pki := l.pki()
	ca, err := readFile(pki.caCert())
	if err != nil {
		return err
	}
	cert, err := readFile(pki.adminCert())
	if err != nil {
		return err
	}
	key, err := readFile(pki.adminKey())
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters[cluster] = &clientcmdapi.Cluster{Server: fmt.Sprintf("https://127.0.0.1:%d", port), CertificateAuthorityData: ca}
	cfg.AuthInfos[cluster+"-admin"] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster + "-admin"}
	cfg.CurrentContext = cluster
	data, err := clientcmd.Write(*cfg)
	if err != nil {
		return err
	}
	return state.WriteFile(l.kubeconfig(), data)
}

func loadKubeconfig(path string) (*clientcmdapi.Config, error) {
	if _, err := readFile(path); err != nil {
		return nil, err
	}
	return clientcmd.LoadFromFile(path)
}

func client(l clusterLayout, timeout time.Duration) (*kubernetes.Clientset, error) {
	cfg, err := clientcmd.BuildConfigFromFlags("", l.kubeconfig())
	if err != nil {
		return nil, err
	}
	cfg.QPS, cfg.Burst, cfg.Timeout = 50, 100, timeout
	cfg.UserAgent = "mclab"
	return kubernetes.NewForConfig(cfg)
}

// waitAPIServer polls /readyz until it answers ok (or, with servingOnly, until it answers at all: the
// server is serving while its post-start hooks still run), failing early with the log's tail when the
// process exits.
func waitAPIServer(ctx context.Context, l clusterLayout, rec *procRecord, cluster string, servingOnly bool) error {
	cs, err := client(l, 2*time.Second)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, apiserverTimeout)
	defer cancel()
	var last error
	for {
		if !rec.alive() {
			return exitedError("kube-apiserver", cluster, rec.Log)
		}
		body, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		if err == nil && strings.TrimSpace(string(body)) == "ok" {
			return nil
		}
		if servingOnly && apierrors.ReasonForError(err) != metav1.StatusReasonUnknown {
			return nil // an HTTP answer, not a connection error
		}
		last = err
		select {
		case <-ctx.Done():
			if context.Cause(ctx) == context.DeadlineExceeded || ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("kube-apiserver of %s not ready after %s (last error: %v); see %s", cluster, apiserverTimeout, last, rec.Log)
			}
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func nodeNames(cluster string, n int) []string {
	names := make([]string, n)
	for i := range names {
		names[i] = fmt.Sprintf("%s-node-%d", cluster, i)
	}
	return names
}

// kwokNode is a fake node that kwok manages: the annotation kwok selects on, and the region and zone that
// Istio turns into endpoint locality. It has no taint, so unmodified manifests schedule on it.
func kwokNode(name string, c scenario.Cluster) *corev1.Node {
	return &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Annotations: map[string]string{"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
			Labels: map[string]string{
				"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64",
				"beta.kubernetes.io/os": "linux", "beta.kubernetes.io/arch": "amd64", "type": "kwok",
				"node-role.kubernetes.io/agent": "", "kubernetes.io/role": "agent",
				corev1.LabelTopologyRegion: c.Region, corev1.LabelTopologyZone: c.Zone,
			},
		},
	}
}

func (p *Provider) nodes(ctx context.Context, c scenario.Cluster, n int) error {
	l := p.layout(c.Name)
	cs, err := client(l, 10*time.Second)
	if err != nil {
		return err
	}
	names := nodeNames(c.Name, n)
	for _, name := range names {
		_, err := cs.CoreV1().Nodes().Create(ctx, kwokNode(name, c), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("registering node %s in %s: %w", name, c.Name, err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, nodeTimeout)
	defer cancel()
	for {
		nodes, err := listNodes(ctx, l)
		pending := []string{}
		if err == nil {
			ready := map[string]bool{}
			for _, nd := range nodes {
				ready[nd.Name] = nd.Ready && nd.PodCIDR != ""
			}
			for _, name := range names {
				if !ready[name] {
					pending = append(pending, name)
				}
			}
			if len(pending) == 0 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if ctx.Err() == context.DeadlineExceeded {
				return fmt.Errorf("nodes %s of %s not Ready with a podCIDR after %s (last error: %v); check kwok's log %s and kube-controller-manager's %s",
					strings.Join(pending, ", "), c.Name, nodeTimeout, err, l.log("kwok"), l.log("kube-controller-manager"))
			}
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func listNodes(ctx context.Context, l clusterLayout) ([]provider.Node, error) {
	cs, err := client(l, 5*time.Second)
	if err != nil {
		return nil, err
	}
	list, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing nodes: %w", err)
	}
	var out []provider.Node
	for _, n := range list.Items {
		nd := provider.Node{Name: n.Name, PodCIDR: n.Spec.PodCIDR, Region: n.Labels[corev1.LabelTopologyRegion], Zone: n.Labels[corev1.LabelTopologyZone]}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				nd.Ready = true
			}
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				nd.Internal = a.Address
			}
		}
		out = append(out, nd)
	}
	return out, nil
}
