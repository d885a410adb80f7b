package kind

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	goruntime "runtime"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/kind/pkg/apis/config/defaults"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/images"
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
	// Runtime is what talks to Docker (default: kind's Go API and Runner).
	Runtime Runtime
	// Runner runs docker when Runtime is not given.
	Runner exec.Runner
	// Tunnel reaches pods through the API servers (default: kube.Tunnel over SPDY).
	Tunnel provider.PodTunnel
	// Out receives preflight notes.
	Out io.Writer
	// GOOS is the host's operating system (default runtime.GOOS); it decides the host-routing caveats.
	GOOS string
	// Images builds the offline images (provider.kind.offlineImages).
	Images ImageBuilder
}

// ImageBuilder builds images on the host from source (images.Builder).
type ImageBuilder interface {
	Ensure(ctx context.Context, names ...string) ([]string, error)
}

// Provider creates a lab's clusters as kind clusters.
type Provider struct {
	cfg Config
	dir string
}

// New returns the kind provider for a lab.
func New(cfg Config) *Provider {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Runtime == nil {
		cfg.Runtime = NewRuntime(cfg.Runner, cfg.Out)
	}
	if cfg.GOOS == "" {
		cfg.GOOS = goruntime.GOOS
	}
	p := &Provider{cfg: cfg, dir: filepath.Join(cfg.Store.Dir(cfg.Lab), "kind")}
	if p.cfg.Tunnel == nil {
		p.cfg.Tunnel = &kube.Tunnel{Client: p.client}
	}
	return p
}

var (
	_ provider.Provider     = (*Provider)(nil)
	_ provider.Tunneled     = (*Provider)(nil)
	_ provider.LogCollector = (*Provider)(nil)
)

// Name implements provider.Provider.
func (p *Provider) Name() scenario.ProviderName { return scenario.ProviderKind }

// Capabilities implements provider.Provider.
func (p *Provider) Capabilities() provider.Capabilities {
	return provider.Capabilities{CreatesClusters: true, RunsContainers: true, LoadBalancer: p.loadBalancer(), Istiod: provider.IstiodInCluster}
}

// loadBalancer is metallb (installed by mclab) or cloud-provider-kind (run by the user).
func (p *Provider) loadBalancer() string {
	if p.cfg.Scenario != nil && p.cfg.Scenario.Provider.Kind != nil && p.cfg.Scenario.Provider.Kind.LoadBalancer != "" {
		return p.cfg.Scenario.Provider.Kind.LoadBalancer
	}
	return scenario.KindLBMetalLB
}

// Tunnel implements provider.Tunneled.
func (p *Provider) Tunnel() provider.PodTunnel { return p.cfg.Tunnel }

// DefaultNetwork is kind's Docker network and the subnet it usually has; the real subnet is read at up.
const (
	DefaultNetwork = "kind"
	defaultSubnet  = "172.18.0.0/16"
)

func kindOptions(s *scenario.Scenario) scenario.KindOptions {
	var opts scenario.KindOptions
	if s.Provider.Kind != nil {
		opts = *s.Provider.Kind
	}
	opts.NodeImage = NodeImage(s)
	return opts
}

// EnvNodeImage names the node image when the scenario gives none (kind-offline's ensure.sh sets it).
const EnvNodeImage = "MCLAB_KIND_NODE_IMAGE"

// NodeImage is the node image of a scenario's kind clusters: provider.kind.nodeImage, else
// $MCLAB_KIND_NODE_IMAGE, else "" (kind's own pinned image).
func NodeImage(s *scenario.Scenario) string {
	if s != nil && s.Provider.Kind != nil && s.Provider.Kind.NodeImage != "" {
		return s.Provider.Kind.NodeImage
	}
	return os.Getenv(EnvNodeImage)
}

// RequiredImages are the images a kind lab of s cannot start without: the node image and, when mclab
// installs MetalLB, its controller (what auto checks before choosing kind).
func RequiredImages(s *scenario.Scenario) []string {
	img := NodeImage(s)
	if img == "" {
		img = defaults.Image
	}
	out := []string{img}
	opts := kindOptions(s)
	if (opts.LoadBalancer == "" || opts.LoadBalancer == scenario.KindLBMetalLB) && !opts.OfflineImages {
		out = append(out, MetalLBControllerImage)
	}
	return out
}

// PulledByNodes reports whether the image is one the nodes pull themselves (from its registry), so
// that being in the host's Docker is not enough: only the node image, offline and preloaded images
// reach the nodes from the host.
func PulledByNodes(s *scenario.Scenario, image string) bool {
	opts := kindOptions(s)
	return image != NodeImage(s) && image != defaults.Image && !opts.OfflineImages && !opts.PreloadImages
}

