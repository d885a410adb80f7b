package kind

import (
	"context"
	"slices"
	"time"

	"golang.org/x/sync/errgroup"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// Clusters implements provider.Provider: node containers from Docker, nodes from each API server.
func (p *Provider) Clusters(ctx context.Context) ([]provider.ClusterInfo, error) {
	existing, listErr := p.cfg.Runtime.ListClusters()
	out := make([]provider.ClusterInfo, len(p.cfg.Scenario.Clusters))
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range p.cfg.Scenario.Clusters {
		g.Go(func() error {
			out[i] = p.clusterInfo(gctx, c, existing, listErr)
			return nil
		})
	}
	_ = g.Wait()
	return out, nil
}
func (p *Provider) clusterInfo(ctx context.Context, c scenario.Cluster, existing []string, listErr error) provider.ClusterInfo {
	info := provider.ClusterInfo{Name: c.Name, Network: c.Network, PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet}
	name := ClusterName(p.cfg.Lab, c.Name)
	switch {
	case listErr != nil:
		info.Message = "docker does not answer: " + listErr.Error()
		return info
	case !slices.Contains(existing, name):
		info.Message = "kind cluster " + name + " does not exist"
		return info
	}
	nodes, _ := p.cfg.Runtime.ListNodes(name)
	for _, n := range nodes {
		ip, err := p.containerIP(ctx, n)
		info.Components = append(info.Components, provider.Component{Name: n, Running: err == nil, Address: ip})
	}
	if kc, err := clientcmd.LoadFromFile(p.hostKubeconfig(c.Name)); err == nil {
		for _, cl := range kc.Clusters {
			info.Server = cl.Server
		}
	}
	kc, err := p.client(ctx, c.Name)
	if err != nil {
		info.Message = err.Error()
		return info
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	list, err := kc.Kube.CoreV1().Nodes().List(ctx, metav1.ListOptions{})
	if err != nil {
		info.Message = "the API server does not answer: " + err.Error()
		return info
	}
	info.Ready = len(list.Items) > 0
	for _, n := range list.Items {
		node := provider.Node{Name: n.Name, PodCIDR: n.Spec.PodCIDR, Region: n.Labels["topology.kubernetes.io/region"], Zone: n.Labels["topology.kubernetes.io/zone"]}
		for _, cond := range n.Status.Conditions {
			if cond.Type == corev1.NodeReady {
				node.Ready = cond.Status == corev1.ConditionTrue
			}
		}
		for _, a := range n.Status.Addresses {
			if a.Type == corev1.NodeInternalIP {
				node.Internal = a.Address
			}
		}
		if !node.Ready {
			info.Ready = false
			info.Message = "node " + n.Name + " is not Ready"
		}
		info.Nodes = append(info.Nodes, node)
	}
	return info
}
