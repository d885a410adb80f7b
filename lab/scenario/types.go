// Package scenario defines mclab's declarative lab description: which clusters, on which networks, in
// which meshes, with which Istio deployment model, on which provider. A Scenario is read from YAML
// (strictly: unknown fields are errors), from Istio's own topology JSON, or composed from a topology and
// a model; Default fills in everything left out and Validate rejects what cannot work, naming the field
// and the fix, before anything is created.
package scenario

// APIVersion is the version of the scenario format this package reads and writes.
const APIVersion = "mclab.dev/v1alpha1"

// Kind is the kind of a scenario document.
const Kind = "Scenario"

// Model is an Istio multi-cluster deployment model.
type Model string

// The Istio deployment models mclab installs.
const (
	// MultiPrimary runs an istiod in every cluster; every primary discovers every other cluster of its mesh.
	MultiPrimary Model = "multi-primary"
	// PrimaryRemote runs istiod in the primaries only; remotes are configured and injected by their primary.
	PrimaryRemote Model = "primary-remote"
	// Federated runs separate meshes that export chosen services to each other through east-west gateways.
	Federated Model = "federated"
)

// Models lists the supported models, in the order they are documented.
var Models = []Model{MultiPrimary, PrimaryRemote, Federated}

// Topology is the network layout of a composed scenario.
type Topology string

// The built-in topologies.
const (
	// SingleNetwork puts every cluster on one network: pod IPs are reachable across clusters.
	SingleNetwork Topology = "single-network"
	// MultiNetwork puts every cluster on its own network: only east-west gateways cross.
	MultiNetwork Topology = "multi-network"
)

// Topologies lists the built-in topologies.
var Topologies = []Topology{SingleNetwork, MultiNetwork}

// Role is the role of a cluster in its mesh.
type Role string

// Cluster roles.
const (
	// Primary clusters run an istiod.
	Primary Role = "primary"
	// Remote clusters have no istiod; their primary configures them.
	Remote Role = "remote"
)

// ProviderName selects how clusters are created.
type ProviderName string

// The providers.
const (
	// ProviderAuto picks kind when a container runtime answers, local otherwise.
	ProviderAuto ProviderName = "auto"
	// ProviderKind creates kind clusters in Docker or Podman.
	ProviderKind ProviderName = "kind"
	// ProviderLocal runs real control-plane processes with kwok nodes, without containers.
	ProviderLocal ProviderName = "local"
	// ProviderExisting uses clusters from kubeconfig contexts and never creates or deletes them.
	ProviderExisting ProviderName = "existing"
)

// Providers lists the provider names a scenario may ask for.
var Providers = []ProviderName{ProviderAuto, ProviderKind, ProviderLocal, ProviderExisting}

// Scenario describes a lab.
type Scenario struct {
	// APIVersion is always APIVersion.
	APIVersion string `json:"apiVersion"`
	// Kind is always Kind.
	Kind string `json:"kind"`
	// Name is the scenario's name and the default lab name; a DNS-1123 label.
	Name string `json:"name"`
	// Description says in a sentence what the scenario is for.
	Description string `json:"description,omitempty"`
	// Provider selects and configures the cluster provider.
	Provider Provider `json:"provider,omitempty"`
	// Istio selects the deployment model and version.
	Istio Istio `json:"istio,omitempty"`
	// Meshes are the meshes clusters belong to; one is created when none is given.
	Meshes []Mesh `json:"meshes,omitempty"`
	// Clusters are the lab's clusters, in order; the order decides defaults (networks, subnets, versions).
	Clusters []Cluster `json:"clusters"`
}

// Provider selects the provider and holds its options.
type Provider struct {
	// Name is auto, kind, local or existing (default auto).
	Name ProviderName `json:"name,omitempty"`
	// Local holds options of the local provider.
	Local *LocalOptions `json:"local,omitempty"`
	// Kind holds options of the kind provider.
	Kind *KindOptions `json:"kind,omitempty"`
	// Existing holds options of the existing-cluster provider.
	Existing *ExistingOptions `json:"existing,omitempty"`
}

// LocalOptions configures the local provider.
type LocalOptions struct {
	// NodesPerCluster is how many kwok nodes each cluster gets (default 1).
	NodesPerCluster int `json:"nodesPerCluster,omitempty"`
	// APIServerGOGC sets GOGC for kube-apiserver (default 100, Go's own; 50 trims about 30 MiB per
	// cluster at the cost of start-up CPU).
	APIServerGOGC *int `json:"apiServerGOGC,omitempty"`
}

