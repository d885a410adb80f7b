// Package local is the provider that needs no containers: each cluster is a real etcd, kube-apiserver,
// kube-controller-manager and kube-scheduler running as processes on loopback, with kwok standing in for
// kubelets (fake nodes, pods that reach Running with IPs from the node's pod CIDR). The binaries are
// built from pinned upstream source (package binaries). It follows the proven recipe in
// shared/docs/local-lab-recipe.md, flag for flag.
package local

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/lab/state"
)

// BinarySource yields the upstream binaries, building them when needed (binaries.Builder).
type BinarySource interface {
	Ensure(ctx context.Context) (binaries.Set, error)
}

// Config configures the provider for one lab.
type Config struct {
	// Lab is the lab's name.
	Lab string
	// Store is the state root; the provider keeps its files in Store.Dir(Lab)/local.
	Store state.Store
	// Scenario is the lab's scenario; Delete works without it.
	Scenario *scenario.Scenario
	// Binaries yields the upstream binaries.
	Binaries BinarySource
	// Out receives progress detail (e.g. the binary build).
	Out io.Writer
}

// Provider runs a lab's clusters as local processes.
type Provider struct {
	cfg  Config
	dir  string
	bins binaries.Set
}

// New returns the local provider for a lab.
func New(cfg Config) *Provider {
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	return &Provider{cfg: cfg, dir: filepath.Join(cfg.Store.Dir(cfg.Lab), "local")}
}

var _ provider.Provider = (*Provider)(nil)

// Name implements provider.Provider.
func (p *Provider) Name() scenario.ProviderName { return scenario.ProviderLocal }

// NoContainers is why the local provider's pods run nothing, for reports of skipped checks.
const NoContainers = "provider local runs no containers: kwok fakes kubelets, so pods have IPs and Ready status but no processes"

// Capabilities implements provider.Provider.
func (p *Provider) Capabilities() provider.Capabilities {
	return provider.Capabilities{
		CreatesClusters:    true,
		RunsContainers:     false,
		NoContainersReason: NoContainers,
		LoadBalancer:       "lab-assigned",
		Istiod:             provider.IstiodProcess,
	}
}

func (p *Provider) layout(cluster string) clusterLayout {
	return clusterLayout{dir: filepath.Join(p.dir, cluster)}
}

// Plan implements provider.Provider.
func (p *Provider) Plan(s *scenario.Scenario) ([]plan.Step, error) {
	p.cfg.Scenario = s
	opts := localOptions(s)
	ports, _ := loadPorts(p.dir) // a plan shows the ports a lab already has, placeholders otherwise
	var names []string
	for _, c := range s.Clusters {
		names = append(names, c.Name)
	}
	var binDetails []string
	for _, prog := range binaries.Programs {
		binDetails = append(binDetails, fmt.Sprintf("%s from %s", prog.Name, prog.Package))
	}
	versions := []string{}
	for _, k := range []string{"kubernetes", "etcd", "kwok", "istio"} {
		versions = append(versions, k+" "+binaries.Versions[k])
	}
	binDetails = append(binDetails, "pinned: "+strings.Join(versions, ", "), "built once into the shared cache, reused by every lab")

	var cpDetails []string
	for _, c := range s.Clusters {
		l := p.layout(c.Name)
		cpDetails = append(cpDetails, fmt.Sprintf("%s: network %s, pods %s, services %s", c.Name, c.Network, c.PodSubnet, c.ServiceSubnet))
		for _, comp := range components {
			cpDetails = append(cpDetails, fmt.Sprintf("  %s %s", comp.name, strings.Join(args(comp.name, c, l, ports[c.Name], opts), " ")))
		}
		cpDetails = append(cpDetails, fmt.Sprintf("  wait: %s /readyz within %s", "kube-apiserver", apiserverTimeout))
	}
	var nodeDetails []string
	for _, c := range s.Clusters {
		for _, n := range nodeNames(c.Name, nodesPerCluster(opts)) {
			nodeDetails = append(nodeDetails, fmt.Sprintf("%s: Node %s (annotation kwok.x-k8s.io/node=fake; topology.kubernetes.io/region=%s, zone=%s)", c.Name, n, c.Region, c.Zone))
		}
	}
	nodeDetails = append(nodeDetails, fmt.Sprintf("wait: every node Ready with a podCIDR within %s", nodeTimeout))

	return []plan.Step{
		{
			Title:   "Preparing upstream binaries",
			Details: binDetails,
			Run:     p.ensureBinaries,
		},
		{
			Title: "Allocating ports and writing PKI for " + strings.Join(names, ", "),
			Details: []string{
				"a block of 16 loopback ports per cluster, kept for the lab's life (kubeconfigs stay valid)",
				"per cluster: CA, kube-apiserver serving cert, admin client cert (system:masters), service-account key pair; files 0600",
				"per cluster: admin kubeconfig; kwok stages (fixtures/kwok/stages.yaml)",
			},
			Run: func(ctx context.Context) error { return p.prepare(s) },
		},
		{
			Title:   "Starting clusters " + strings.Join(names, ", ") + " (in parallel)",
			Details: append(cpDetails, nodeDetails...),
			Run:     func(ctx context.Context) error { return p.startAll(ctx, s) },
		},
	}, nil
}

