package istio

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/sync/errgroup"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// IstioNamespace is where Istio's control plane and gateways live.
const IstioNamespace = "istio-system"

// Installer installs Istio across a lab's clusters.
type Installer struct {
	// Lab is the lab's name, recorded on the mesh it installs.
	Lab string
	// S is the lab's scenario.
	S *scenario.Scenario
	// Dir is the lab's state directory; the mesh CA is kept in Dir/pki.
	Dir string
	// Provider runs the lab's clusters.
	Provider provider.Provider
	// CacheDir is mclab's cache, where a release's charts and pilot-discovery are kept.
	CacheDir string
	// Out receives progress detail.
	Out io.Writer

	mu      sync.Mutex
	rels    map[string]*Release
	clients map[string]*kube.Client
	eps     *Endpoints
}

func (in *Installer) topo() Topology { return Topology{S: in.S} }

func (in *Installer) renderer(c scenario.Cluster) (*Renderer, error) {
	rel, err := in.releaseFor(context.Background(), c)
	if err != nil {
		return nil, err
	}
	return &Renderer{Charts: rel.charts}, nil
}

// client returns (and caches) a client for a cluster, from the provider's host kubeconfig.
func (in *Installer) client(ctx context.Context, cluster string) (*kube.Client, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if c, ok := in.clients[cluster]; ok {
		return c, nil
	}
	kc, err := in.Provider.Kubeconfig(ctx, cluster, provider.FromHost)
	if err != nil {
		return nil, err
	}
	c, err := kube.NewClientFromKubeconfig(cluster, kc)
	if err != nil {
		return nil, err
	}
	if in.clients == nil {
		in.clients = map[string]*kube.Client{}
	}
	in.clients[cluster] = c
	return c, nil
}

// forEach runs f for every cluster in parallel.
func (in *Installer) forEach(ctx context.Context, clusters []scenario.Cluster, f func(ctx context.Context, c scenario.Cluster) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for _, c := range clusters {
		g.Go(func() error {
			if err := f(gctx, c); err != nil {
				return fmt.Errorf("%s: %w", c.Name, err)
			}
			return nil
		})
	}
	return g.Wait()
}

func names(cs []scenario.Cluster) string {
	var out []string
	for _, c := range cs {
		out = append(out, c.Name)
	}
	return strings.Join(out, ", ")
}

