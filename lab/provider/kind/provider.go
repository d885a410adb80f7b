package kind

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	kindcluster "sigs.k8s.io/kind/pkg/cluster"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// Config configures the provider for one lab.
type Config struct {
	Lab      string
	Store    state.Store
	Scenario *scenario.Scenario
	// Runner runs docker (and nothing else).
	Runner exec.Runner
}

// Provider creates a lab's clusters as kind clusters.
type Provider struct {
	cfg Config
	dir string
}

// New returns the kind provider for a lab.
func New(cfg Config) *Provider {
	return &Provider{cfg: cfg, dir: filepath.Join(cfg.Store.Dir(cfg.Lab), "kind")}
}

var _ provider.Provider = (*Provider)(nil)

// Name implements provider.Provider.
func (p *Provider) Name() scenario.ProviderName { return scenario.ProviderKind }

// Capabilities implements provider.Provider.
func (p *Provider) Capabilities() provider.Capabilities {
	return provider.Capabilities{CreatesClusters: true, RunsContainers: true, LoadBalancer: "metallb", Istiod: provider.IstiodInCluster,
		Incomplete: "the kind provider plans labs, but creating them is not finished (in-cluster istiod, images, node-log export); use --provider local"}
}

// DefaultNetwork is kind's Docker network and the subnet it usually has; the real subnet is read at up.
const (
	DefaultNetwork = "kind"
	defaultSubnet  = "172.18.0.0/16"
)

func kindOptions(s *scenario.Scenario) scenario.KindOptions {
	if s.Provider.Kind != nil {
		return *s.Provider.Kind
	}
	return scenario.KindOptions{}
}

// Plan implements provider.Provider.
func (p *Provider) Plan(s *scenario.Scenario) ([]plan.Step, error) {
	p.cfg.Scenario = s
	opts := kindOptions(s)
	var names []string
	var cfgDetails []string
	for _, c := range s.Clusters {
		names = append(names, c.Name)
		data, err := yaml.Marshal(ClusterConfig(c, opts))
		if err != nil {
			return nil, err
		}
		cfgDetails = append(cfgDetails, fmt.Sprintf("kind cluster %s:\n%s", ClusterName(p.cfg.Lab, c.Name), strings.TrimSpace(string(data))))
	}
	cfgDetails = append(cfgDetails, "wait: every node Ready within 3m; on failure the clusters are deleted (or kept with --retain)")
	nodes, via := map[string][]string{}, map[string]string{}
	for _, c := range s.Clusters {
		cp := ClusterName(p.cfg.Lab, c.Name) + "-control-plane"
		nodes[c.Name] = []string{cp}
		for i := 1; i <= opts.Workers; i++ {
			nodes[c.Name] = append(nodes[c.Name], fmt.Sprintf("%s-worker%s", ClusterName(p.cfg.Lab, c.Name), suffix(i)))
		}
		via[c.Name] = "<IP of " + cp + ">"
	}
	var routeDetails []string
	for _, r := range Routes(s, nodes, via) {
		routeDetails = append(routeDetails, "docker exec "+r.String())
	}
	if len(routeDetails) == 0 {
		routeDetails = []string{"no two clusters share a network: no routes; only LoadBalancer addresses cross"}
	}
	pools, err := Pools(netip.MustParsePrefix(defaultSubnet), names)
	if err != nil {
		return nil, err
	}
	var lbDetails []string
	for _, c := range names {
		lbDetails = append(lbDetails, fmt.Sprintf("%s: MetalLB v0.14.3 (fixtures/metallb), IPAddressPool %s-%s (for kind's usual %s; carved from the real subnet at up)", c, pools[c][0], pools[c][1], defaultSubnet))
	}
	return []plan.Step{
		{Title: "Preflight", Details: []string{"docker answers; CPU and memory for the clusters; fs.inotify limits; free disk", "each failure says how to fix it"}, Run: p.preflight},
		{Title: "Creating kind clusters " + strings.Join(names, ", ") + " (in parallel)", Details: cfgDetails, Run: p.create},
		{Title: "Writing kubeconfigs reachable from other clusters", Details: []string{"kind's internal kubeconfig with the server rewritten to the control-plane container's IP on the kind network (kind#1558; as Istio's CI does)"}, Run: p.kubeconfigs},
		{Title: "Routing between clusters on the same network", Details: routeDetails, Run: p.routes},
		{Title: "Installing MetalLB", Details: lbDetails, Run: p.metallb},
	}, nil
}

func suffix(i int) string {
	if i == 1 {
		return ""
	}
	return fmt.Sprint(i)
}

