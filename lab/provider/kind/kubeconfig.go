package kind

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/state"
)

// The kubeconfigs of a kind lab, per cluster: kind's own, the host's (kind's external one), and the one
// the other clusters use (the internal one, its server the control-plane container's IP).
func (p *Provider) kindKubeconfig(cluster string) string {
	return filepath.Join(p.dir, cluster+".kind.kubeconfig")
}
func (p *Provider) hostKubeconfig(cluster string) string {
	return filepath.Join(p.dir, cluster+".host.kubeconfig")
}
func (p *Provider) clusterKubeconfig(cluster string) string {
	return filepath.Join(p.dir, cluster+".cluster.kubeconfig")
}

// containerIP is a node container's IPv4 address on the kind network.
func (p *Provider) containerIP(ctx context.Context, container string) (string, error) {
	out, err := p.cfg.Runtime.Docker(ctx, "inspect", "-f", "{{.NetworkSettings.Networks."+DefaultNetwork+".IPAddress}}", container)
	if err != nil {
		return "", err
	}
	ip := strings.TrimSpace(string(out))
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", fmt.Errorf("container %s has no address on network %s (got %q)", container, DefaultNetwork, ip)
	}
	return ip, nil
}

// kubeconfigs writes, per cluster, the host's kubeconfig (kind's external one) and the one the other
// clusters use: the internal kubeconfig with the server rewritten to the control-plane container's IP.
func (p *Provider) kubeconfigs(ctx context.Context) error {
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		external, err := p.cfg.Runtime.KubeConfig(name, false)
		if err != nil {
			return err
		}
		host, err := RewriteServer([]byte(external), c.Name, "")
		if err != nil {
			return err
		}
		internal, err := p.cfg.Runtime.KubeConfig(name, true)
		if err != nil {
			return err
		}
		ip, err := p.containerIP(ctx, name+"-control-plane")
		if err != nil {
			return err
		}
		inLab, err := RewriteServer([]byte(internal), c.Name, "https://"+ip+":6443")
		if err != nil {
			return err
		}
		if err := state.WriteFile(p.hostKubeconfig(c.Name), host); err != nil {
			return err
		}
		if err := state.WriteFile(p.clusterKubeconfig(c.Name), inLab); err != nil {
			return err
		}
	}
	return nil
}

// RewriteServer keeps a kubeconfig's first context, names it (and its cluster) after the scenario
// cluster, and points it at server ("" keeps the server).
func RewriteServer(raw []byte, cluster, server string) ([]byte, error) {
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, err
	}
	out := clientcmdapi.NewConfig()
	names := make([]string, 0, len(kc.Contexts))
	for n := range kc.Contexts {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		ctx := kc.Contexts[n]
		cl := kc.Clusters[ctx.Cluster]
		if cl == nil {
			continue
		}
		if server != "" {
			cl.Server = server
		}
		out.Clusters[cluster] = cl
		out.AuthInfos[cluster+"-admin"] = kc.AuthInfos[ctx.AuthInfo]
		out.Contexts[cluster] = &clientcmdapi.Context{Cluster: cluster, AuthInfo: cluster + "-admin"}
		out.CurrentContext = cluster
		break
	}
	if out.CurrentContext == "" {
		return nil, fmt.Errorf("kubeconfig of %s has no context", cluster)
	}
	return clientcmd.Write(*out)
}
