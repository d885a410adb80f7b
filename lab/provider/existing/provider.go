// Package existing is the provider for clusters that exist: each scenario cluster is a kubeconfig
// context. It never creates or deletes clusters; `down` forgets the lab and leaves the clusters alone.
package existing

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// Provider maps a lab's clusters to kubeconfig contexts.
type Provider struct {
	lab    string
	s      *scenario.Scenario
	tunnel provider.PodTunnel
}

// New returns the provider for a lab.
func New(lab string, s *scenario.Scenario) *Provider {
	p := &Provider{lab: lab, s: s}
	p.tunnel = &kube.Tunnel{Client: p.client}
	return p
}

// WithTunnel makes the provider reach pods through t instead of the API servers (tests).
func (p *Provider) WithTunnel(t provider.PodTunnel) *Provider {
	p.tunnel = t
	return p
}

var (
	_ provider.Provider        = (*Provider)(nil)
	_ provider.Tunneled        = (*Provider)(nil)
	_ provider.IstiodEndpoints = (*Provider)(nil)
)

// Tunnel implements provider.Tunneled: port-forward and exec through the clusters' API servers.
func (p *Provider) Tunnel() provider.PodTunnel { return p.tunnel }

func (p *Provider) client(ctx context.Context, cluster string) (*kube.Client, error) {
	kc, err := p.Kubeconfig(ctx, cluster, provider.FromHost)
	if err != nil {
		return nil, err
	}
	return kube.NewClientFromKubeconfig(cluster, kc)
}

// Name implements provider.Provider.
func (p *Provider) Name() scenario.ProviderName { return scenario.ProviderExisting }

// KwokAnnotation marks kwok's fake nodes.
const KwokAnnotation = "kwok.x-k8s.io/node"

// Capabilities implements provider.Provider. Whether pods run containers is read from the nodes: a
// cluster of kwok nodes (a local lab reached as existing clusters) runs none.
func (p *Provider) Capabilities() provider.Capabilities {
	caps := provider.Capabilities{CreatesClusters: false, RunsContainers: true, LoadBalancer: "cluster", Istiod: provider.IstiodInCluster}
	if p.s != nil && len(p.s.Clusters) > 0 {
		if cs, err := p.clientset(p.s.Clusters[0].Name); err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil && len(nodes.Items) > 0 && nodes.Items[0].Annotations[KwokAnnotation] != "" {
				caps.RunsContainers = false
				caps.NoContainersReason = "the existing clusters' nodes are kwok fakes: pods run no containers"
			}
		}
	}
	return caps
}

func (p *Provider) options() scenario.ExistingOptions {
	if p.s != nil && p.s.Provider.Existing != nil {
		return *p.s.Provider.Existing
	}
	return scenario.ExistingOptions{}
}

// loadingRules are kubectl's: the scenario's kubeconfig (or --kubeconfig) alone, else every file of
// $KUBECONFIG merged, else ~/.kube/config (client-go's loading rules).
func (p *Provider) loadingRules() *clientcmd.ClientConfigLoadingRules {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if k := p.options().Kubeconfig; k != "" {
		rules.ExplicitPath = k
	}
	return rules
}

// kubeconfigPath names the files read, for messages.
func (p *Provider) kubeconfigPath() string {
	rules := p.loadingRules()
	if rules.ExplicitPath != "" {
		return rules.ExplicitPath
	}
	return strings.Join(rules.Precedence, string(filepath.ListSeparator))
}

// loadConfig reads the kubeconfig as kubectl does (a $KUBECONFIG list merged, paths resolved).
func (p *Provider) loadConfig() (*clientcmdapi.Config, error) {
	cfg, err := p.loadingRules().Load()
	if err != nil {
		return nil, err
	}
	if len(cfg.Contexts) == 0 {
		return nil, fmt.Errorf("no contexts in %s", p.kubeconfigPath())
	}
	return cfg, nil
}

// Context is the kubeconfig context of a cluster: the scenario's mapping, else a context named like the
// cluster, else one named <scenario>-<cluster> (how mclab names its labs' contexts).
func (p *Provider) Context(cluster string) (string, error) {
	raw, err := p.loadConfig()
	if err != nil {
		return "", fmt.Errorf("reading kubeconfig %s: %w; set provider.existing.kubeconfig, --kubeconfig or $KUBECONFIG", p.kubeconfigPath(), err)
	}
	candidates := []string{cluster}
	if p.s != nil {
		candidates = append(candidates, p.s.Name+"-"+cluster)
	}
	if c, ok := p.options().Contexts[cluster]; ok {
		candidates = []string{c}
	}
	for _, c := range candidates {
		if _, ok := raw.Contexts[c]; ok {
			return c, nil
		}
	}
	var have []string
	for n := range raw.Contexts {
		have = append(have, n)
	}
	return "", fmt.Errorf("cluster %s: no context %s in %s (it has %s); map it with provider.existing.contexts", cluster, strings.Join(candidates, " or "), p.kubeconfigPath(), strings.Join(have, ", "))
}