// KindOptions configures the kind provider.
type KindOptions struct {
	// NodeImage overrides the node image kind's version pins (default: $MCLAB_KIND_NODE_IMAGE, else
	// kind's own).
	NodeImage string `json:"nodeImage,omitempty"`
	// Workers is the number of worker nodes per cluster (default 0).
	Workers int `json:"workers,omitempty"`
	// LoadBalancer is what gives LoadBalancer Services their addresses: metallb (default; installed by
	// mclab with a pool per cluster), cloud-provider-kind (run by the user on the host; mclab only
	// waits for the addresses), or none (clusters-only labs: LoadBalancer Services stay pending).
	LoadBalancer string `json:"loadBalancer,omitempty"`
	// OfflineImages builds the images the lab needs from source on the host (Istio's pilot and an
	// agent-only proxyv2, MetalLB's controller and speaker) and loads them into the nodes, for machines
	// with no registry (air-gapped labs). Istio's hub and tag default to the ones built.
	OfflineImages bool `json:"offlineImages,omitempty"`
	// PreloadImages pulls Istio's and the samples' images once on the host and loads them into every
	// node (as `kind load docker-image`), so N clusters do not pull N times (registry rate limits).
	PreloadImages bool `json:"preloadImages,omitempty"`
	// RegistryMirrors maps a registry host (docker.io) to a mirror endpoint
	// (http://registry-mirror:5000) that containerd on every node uses first.
	RegistryMirrors map[string]string `json:"registryMirrors,omitempty"`
}

// ExistingOptions maps scenario clusters to kubeconfig contexts.
type ExistingOptions struct {
	// Kubeconfig is the kubeconfig file to read (default: $KUBECONFIG or ~/.kube/config).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// Contexts maps a cluster name to a context name (default: the context named like the cluster).
	Contexts map[string]string `json:"contexts,omitempty"`
	// Istiod gives, per primary, where its istiod answers when probes can reach it directly (an
	// external control plane, a port-forward kept open by the CI job).
	Istiod map[string]IstiodAddresses `json:"istiod,omitempty"`
}

// IstiodAddresses are an istiod's ports as host:port.
type IstiodAddresses struct {
	// XDS is the plaintext xDS port (15010), XDSTLS the TLS xDS and CA port (15012), Debug the HTTP
	// debug port (8080), Monitoring the metrics port (15014).
	XDS        string `json:"xds,omitempty"`
	XDSTLS     string `json:"xdsTLS"`
	Debug      string `json:"debug"`
	Monitoring string `json:"monitoring,omitempty"`
}

// Istio selects what is installed.
type Istio struct {
	// Model is multi-primary (default), primary-remote or federated.
	Model Model `json:"model,omitempty"`
	// Version is the Istio version to install: DefaultIstioVersion (the charts and pilot-discovery built
	// into mclab, offline) or a published release such as 1.30.1, whose charts come from
	// ChartRepository and whose images (and, on the local provider, pilot-discovery) from Hub.
	Version string `json:"version,omitempty"`
	// ChartRepository is the Helm chart repository of a release's charts (default Istio's,
	// https://istio-release.storage.googleapis.com/charts).
	ChartRepository string `json:"chartRepository,omitempty"`
	// Hub and Tag are the registry and tag of Istio's images (pilot, proxyv2) where istiod and sidecars
	// run in containers (kind, existing), and of the pilot image the local provider takes a release's
	// pilot-discovery from. Default: registry.istio.io/testing and latest for the built-in 1.31-dev
	// charts; docker.io/istio and the version for a release. Set them to a mirror if you have one.
	Hub string `json:"hub,omitempty"`
	Tag string `json:"tag,omitempty"`
	// Federation configures the federated model.
	Federation *Federation `json:"federation,omitempty"`
	// Samples is which sample workloads the lab deploys: sidecar (default: Istio's helloworld, curl
	// and httpbin with sidecars), proxyless (Istio's echo app with the grpc-agent template: gRPC
	// without Envoy), all, or none.
	Samples string `json:"samples,omitempty"`
	// ExposeIstiod is how remotes reach their primary's istiod (its xDS port 15012 and webhook port
	// 15017): eastWestGateway (default; Istio's docs: samples/multicluster/expose-istiod.yaml through
	// the primary's east-west gateway) or loadBalancer (a LoadBalancer Service in front of istiod, as
	// Istio's test framework exposes an external control plane: no Envoy on the path, so it is the
	// default with provider.kind.offlineImages, whose proxyv2 image has none).
	ExposeIstiod string `json:"exposeIstiod,omitempty"`
}

// How remotes reach their primary's istiod (istio.exposeIstiod).
const (
	ExposeEastWestGateway = "eastWestGateway"
	ExposeLoadBalancer    = "loadBalancer"
)

// ExposeIstiodValues are the valid istio.exposeIstiod values.
var ExposeIstiodValues = []string{ExposeEastWestGateway, ExposeLoadBalancer}

// OfflineImages reports whether the lab runs on images built on the host without Envoy
// (provider.kind.offlineImages).
func OfflineImages(s *Scenario) bool {
	return s.Provider.Kind != nil && s.Provider.Kind.OfflineImages
}