// Steps returns the install steps, after the provider's cluster steps.
func (in *Installer) Steps() []plan.Step {
	t := in.topo()
	all := in.S.Clusters
	primaries := t.Primaries()
	var caDetails []string
	for _, m := range in.S.Meshes {
		caDetails = append(caDetails, fmt.Sprintf("mesh %s (trust domain %s): root O=Istio, CN=Root CA, OU=%s; RSA %d", m.ID, m.TrustDomain, m.TrustDomain, pki.DefaultKeyBits))
	}
	for _, c := range all {
		caDetails = append(caDetails, fmt.Sprintf("%s: intermediate O=Istio, CN=Intermediate CA, L=%s (pathlen:0, SAN istiod.istio-system.svc) -> %s", c.Name, c.Name, filepath.Join(in.Dir, "pki", "clusters", c.Name, "cacerts")))
	}
	_, process := in.processes()
	var baseDetails []string
	istiodDetails := map[string]string{}
	for _, c := range all {
		d := fmt.Sprintf("%s: namespace istio-system labelled topology.istio.io/network=%s", c.Name, c.Network)
		if c.Role == scenario.Remote {
			d += ", annotated topology.istio.io/controlPlaneClusters=" + c.Primary
		}
		baseDetails = append(baseDetails, d+"; chart base (CRDs, istio-reader-service-account); Secret cacerts; reader token Secret")
		webhook := ""
		if process {
			webhook = "<istiod webhook of " + t.Serving(c).Name + ">"
		}
		pilot := "<east-west gateway address of " + t.Serving(c).Name + ">"
		if t.ExposesIstiodThroughLoadBalancer(t.Serving(c)) {
			pilot = "<" + IstiodLBName + " address of " + t.Serving(c).Name + ">"
		}
		v := IstiodValues(t, c, webhook, []byte("<mesh root>"), pilot)
		istiodDetails[c.Name] = fmt.Sprintf("%s: chart istio-control/istio-discovery %s", c.Name, valuesSummary(v))
	}
	var secretDetails []string
	for _, p := range primaries {
		for _, w := range t.Watched(p) {
			secretDetails = append(secretDetails, fmt.Sprintf("%s <- Secret istio-system/istio-remote-secret-%s (istio/multiCluster=true; kubeconfig of %s with istio-reader-service-account's token)", p.Name, w.Name, w.Name))
		}
	}
	// Remotes are configured once their primary's east-west gateway has an address (remotePilotAddress),
	// as Istio's primary-remote docs order it: primary, its gateway and expose-istiod, then the remote.
	var remotes, servingGateways, otherGateways []scenario.Cluster
	for _, c := range all {
		switch {
		case c.Role == scenario.Remote:
			remotes = append(remotes, c)
		}
		if !t.NeedsEastWestGateway(c) {
			continue
		}
		if c.Role == scenario.Primary && t.ServesRemotes(c.Name) {
			servingGateways = append(servingGateways, c)
		} else {
			otherGateways = append(otherGateways, c)
		}
	}
	details := func(cs []scenario.Cluster, f func(c scenario.Cluster) string) []string {
		var out []string
		for _, c := range cs {
			out = append(out, f(c))
		}
		return out
	}
	gwDetail := func(c scenario.Cluster) string {
		return fmt.Sprintf("%s: chart gateway %s; LoadBalancer address; %s", c.Name, valuesSummary(EastWestGatewayValues(c)), exposeSummary(t, c))
	}
	gateways := func(cs []scenario.Cluster) plan.Step {
		d := append(details(cs, gwDetail), in.gatewayWaitDetail())
		if scenario.OfflineImages(in.S) {
			d = append(d, "offline images: the gateway pods cannot run (proxyv2 holds pilot-agent, no Envoy; they crash with pilot-agent's \"failed to initialize envoy agent\"); their Services still get addresses, so istiod's cross-network endpoints and the gateways' configuration are judged, traffic through them is not (verify says so)")
		}
		return plan.Step{Title: "Installing east-west gateways in " + names(cs), Details: d,
			Run: func(ctx context.Context) error { return in.forEach(ctx, cs, in.eastWestGateway) }}
	}
	istiodStep := func(cs []scenario.Cluster) plan.Step {
		return plan.Step{Title: "Configuring istiod for " + names(cs), Details: details(cs, func(c scenario.Cluster) string { return istiodDetails[c.Name] }),
			Run: func(ctx context.Context) error { return in.forEach(ctx, cs, in.configureIstiod) }}
	}
	steps := []plan.Step{
		{Title: "Generating the mesh CA", Details: caDetails, Run: func(ctx context.Context) error { _, err := in.meshCA(); return err }},
		{Title: "Installing Istio base in " + names(all), Details: baseDetails, Run: func(ctx context.Context) error { return in.forEach(ctx, all, in.installBase) }},
		istiodStep(primaries),
		{Title: "Starting istiod for " + names(primaries), Details: in.startDetails(primaries), Run: func(ctx context.Context) error { return in.forEach(ctx, primaries, in.startIstiod) }},
	}
	if len(servingGateways) > 0 {
		steps = append(steps, gateways(servingGateways))
	}
	var lbServing []scenario.Cluster
	for _, p := range primaries {
		if t.ExposesIstiodThroughLoadBalancer(p) {
			lbServing = append(lbServing, p)
		}
	}
	if len(lbServing) > 0 {
		steps = append(steps, plan.Step{Title: "Exposing istiod of " + names(lbServing) + " to its remotes through a LoadBalancer Service", Details: []string{
			"Service istio-system/" + IstiodLBName + " (fixtures/" + istiodLBFixture + "): type LoadBalancer, ports 15012 (xDS) and 15017 (webhook) to istiod; how Istio's test framework exposes an external control plane (istio.exposeIstiod: loadBalancer" + exposureReason(in.S) + ")",
			in.gatewayWaitDetail(),
		}, Run: func(ctx context.Context) error { return in.forEach(ctx, lbServing, in.exposeIstiodLB) }})
	}
	if len(remotes) > 0 {
		steps = append(steps, istiodStep(remotes))
	}
	if len(secretDetails) > 0 {
		steps = append(steps, plan.Step{Title: "Creating remote secrets", Details: append(secretDetails, "wait: every secret synced in its istiod's /debug/clusterz"), Run: in.remoteSecrets})
	}
	if len(otherGateways) > 0 {
		steps = append(steps, gateways(otherGateways))
	}
	if scenario.HasSidecarSamples(in.S) {
		steps = append(steps, plan.Step{Title: "Deploying sample workloads", Details: in.sampleDetails(), Run: func(ctx context.Context) error { return in.forEach(ctx, all, in.samples) }})
	}
	if scenario.HasProxylessSamples(in.S) {
		steps = append(steps, plan.Step{Title: "Deploying proxyless gRPC samples", Details: []string{
			fmt.Sprintf("namespace %s (istio-injection=enabled): Istio's echo app (%s) as echo-vN in the Nth cluster, injected with the grpc-agent template (pilot-agent, no Envoy), serving gRPC from xDS on 7070 (fixtures/istio/echo-proxyless.yaml)", ProxylessNamespace, in.EchoImage()),
			"wait: every echo pod Running, Ready and injected by istiod",
		}, Run: func(ctx context.Context) error { return in.forEach(ctx, all, in.proxylessSamples) }})
	}
	if f := in.federation(); f != nil {
		var d []string
		d = append(d, fmt.Sprintf("trust: %s (trustDomainAliases of the other meshes in every meshConfig)", f.Trust))
		for _, e := range f.Exports {
			d = append(d, fmt.Sprintf("mesh %s exports %s: Gateway federation-export (15443 AUTO_PASSTHROUGH for these hosts only); other meshes import each as ServiceEntry + WorkloadEntry at %s's east-west gateway(s), port 15443, tlsMode istio", e.Mesh, strings.Join(e.Hosts, ", "), e.Mesh))
		}
		steps = append(steps, plan.Step{Title: "Federating meshes", Details: d, Run: in.federate})
	}
	return steps
}