// MetalLBControllerImage is the controller image of fixtures/metallb's manifest.
const MetalLBControllerImage = "registry.istio.io/testing/metallb/controller:" + MetalLBVersion

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
	for _, h := range MirrorHosts(opts) {
		cfgDetails = append(cfgDetails, fmt.Sprintf("registry mirror on every node: /etc/containerd/certs.d/%s/hosts.toml -> %s", h, opts.RegistryMirrors[h]))
	}
	cfgDetails = append(cfgDetails, fmt.Sprintf("wait: every node Ready within %s; on failure the clusters are deleted (or kept with --retain) and their logs exported", nodeReadyTimeout))
	nodes, via := map[string][]string{}, map[string]string{}
	for _, c := range s.Clusters {
		nodes[c.Name] = NodeNames(ClusterName(p.cfg.Lab, c.Name), opts.Workers)
		via[c.Name] = "<IP of " + ClusterName(p.cfg.Lab, c.Name) + "-control-plane>"
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
		lbDetails = append(lbDetails, fmt.Sprintf("%s: MetalLB %s (fixtures/metallb), IPAddressPool %s-%s (for kind's usual %s; carved from the real subnet at up)", c, MetalLBVersion, pools[c][0], pools[c][1], defaultSubnet))
	}
	lbDetails = append(lbDetails, "wait: MetalLB's controller available within "+metallbTimeout.String())
	need := Needs(len(s.Clusters))
	steps := []plan.Step{
		{Title: "Preflight", Details: []string{
			"docker answers",
			fmt.Sprintf("Docker has at least %d CPUs and %s of memory, and %s free on its disk, for %d clusters", need.CPUs, gib(need.Memory), gib(need.Disk), len(s.Clusters)),
			"fs.inotify.max_user_watches >= 524288 and max_user_instances >= 512 (Linux)",
			"the kind network's subnet does not overlap the clusters' pod and Service subnets",
			"each failure says how to fix it; host-routing caveats on macOS and Windows",
		}, Run: p.preflight},
		{Title: "Creating kind clusters " + strings.Join(names, ", ") + " (in parallel)", Details: cfgDetails, Run: p.create},
		{Title: "Writing kubeconfigs", Details: []string{
			"from the host: kind's external kubeconfig (the API server's port published on 127.0.0.1)",
			"from the other clusters: kind's internal kubeconfig with the server rewritten to the control-plane container's IP on the kind network (kind#1558; as Istio's CI does)",
		}, Run: p.kubeconfigs},
		{Title: "Routing between clusters on the same network", Details: routeDetails, Run: p.routes},
	}
	if opts.OfflineImages {
		if s.Istio.Hub == "" && s.Istio.Tag == "" {
			s.Istio.Hub, s.Istio.Tag = images.Hub, images.Tag
		}
		names := p.offlineImages()
		var refs []string
		for _, n := range names {
			refs = append(refs, images.Ref(n))
		}
		build := plan.Step{Title: "Building offline images", Details: append(refs, "from pinned source on this host (lab/images): pilot from the local provider's pilot-discovery, proxyv2 with pilot-agent only (no Envoy), MetalLB "+images.MetalLBVersion+"; an image whose content is unchanged is not rebuilt"), Run: p.buildOffline}
		load := plan.Step{Title: "Loading offline images into every node", Details: []string{"kind's image loading (docker save, then ctr import on each node); pods use them with imagePullPolicy IfNotPresent"}, Run: p.loadOffline}
		// Build before anything is created, so a failed build leaves nothing; load once nodes exist.
		steps = append([]plan.Step{steps[0], build}, steps[1:]...)
		steps = append(steps, load)
	}
	if opts.PreloadImages {
		images, err := p.images(s)
		if err != nil {
			return nil, err
		}
		steps = append(steps, plan.Step{Title: "Preloading images into every node", Details: append(images, "pulled once on the host (docker pull), loaded into the nodes as `kind load docker-image` does"), Run: p.preload})
	}
	switch p.loadBalancer() {
	case scenario.KindLBMetalLB:
		steps = append(steps, plan.Step{Title: "Installing MetalLB", Details: lbDetails, Run: p.metallb})
	case scenario.KindLBNone:
		steps[0].Details = append(steps[0].Details, "LoadBalancer addresses: none (provider.kind.loadBalancer: none): LoadBalancer Services stay pending, so east-west gateways get no address")
	default:
		steps[0].Details = append(steps[0].Details, "LoadBalancer addresses: from cloud-provider-kind, which you run on the host (`go install sigs.k8s.io/cloud-provider-kind@latest`, then `sudo cloud-provider-kind`); mclab installs no MetalLB")
	}
	return steps, nil
}