// preflight checks what kind needs and says how to fix each failure.
func (p *Provider) preflight(ctx context.Context) error {
	var problems []string
	if _, err := p.cfg.Runner.Run(ctx, "docker", "version", "--format", "{{.Server.Version}}"); err != nil {
		problems = append(problems, "docker does not answer ("+firstLine(err)+"): start Docker (or use --provider local, which needs no containers)")
	}
	for _, l := range []struct {
		file string
		min  int
	}{{"/proc/sys/fs/inotify/max_user_watches", 524288}, {"/proc/sys/fs/inotify/max_user_instances", 512}} {
		data, err := os.ReadFile(l.file)
		var v int
		if err == nil {
			fmt.Sscan(strings.TrimSpace(string(data)), &v)
		}
		if err == nil && v < l.min {
			key := strings.ReplaceAll(strings.TrimPrefix(l.file, "/proc/sys/"), "/", ".")
			problems = append(problems, fmt.Sprintf("%s is %d, several kind clusters need %d (\"too many open files\"): sudo sysctl %s=%d", key, v, l.min, key, l.min))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("preflight:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

func firstLine(err error) string {
	s := err.Error()
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// create makes the clusters in parallel with kind's Go API.
func (p *Provider) create(ctx context.Context) error {
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	opts := kindOptions(p.cfg.Scenario)
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	existing, _ := kp.List()
	g, _ := errgroup.WithContext(ctx)
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		if contains(existing, name) {
			continue
		}
		g.Go(func() error {
			return kp.Create(name,
				kindcluster.CreateWithV1Alpha4Config(ClusterConfig(c, opts)),
				kindcluster.CreateWithWaitForReady(3*time.Minute),
				kindcluster.CreateWithKubeconfigPath(filepath.Join(p.dir, c.Name+".host.kubeconfig")),
				kindcluster.CreateWithDisplayUsage(false), kindcluster.CreateWithDisplaySalutation(false))
		})
	}
	return g.Wait()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// containerIP is a node container's IPv4 address on the kind network.
func (p *Provider) containerIP(ctx context.Context, container string) (string, error) {
	out, err := p.cfg.Runner.Run(ctx, "docker", "inspect", "-f", "{{.NetworkSettings.Networks."+DefaultNetwork+".IPAddress}}", container)
	if err != nil {
		return "", err
	}
	ip := strings.TrimSpace(string(out))
	if _, err := netip.ParseAddr(ip); err != nil {
		return "", fmt.Errorf("container %s has no address on network %s (got %q)", container, DefaultNetwork, ip)
	}
	return ip, nil
}

// kubeconfigs writes, per cluster, the internal kubeconfig with the server rewritten to the
// control-plane container's IP: it works from the host (on Linux) and from the other clusters.
func (p *Provider) kubeconfigs(ctx context.Context) error {
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		raw, err := kp.KubeConfig(name, true)
		if err != nil {
			return err
		}
		ip, err := p.containerIP(ctx, name+"-control-plane")
		if err != nil {
			return err
		}
		data, err := RewriteServer([]byte(raw), c.Name, "https://"+ip+":6443")
		if err != nil {
			return err
		}
		if err := state.WriteFile(filepath.Join(p.dir, c.Name+".kubeconfig"), data); err != nil {
			return err
		}
	}
	return nil
}

// RewriteServer points every cluster of a kubeconfig at server and names its single context after the
// cluster.
func RewriteServer(raw []byte, cluster, server string) ([]byte, error) {
	kc, err := clientcmd.Load(raw)
	if err != nil {
		return nil, err
	}
	out := clientcmdapi.NewConfig()
	for _, ctx := range kc.Contexts {
		cl := kc.Clusters[ctx.Cluster]
		if cl == nil {
			continue
		}
		cl.Server = server
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

// routes adds the routes between same-network clusters on every node.
func (p *Provider) routes(ctx context.Context) error {
	nodes, via := map[string][]string{}, map[string]string{}
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		out, err := p.cfg.Runner.Run(ctx, "docker", "ps", "--filter", "label=io.x-k8s.kind.cluster="+name, "--format", "{{.Names}}")
		if err != nil {
			return err
		}
		nodes[c.Name] = strings.Fields(string(out))
		if via[c.Name], err = p.containerIP(ctx, name+"-control-plane"); err != nil {
			return err
		}
	}
	for _, r := range Routes(p.cfg.Scenario, nodes, via) {
		if out, err := p.cfg.Runner.Run(ctx, "docker", "exec", r.Node, "ip", "route", "replace", r.Dest, "via", r.Via); err != nil {
			return fmt.Errorf("%s: %w (%s)", r, err, out)
		}
	}
	return nil
}

// NetworkSubnet reads the IPv4 subnet of kind's Docker network (a dual-stack network lists two).
func (p *Provider) NetworkSubnet(ctx context.Context) (netip.Prefix, error) {
	out, err := p.cfg.Runner.Run(ctx, "docker", "network", "inspect", DefaultNetwork, "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}")
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("reading the %s network: %w", DefaultNetwork, err)
	}
	for _, f := range strings.Fields(string(out)) {
		if pre, err := netip.ParsePrefix(f); err == nil && pre.Addr().Is4() {
			return pre, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("the %s network has no IPv4 subnet (%q); recreate it with one: docker network rm kind", DefaultNetwork, strings.TrimSpace(string(out)))
}

// metallb installs MetalLB (the manifest Istio's CI uses) in every cluster, waits for its controller,
// and gives each cluster its own pool carved from the kind network's subnet.
func (p *Provider) metallb(ctx context.Context) error {
	subnet, err := p.NetworkSubnet(ctx)
	if err != nil {
		return err
	}
	var names []string
	for _, c := range p.cfg.Scenario.Clusters {
		names = append(names, c.Name)
	}
	pools, err := Pools(subnet, names)
	if err != nil {
		return err
	}
	manifest, err := fixtures.FS.ReadFile("metallb/metallb-native.yaml")
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range p.cfg.Scenario.Clusters {
		g.Go(func() error {
			kc, err := p.client(gctx, c.Name)
			if err != nil {
				return err
			}
			if err := kc.ApplyManifest(gctx, string(manifest), "metallb-system"); err != nil {
				return err
			}
			if err := waitDeploymentAvailable(gctx, kc, "metallb-system", "controller", 3*time.Minute); err != nil {
				return fmt.Errorf("MetalLB in %s: %w; LoadBalancer Services would stay <pending> (check image pulls: docker pull registry.istio.io/testing/metallb/controller:v0.14.3)", c.Name, err)
			}
			return kc.ApplyManifest(gctx, PoolManifest(pools[c.Name]), "metallb-system")
		})
	}
	return g.Wait()
}

func (p *Provider) client(ctx context.Context, cluster string) (*kube.Client, error) {
	kc, err := p.Kubeconfig(ctx, cluster, provider.FromHost)
	if err != nil {
		return nil, err
	}
	cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
	if err != nil {
		return nil, err
	}
	return kube.NewClient(cluster, cfg)
}

func waitDeploymentAvailable(ctx context.Context, kc *kube.Client, ns, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := kc.Kube.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas > 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("deployment %s/%s not available after %s", ns, name, timeout)
		case <-time.After(2 * time.Second):
		}
	}
}

// Delete implements provider.Provider: every kind cluster of the lab, then the provider's files.
func (p *Provider) Delete(ctx context.Context) error {
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	existing, err := kp.List()
	if err == nil {
		prefix := p.cfg.Lab + "-"
		for _, n := range existing {
			if cluster, ok := strings.CutPrefix(n, prefix); ok {
				// The kubeconfig kind wrote at create: never the user's own.
				if err := kp.Delete(n, filepath.Join(p.dir, cluster+".host.kubeconfig")); err != nil {
					return err
				}
			}
		}
	}
	return os.RemoveAll(p.dir)
}

// Kubeconfig implements provider.Provider: the rewritten kubeconfig serves both viewpoints on Linux.
func (p *Provider) Kubeconfig(ctx context.Context, cluster string, from provider.Viewpoint) (*clientcmdapi.Config, error) {
	return clientcmd.LoadFromFile(filepath.Join(p.dir, cluster+".kubeconfig"))
}

// Clusters implements provider.Provider.
func (p *Provider) Clusters(ctx context.Context) ([]provider.ClusterInfo, error) {
	var out []provider.ClusterInfo
	for _, c := range p.cfg.Scenario.Clusters {
		out = append(out, provider.ClusterInfo{Name: c.Name, Network: c.Network, PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet, Message: "kind cluster status is not read yet"})
	}
	return out, nil
}

var _ provider.LogCollector = (*Provider)(nil)

// CollectLogs implements provider.LogCollector: `kind export logs` for every cluster of the lab.
func (p *Provider) CollectLogs(ctx context.Context, dir string) error {
	kp := kindcluster.NewProvider(kindcluster.ProviderWithDocker())
	var errs []string
	for _, c := range p.cfg.Scenario.Clusters {
		if err := kp.CollectLogs(ClusterName(p.cfg.Lab, c.Name), filepath.Join(dir, c.Name)); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("exporting kind logs: %s", strings.Join(errs, "; "))
	}
	return nil
}