// exposureReason says why istiod is exposed through a LoadBalancer when the scenario does not say.
func exposureReason(s *scenario.Scenario) string {
	if s.Istio.ExposeIstiod == "" && scenario.OfflineImages(s) {
		return "; the default with offline images: an east-west gateway needs Envoy, which they do not have"
	}
	return ""
}

func valuesSummary(v map[string]any) string {
	var parts []string
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, val := range m {
			if sub, ok := val.(map[string]any); ok {
				walk(prefix+k+".", sub)
				continue
			}
			s := fmt.Sprint(val)
			if strings.HasSuffix(k, "CABundle") {
				s = "<mesh root, base64>"
			}
			parts = append(parts, prefix+k+"="+s)
		}
	}
	walk("", v)
	sortStrings(parts)
	return strings.Join(parts, " ")
}

func exposeSummary(t Topology, c scenario.Cluster) string {
	var parts []string
	if c.Role == scenario.Primary && t.MultiNetworkMesh(c.Mesh) {
		parts = append(parts, "samples/multicluster/expose-services.yaml (15443 AUTO_PASSTHROUGH *.local)")
	}
	if t.ExposesIstiodThroughGateway(c) {
		parts = append(parts, "samples/multicluster/expose-istiod.yaml")
	}
	if len(parts) == 0 {
		return "nothing exposed here"
	}
	return strings.Join(parts, " + ")
}