// HasRemotes reports whether any cluster is a remote of a primary.
func HasRemotes(s *Scenario) bool {
	for _, c := range s.Clusters {
		if c.Role == Remote {
			return true
		}
	}
	return false
}

// Sample sets.
const (
	SamplesSidecar   = "sidecar"
	SamplesProxyless = "proxyless"
	SamplesAll       = "all"
	SamplesNone      = "none"
)

// SampleSets are the valid istio.samples values.
var SampleSets = []string{SamplesSidecar, SamplesProxyless, SamplesAll, SamplesNone}

// HasSidecarSamples reports whether the lab deploys the sidecar samples.
func HasSidecarSamples(s *Scenario) bool {
	return SampleSet(s) == SamplesSidecar || SampleSet(s) == SamplesAll
}

// SampleSet is the lab's sample set: istio.samples, else proxyless with offline images (whose proxyv2
// has no Envoy for sidecars), else sidecar.
func SampleSet(s *Scenario) string {
	switch {
	case s.Istio.Samples != "":
		return s.Istio.Samples
	case OfflineImages(s):
		return SamplesProxyless
	default:
		return SamplesSidecar
	}
}

// IstiodExposure is how remotes reach their primary's istiod: istio.exposeIstiod, else loadBalancer
// with offline images (no Envoy for the east-west gateway), else eastWestGateway.
func IstiodExposure(s *Scenario) string {
	switch {
	case s.Istio.ExposeIstiod != "":
		return s.Istio.ExposeIstiod
	case OfflineImages(s):
		return ExposeLoadBalancer
	default:
		return ExposeEastWestGateway
	}
}

// HasProxylessSamples reports whether the lab deploys the proxyless gRPC samples.
func HasProxylessSamples(s *Scenario) bool {
	return SampleSet(s) == SamplesProxyless || SampleSet(s) == SamplesAll
}

// Trust is how federated meshes trust each other's workloads.
type Trust string

// Federation trust modes.
const (
	// TrustCACertificates gives each mesh its own root; each trusts the others' roots through
	// meshConfig.caCertificates and their trust domains through trustDomainAliases.
	TrustCACertificates Trust = "ca-certificates"
	// TrustSharedRoot signs every mesh's intermediates with one root (trust domains still differ and are
	// aliased).
	TrustSharedRoot Trust = "shared-root"
)

// Federation says how separate meshes trust each other and what each exports.
type Federation struct {
	// Trust is ca-certificates (default) or shared-root.
	Trust Trust `json:"trust,omitempty"`
	// Exports are the services each mesh exports through its east-west gateways (default: the first
	// mesh exports httpbin.sample.svc.cluster.local; nothing where the lab deploys no sidecar samples).
	Exports []Export `json:"exports,omitempty"`

	// exportsDefaulted records that Exports came from Default, so a later Default (after flags changed
	// the sample set) re-derives them.
	exportsDefaulted bool
}

// Export is what one mesh exports.
type Export struct {
	// Mesh is the exporting mesh's id.
	Mesh string `json:"mesh"`
	// Hosts are the exported Services' hostnames (e.g. httpbin.sample.svc.cluster.local).
	Hosts []string `json:"hosts"`
}

// Mesh is one Istio mesh.
type Mesh struct {
	// ID is the mesh ID (global.meshID).
	ID string `json:"id"`
	// TrustDomain is the mesh's SPIFFE trust domain (default cluster.local; federated meshes default to <id>.local).
	TrustDomain string `json:"trustDomain,omitempty"`
}

// Cluster is one Kubernetes cluster of the lab.
type Cluster struct {
	// Name is a DNS-1123 label, unique in the lab; it is also Istio's cluster ID.
	Name string `json:"name"`
	// Network is Istio's network name (topology.istio.io/network).
	Network string `json:"network,omitempty"`
	// PodSubnet is the pod CIDR; allocated without overlap when empty.
	PodSubnet string `json:"podSubnet,omitempty"`
	// ServiceSubnet is the Service CIDR; allocated without overlap when empty.
	ServiceSubnet string `json:"serviceSubnet,omitempty"`
	// Region is the nodes' topology.kubernetes.io/region label.
	Region string `json:"region,omitempty"`
	// Zone is the nodes' topology.kubernetes.io/zone label.
	Zone string `json:"zone,omitempty"`
	// Role is primary (default) or remote.
	Role Role `json:"role,omitempty"`
	// Primary names the primary cluster that serves a remote.
	Primary string `json:"primary,omitempty"`
	// Mesh is the ID of the mesh the cluster belongs to (default: the first mesh).
	Mesh string `json:"mesh,omitempty"`
	// IstioVersion is the Istio release of this cluster's charts and istiod (default istio.version): a
	// mixed-version lab, as Istio's skew policy allows (control planes one minor version apart).
	IstioVersion string `json:"istioVersion,omitempty"`
}