// Plan implements provider.Provider: map every cluster to its context and check that it answers.
func (p *Provider) Plan(s *scenario.Scenario) ([]plan.Step, error) {
	p.s = s
	var details []string
	for _, c := range s.Clusters {
		ctx, err := p.Context(c.Name)
		if err != nil {
			ctx = "<" + err.Error() + ">"
		}
		details = append(details, fmt.Sprintf("%s -> context %s of %s", c.Name, ctx, p.kubeconfigPath()))
	}
	details = append(details, "nothing is created; down leaves the clusters alone")
	return []plan.Step{{Title: "Mapping clusters to kubeconfig contexts", Details: details, Run: p.check}}, nil
}

func (p *Provider) check(ctx context.Context) error {
	var errs []error
	for _, c := range p.s.Clusters {
		cs, err := p.clientset(c.Name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if _, err := cs.Discovery().ServerVersion(); err != nil {
			errs = append(errs, fmt.Errorf("cluster %s does not answer: %w", c.Name, err))
		}
	}
	return errors.Join(errs...)
}

// Delete implements provider.Provider: existing clusters are never deleted.
func (p *Provider) Delete(context.Context) error { return nil }

// Kubeconfig implements provider.Provider: the cluster's context alone, renamed after the cluster.
func (p *Provider) Kubeconfig(_ context.Context, cluster string, _ provider.Viewpoint) (*clientcmdapi.Config, error) {
	name, err := p.Context(cluster)
	if err != nil {
		return nil, err
	}
	raw, err := p.loadConfig()
	if err != nil {
		return nil, err
	}
	src := raw.Contexts[name]
	out := clientcmdapi.NewConfig()
	out.Clusters[cluster] = raw.Clusters[src.Cluster]
	out.AuthInfos[cluster] = raw.AuthInfos[src.AuthInfo]
	out.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster, Namespace: src.Namespace}
	out.CurrentContext = cluster
	if out.Clusters[cluster] == nil || out.AuthInfos[cluster] == nil {
		return nil, fmt.Errorf("context %s refers to a missing cluster or user", name)
	}
	return out, nil
}

func (p *Provider) clientset(cluster string) (*kubernetes.Clientset, error) {
	kc, err := p.Kubeconfig(context.Background(), cluster, provider.FromHost)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, err
	}
	cfg.Timeout = 10 * time.Second
	return kubernetes.NewForConfig(cfg)
}

// Clusters implements provider.Provider: the nodes of every cluster and whether they are Ready.
func (p *Provider) Clusters(ctx context.Context) ([]provider.ClusterInfo, error) {
	var out []provider.ClusterInfo
	for _, c := range p.s.Clusters {
		info := provider.ClusterInfo{Name: c.Name, Network: c.Network, PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet}
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err == nil {
			info.Server = kc.Clusters[c.Name].Server
		}
		cs, err := p.clientset(c.Name)
		if err != nil {
			info.Message = err.Error()
			out = append(out, info)
			continue
		}
		nodes, err := cs.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
		if err != nil {
			info.Message = fmt.Sprintf("listing nodes: %v", err)
			out = append(out, info)
			continue
		}
		ready := true
		for _, n := range nodes.Items {
			nd := provider.Node{Name: n.Name, PodCIDR: n.Spec.PodCIDR, Region: n.Labels[corev1.LabelTopologyRegion], Zone: n.Labels[corev1.LabelTopologyZone]}
			for _, cond := range n.Status.Conditions {
				if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
					nd.Ready = true
				}
			}
			ready = ready && nd.Ready
			info.Nodes = append(info.Nodes, nd)
		}
		info.Ready = ready && len(nodes.Items) > 0
		if !info.Ready {
			info.Message = "not every node is Ready"
		}
		out = append(out, info)
	}
	return out, nil
}

// IstiodEndpoint implements provider.IstiodEndpoints from the scenario's provider.existing.istiod (an
// external control plane, or addresses a CI job keeps open); without them, callers port-forward to the
// istiod pod through Tunnel.
func (p *Provider) IstiodEndpoint(cluster string) (provider.IstiodEndpoint, error) {
	a, ok := p.options().Istiod[cluster]
	if !ok {
		return provider.IstiodEndpoint{}, fmt.Errorf("no address for the istiod of %s in provider.existing.istiod", cluster)
	}
	return provider.IstiodEndpoint{XDS: a.XDS, XDSTLS: a.XDSTLS, Debug: a.Debug, Monitoring: a.Monitoring}, nil
}