func localOptions(s *scenario.Scenario) scenario.LocalOptions {
	if s.Provider.Local != nil {
		return *s.Provider.Local
	}
	return scenario.LocalOptions{}
}

func (p *Provider) ensureBinaries(ctx context.Context) error {
	set, err := p.cfg.Binaries.Ensure(ctx)
	if err != nil {
		return err
	}
	p.bins = set
	return nil
}

// prepare allocates ports and writes every cluster's PKI, kubeconfig and kwok stages (idempotent).
func (p *Provider) prepare(s *scenario.Scenario) error {
	var names []string
	for _, c := range s.Clusters {
		names = append(names, c.Name)
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	ports, err := allocatePorts(p.cfg.Store, p.dir, names)
	if err != nil {
		return err
	}
	for _, c := range s.Clusters {
		l := p.layout(c.Name)
		for _, d := range []string{l.dir, filepath.Join(l.dir, "tmp"), l.flexVolume(), filepath.Join(l.dir, "logs"), filepath.Join(l.dir, "run")} {
			if err := os.MkdirAll(d, 0o700); err != nil {
				return err
			}
		}
		if err := l.pki().ensure(c.Name, c.ServiceSubnet); err != nil {
			return fmt.Errorf("PKI of %s: %w", c.Name, err)
		}
		if err := writeAdminKubeconfig(l, c.Name, ports[c.Name][PortAPIServer]); err != nil {
			return err
		}
		stages, err := fixtures.FS.ReadFile("kwok/stages.yaml")
		if err != nil {
			return err
		}
		if err := state.WriteFile(l.kwokStages(), stages); err != nil {
			return err
		}
	}
	return nil
}

// startAll brings every cluster up in parallel, each as a pipeline: control plane, then its kwok nodes,
// then the wait for them to be Ready, so a fast cluster never waits for a slow one.
func (p *Provider) startAll(ctx context.Context, s *scenario.Scenario) error {
	ports, err := loadPorts(p.dir)
	if err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range s.Clusters {
		g.Go(func() error {
			if err := p.startCluster(gctx, c, ports[c.Name], localOptions(s)); err != nil {
				return err
			}
			return p.nodes(gctx, c, nodesPerCluster(localOptions(s)))
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// A controller that died after the nodes came up (bad flag, crash) is caught here, not later.
	for _, c := range s.Clusters {
		l := p.layout(c.Name)
		for _, comp := range components {
			if rec, _ := loadRecord(l.proc(comp.name)); !rec.alive() {
				return exitedError(comp.name, c.Name, l.log(comp.name))
			}
		}
	}
	return nil
}

const (
	apiserverTimeout = 90 * time.Second
	nodeTimeout      = 60 * time.Second
)

// startCluster starts the components of one cluster that are not running, in order, waiting for the API
// server to be ready before the controllers.
func (p *Provider) startCluster(ctx context.Context, c scenario.Cluster, ps Ports, opts scenario.LocalOptions) error {
	l := p.layout(c.Name)
	if len(ps) == 0 {
		return fmt.Errorf("%s has no ports allocated", c.Name)
	}
	for _, comp := range components {
		rec, _ := loadRecord(l.proc(comp.name))
		if !rec.alive() {
			if port, ok := ps[componentPort(comp.name)]; ok {
				if busy := busyPorts(Ports{comp.name: port}); len(busy) > 0 {
					return fmt.Errorf("%s of %s cannot start: port %d on 127.0.0.1 is taken by another program; stop it, or `mclab down --name %s` and `up` again for new ports", comp.name, c.Name, port, p.cfg.Lab)
				}
			}
			bin := p.bins.Path(comp.name)
			r, err := startProcess(comp.name, bin, args(comp.name, c, l, ps, opts), env(comp.name, l, opts), l.dir, l.log(comp.name), l.proc(comp.name))
			if err != nil {
				return fmt.Errorf("%s of %s: %w", comp.name, c.Name, err)
			}
			rec = r
		}
		if comp.name == "kube-apiserver" {
			// Controllers start as soon as the API server serves, and initialize while its post-start
			// hooks run; the nodes wait until it is ready.
			if err := waitAPIServer(ctx, l, rec, c.Name, true); err != nil {
				return err
			}
		}
	}
	if err := waitAPIServer(ctx, l, record(l, "kube-apiserver"), c.Name, false); err != nil {
		return err
	}
	// A controller started while the API server still ran its post-start hooks gives up when they take
	// longer than its own wait (kube-controller-manager: "failed to wait for apiserver being healthy",
	// seen with 10 clusters starting at once on 2 cores): start again, now that it is ready, whatever
	// exited, as a kubelet restarts a static pod.
	for _, comp := range components {
		if comp.name == "etcd" || comp.name == "kube-apiserver" {
			continue
		}
		if rec := record(l, comp.name); !rec.alive() {
			if _, err := startProcess(comp.name, p.bins.Path(comp.name), args(comp.name, c, l, ps, opts), env(comp.name, l, opts), l.dir, l.log(comp.name), l.proc(comp.name)); err != nil {
				return fmt.Errorf("%s of %s: %w", comp.name, c.Name, err)
			}
		}
	}
	return nil
}

func record(l clusterLayout, name string) *procRecord {
	r, _ := loadRecord(l.proc(name))
	return r
}

func componentPort(name string) string {
	switch name {
	case "etcd":
		return PortEtcdClient
	case "kube-apiserver":
		return PortAPIServer
	case "kube-controller-manager":
		return PortKCM
	case "kube-scheduler":
		return PortScheduler
	case "kwok":
		return PortKwok
	}
	return ""
}

func exitedError(comp, cluster, log string) error {
	return fmt.Errorf("%s of %s exited; last lines of %s:\n%s", comp, cluster, log, logTail(log, 12))
}

// records returns every process record of the lab found on disk, by cluster directory, whatever the
// scenario says: Delete must find what a half-finished `up` left.
func (p *Provider) records() (map[string][]*procRecord, error) {
	out := map[string][]*procRecord{}
	files, err := filepath.Glob(filepath.Join(p.dir, "*", "run", "*.json"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		rec, err := loadRecord(f)
		if err != nil {
			continue
		}
		cluster := filepath.Base(filepath.Dir(filepath.Dir(f)))
		out[cluster] = append(out[cluster], rec)
	}
	return out, nil
}

// Delete implements provider.Provider: it stops every process of the lab, tier by tier (istiod and
// kwok and the controllers, then the API servers, then etcd), SIGTERM then SIGKILL after a grace
// period, and removes the provider's files.
func (p *Provider) Delete(ctx context.Context) error {
	recs, err := p.records()
	if err != nil {
		return err
	}
	tierOf := map[string]int{}
	graceOf := map[string]time.Duration{}
	for _, c := range components {
		tierOf[c.name] = c.tier
		graceOf[c.name] = time.Duration(c.grace) * time.Second
	}
	maxTier := 3 // tier 3: anything else the lab runs on top (istiod)
	tiers := make([][]*procRecord, maxTier+1)
	grace := make([]time.Duration, maxTier+1)
	for i := range grace {
		grace[i] = 5 * time.Second
	}
	for _, rs := range recs {
		for _, r := range rs {
			t, ok := tierOf[r.Name]
			if !ok {
				t = maxTier
			}
			idx := maxTier - t
			tiers[idx] = append(tiers[idx], r)
			if g, ok := graceOf[r.Name]; ok {
				grace[idx] = g
			}
		}
	}
	if err := stopTiers(tiers, grace); err != nil {
		return fmt.Errorf("stopping lab %s: %w", p.cfg.Lab, err)
	}
	return os.RemoveAll(p.dir)
}

// Kubeconfig implements provider.Provider. On the local provider every cluster is on loopback, so the
// host's and the clusters' views are the same.
func (p *Provider) Kubeconfig(ctx context.Context, cluster string, from provider.Viewpoint) (*clientcmdapi.Config, error) {
	return loadKubeconfig(p.layout(cluster).kubeconfig())
}

// Clusters implements provider.Provider.
func (p *Provider) Clusters(ctx context.Context) ([]provider.ClusterInfo, error) {
	s := p.cfg.Scenario
	if s == nil {
		return nil, errors.New("the lab's scenario is unknown")
	}
	ports, err := loadPorts(p.dir)
	if err != nil {
		return nil, err
	}
	out := make([]provider.ClusterInfo, len(s.Clusters))
	g, gctx := errgroup.WithContext(ctx)
	for i, c := range s.Clusters {
		g.Go(func() error {
			out[i] = p.describe(gctx, c, ports[c.Name])
			return nil
		})
	}
	_ = g.Wait()
	return out, nil
}

func (p *Provider) describe(ctx context.Context, c scenario.Cluster, ps Ports) provider.ClusterInfo {
	l := p.layout(c.Name)
	info := provider.ClusterInfo{Name: c.Name, Network: c.Network, PodSubnet: c.PodSubnet, ServiceSubnet: c.ServiceSubnet}
	if port, ok := ps[PortAPIServer]; ok {
		info.Server = fmt.Sprintf("https://127.0.0.1:%d", port)
	}
	var problems []string
	for _, comp := range components {
		rec, _ := loadRecord(l.proc(comp.name))
		cs := provider.Component{Name: comp.name, Running: rec.alive()}
		if port, ok := ps[componentPort(comp.name)]; ok {
			cs.Address = fmt.Sprintf("127.0.0.1:%d", port)
		}
		if rec != nil {
			cs.PID = rec.PID
		}
		if !cs.Running {
			problems = append(problems, comp.name+" is not running")
		}
		info.Components = append(info.Components, cs)
	}
	if len(problems) == 0 {
		nodes, err := listNodes(ctx, l)
		if err != nil {
			problems = append(problems, err.Error())
		}
		info.Nodes = nodes
		for _, n := range nodes {
			if !n.Ready {
				problems = append(problems, "node "+n.Name+" is not Ready")
			}
		}
		if err == nil && len(nodes) == 0 {
			problems = append(problems, "no nodes")
		}
	}
	sort.Strings(problems)
	info.Ready = len(problems) == 0
	info.Message = strings.Join(problems, "; ")
	return info
}

var _ provider.LogCollector = (*Provider)(nil)

// CollectLogs implements provider.LogCollector: every component's log, by cluster.
func (p *Provider) CollectLogs(ctx context.Context, dir string) error {
	logs, err := filepath.Glob(filepath.Join(p.dir, "*", "logs", "*.log"))
	if err != nil {
		return err
	}
	for _, l := range logs {
		cluster := filepath.Base(filepath.Dir(filepath.Dir(l)))
		data, err := os.ReadFile(l)
		if err != nil {
			continue
		}
		if err := os.MkdirAll(filepath.Join(dir, cluster), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, cluster, filepath.Base(l)), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ProcessIDs returns the PIDs of cluster's live processes by component (etcd, kube-apiserver, ...,
// istiod where it runs), for the bench's memory and CPU figures.
func (p *Provider) ProcessIDs(cluster string) map[string]int {
	out := map[string]int{}
	l := p.layout(cluster)
	names := []string{"istiod"}
	for _, c := range components {
		names = append(names, c.name)
	}
	for _, n := range names {
		if rec, err := loadRecord(l.proc(n)); err == nil && rec.alive() {
			out[n] = rec.PID
		}
	}
	return out
}