// offlineImages are the images an offline kind lab of the scenario needs.
func (p *Provider) offlineImages() []string {
	names := []string{images.Pilot, images.ProxyV2}
	if scenario.HasProxylessSamples(p.cfg.Scenario) {
		names = append(names, images.Echo)
	}
	if p.loadBalancer() == scenario.KindLBMetalLB {
		names = append(names, images.MetalLBController, images.MetalLBSpeaker)
	}
	return names
}

func (p *Provider) buildOffline(ctx context.Context) error {
	if p.cfg.Images == nil {
		return errors.New("offline images: no image builder configured")
	}
	_, err := p.cfg.Images.Ensure(ctx, p.offlineImages()...)
	return err
}

func (p *Provider) loadOffline(ctx context.Context) error {
	var clusters []string
	for _, c := range p.cfg.Scenario.Clusters {
		clusters = append(clusters, ClusterName(p.cfg.Lab, c.Name))
	}
	for _, n := range p.offlineImages() {
		if err := p.cfg.Runtime.LoadImage(ctx, images.Ref(n), clusters); err != nil {
			return err
		}
	}
	return nil
}

// Timeouts of the kind steps.
const (
	nodeReadyTimeout = 3 * time.Minute
	metallbTimeout   = 3 * time.Minute
)

// MetalLBVersion is the MetalLB release in fixtures/metallb (the manifest Istio's CI applies).
const MetalLBVersion = "v0.14.3"

// NodeNames are the node containers kind creates for a cluster.
func NodeNames(cluster string, workers int) []string {
	out := []string{cluster + "-control-plane"}
	for i := 1; i <= workers; i++ {
		out = append(out, fmt.Sprintf("%s-worker%s", cluster, suffix(i)))
	}
	return out
}
func suffix(i int) string {
	if i == 1 {
		return ""
	}
	return fmt.Sprint(i)
}
func (p *Provider) create(ctx context.Context) error {
	opts := kindOptions(p.cfg.Scenario)
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	// A kind cluster that exists already is this lab's only when the lab's record proves it (it
	// created it on an earlier up); any other is refused before anything is created or recorded: lab
	// "a" with cluster "3-c1" and lab "a-3" with cluster "c1" both name a kind cluster "a-3-c1", and
	// claiming the other's would let down delete it.
	var names []string
	for _, c := range p.cfg.Scenario.Clusters {
		names = append(names, ClusterName(p.cfg.Lab, c.Name))
	}
	existing, err := p.cfg.Runtime.ListClusters()
	if err != nil {
		return fmt.Errorf("listing kind clusters: %w", err)
	}
	mine := map[string]bool{}
	for _, o := range p.recorded() {
		mine[o.Kind] = true
	}
	for i, name := range names {
		if slices.Contains(existing, name) && !mine[name] {
			return fmt.Errorf("kind cluster %s (lab %s, cluster %s) already exists and is not this lab's: %s does not list it (another lab's whose name and cluster join the same way, or one made by hand); rename the lab or the cluster, or delete that cluster (kind delete cluster --name %s) if nothing uses it",
				name, p.cfg.Lab, p.cfg.Scenario.Clusters[i].Name, p.clustersFile(), name)
		}
	}
	// Record the kind clusters this lab owns before creating any, so down (and an interrupted up)
	// deletes exactly these, never another lab's by name prefix.
	if err := p.recordClusters(names); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		g.Go(func() error {
			if !slices.Contains(existing, name) {
				if err := p.cfg.Runtime.CreateCluster(name, ClusterConfig(c, opts), p.kindKubeconfig(c.Name), nodeReadyTimeout); err != nil {
					return fmt.Errorf("creating kind cluster %s: %w", name, err)
				}
			}
			return p.mirrors(gctx, name)
		})
	}
	return g.Wait()
}

// routes adds the routes between same-network clusters on every node.
func (p *Provider) routes(ctx context.Context) error {
	nodes, via := map[string][]string{}, map[string]string{}
	for _, c := range p.cfg.Scenario.Clusters {
		name := ClusterName(p.cfg.Lab, c.Name)
		ns, err := p.cfg.Runtime.ListNodes(name)
		if err != nil {
			return err
		}
		nodes[c.Name] = ns
		if via[c.Name], err = p.containerIP(ctx, name+"-control-plane"); err != nil {
			return err
		}
	}
	for _, r := range Routes(p.cfg.Scenario, nodes, via) {
		if out, err := p.cfg.Runtime.Docker(ctx, "exec", r.Node, "ip", "route", "replace", r.Dest, "via", r.Via); err != nil {
			return fmt.Errorf("%s: %w (%s)", r, err, firstLine(err, out))
		}
	}
	return nil
}

// errNoNetwork is returned by NetworkSubnet before kind created its network.
var errNoNetwork = errors.New("the kind network does not exist yet")

// NetworkSubnet reads the IPv4 subnet of kind's Docker network (a dual-stack network lists two).
func (p *Provider) NetworkSubnet(ctx context.Context) (netip.Prefix, error) {
	out, err := p.cfg.Runtime.Docker(ctx, "network", "inspect", DefaultNetwork, "-f", "{{range .IPAM.Config}}{{.Subnet}} {{end}}")
	if err != nil {
		if strings.Contains(strings.ToLower(string(out)), "no such network") || strings.Contains(strings.ToLower(string(out)), "not found") {
			return netip.Prefix{}, errNoNetwork
		}
		return netip.Prefix{}, fmt.Errorf("reading the %s network: %w (%s)", DefaultNetwork, err, firstLine(err, out))
	}
	for _, f := range strings.Fields(string(out)) {
		if pre, err := netip.ParsePrefix(f); err == nil && pre.Addr().Is4() {
			return pre, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("the %s network has no IPv4 subnet (%q); recreate it with one: docker network rm kind", DefaultNetwork, strings.TrimSpace(string(out)))
}

// images lists what preload loads: Istio's and the samples' images, and MetalLB's.
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
			if err := kube.WaitDeployment(gctx, kc, "metallb-system", "controller", "app=metallb,component=controller", metallbTimeout,
				"the nodes cannot pull MetalLB's images: set provider.kind.preloadImages: true or a registry mirror"); err != nil {
				return fmt.Errorf("MetalLB in %s: %w; LoadBalancer Services would stay <pending>", c.Name, err)
			}
			return applyPastWebhook(gctx, kc, PoolManifest(pools[c.Name]), "metallb-system", metallbTimeout)
		})
	}
	return g.Wait()
}

// applyPastWebhook applies a manifest whose objects a webhook validates, retrying while the webhook
// does not answer yet (MetalLB's controller serves it a little after it reports available, as
// MetalLB's docs warn).
func applyPastWebhook(ctx context.Context, kc *kube.Client, manifest, ns string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := kc.ApplyManifest(ctx, manifest, ns)
		if err == nil || !strings.Contains(err.Error(), "failed calling webhook") {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (its webhook did not answer for %s)", err, timeout)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
func (p *Provider) client(ctx context.Context, cluster string) (*kube.Client, error) {
	kc, err := p.Kubeconfig(ctx, cluster, provider.FromHost)
	if err != nil {
		return nil, err
	}
	return kube.NewClientFromKubeconfig(cluster, kc)
}

// Delete implements provider.Provider: exactly the kind clusters the lab created, then the provider's
// files.
func (p *Provider) Delete(ctx context.Context) error {
	existing, err := p.cfg.Runtime.ListClusters()
	if err == nil {
		for _, o := range p.owned() {
			if !slices.Contains(existing, o.Kind) {
				continue
			}
			// The kubeconfig kind wrote at create: never the user's own.
			if err := p.cfg.Runtime.DeleteCluster(o.Kind, p.kindKubeconfig(o.Cluster)); err != nil {
				return err
			}
		}
	}
	return os.RemoveAll(p.dir)
}

// Kubeconfig implements provider.Provider: kind's external kubeconfig from the host, the one rewritten
// to the control-plane container's IP from the other clusters.
func (p *Provider) Kubeconfig(ctx context.Context, cluster string, from provider.Viewpoint) (*clientcmdapi.Config, error) {
	path := p.hostKubeconfig(cluster)
	if from == provider.FromCluster {
		path = p.clusterKubeconfig(cluster)
	}
	return clientcmd.LoadFromFile(path)
}

// binaryLogs are what `kind export logs` copies from a node's /var/log that is not text: systemd's
// journal files (journal.log beside them is their text) and the login records. They can be neither
// read in a bundle nor redacted, so they are left out.
var binaryLogs = []string{"journal", "btmp", "wtmp", "lastlog", "faillog"}

// dropBinaryLogs removes binaryLogs from every node directory under dir.
func dropBinaryLogs(dir string) {
	nodes, _ := os.ReadDir(dir)
	for _, n := range nodes {
		if !n.IsDir() {
			continue
		}
		for _, b := range binaryLogs {
			_ = os.RemoveAll(filepath.Join(dir, n.Name(), b))
		}
	}
}

// CollectLogs implements provider.LogCollector: `kind export logs` for every cluster of the lab, less
// binary logs.
func (p *Provider) CollectLogs(ctx context.Context, dir string) error {
	var errs []string
	for _, c := range p.cfg.Scenario.Clusters {
		if err := p.cfg.Runtime.CollectLogs(ClusterName(p.cfg.Lab, c.Name), filepath.Join(dir, c.Name)); err != nil {
			errs = append(errs, err.Error())
		}
		dropBinaryLogs(filepath.Join(dir, c.Name))
	}
	if len(errs) > 0 {
		return fmt.Errorf("exporting kind logs: %s", strings.Join(errs, "; "))
	}
	return nil
}
