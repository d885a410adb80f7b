// Package provider is the seam between a lab and the machinery that creates its clusters. Every
// provider (local processes, kind containers, existing kubeconfig contexts) implements Provider for one
// lab; what it can and cannot do is in its Capabilities, so callers never branch on a provider's name.
package provider

import (
	"context"

	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"mclab.dev/mclab/lab/plan"
	"mclab.dev/mclab/lab/scenario"
)

// Provider creates, describes and deletes the clusters of one lab.
type Provider interface {
	// Name is the provider's name (never auto).
	Name() scenario.ProviderName
	// Capabilities says what the provider's clusters can do.
	Capabilities() Capabilities
	// Plan returns the steps that create the scenario's clusters, or converge clusters that exist, up to
	// every cluster's nodes being Ready. Building the plan has no side effects.
	Plan(s *scenario.Scenario) ([]plan.Step, error)
	// Delete removes everything the provider made for the lab and succeeds when nothing is left, whatever
	// state the lab is in (half created, already deleted).
	Delete(ctx context.Context) error
	// Kubeconfig returns an admin kubeconfig for a cluster, with one context named after the cluster and
	// its server as seen from the host, or from inside the lab's other clusters.
	Kubeconfig(ctx context.Context, cluster string, from Viewpoint) (*clientcmdapi.Config, error)
	// Clusters describes every cluster: network facts, nodes, and the health of what runs it.
	Clusters(ctx context.Context) ([]ClusterInfo, error)
}

// Viewpoint is where a kubeconfig will be used from.
type Viewpoint string

// Viewpoints.
const (
	// FromHost: the machine mclab runs on.
	FromHost Viewpoint = "host"
	// FromCluster: a workload (e.g. istiod) in another cluster of the lab.
	FromCluster Viewpoint = "cluster"
)

// IstiodRuntime is where istiod runs on a provider.
type IstiodRuntime string

// Istiod runtimes.
const (
	// IstiodInCluster: the chart's Deployment, as in production.
	IstiodInCluster IstiodRuntime = "in-cluster"
	// IstiodProcess: a local pilot-discovery process configured as the chart would configure the pod.
	IstiodProcess IstiodRuntime = "process"
)

// Capabilities says what a provider's clusters can do, so that installers and suites can adapt and
// reports can say why a check did not run.
type Capabilities struct {
	// CreatesClusters is false when the provider only uses clusters that exist.
	CreatesClusters bool `json:"createsClusters"`
	// RunsContainers is true when pods run real containers (sidecars, curl, exec): data-plane checks need it.
	RunsContainers bool `json:"runsContainers"`
	// NoContainersReason says why pods run no containers, for skipped checks.
	NoContainersReason string `json:"noContainersReason,omitempty"`
	// LoadBalancer says how LoadBalancer Services get addresses: "metallb", "lab-assigned" (the lab writes
	// the Service status from a per-lab range) or "cluster" (whatever the existing cluster has).
	LoadBalancer string `json:"loadBalancer"`
	// Istiod is where istiod runs.
	Istiod IstiodRuntime `json:"istiod"`
}

// ClusterInfo describes one cluster of a lab.
type ClusterInfo struct {
	// Name is the scenario's cluster name.
	Name string `json:"name"`
	// Network, PodSubnet and ServiceSubnet are the cluster's network facts.
	Network       string `json:"network"`
	PodSubnet     string `json:"podSubnet"`
	ServiceSubnet string `json:"serviceSubnet"`
	// Server is the API server URL from the host.
	Server string `json:"server"`
	// Ready is true when the API server answers /readyz and every node is Ready.
	Ready bool `json:"ready"`
	// Message says what is wrong when not Ready.
	Message string `json:"message,omitempty"`
	// Nodes are the cluster's nodes.
	Nodes []Node `json:"nodes,omitempty"`
	// Components are the processes or containers that run the cluster.
	Components []Component `json:"components,omitempty"`
}

// Node is one node of a cluster.
type Node struct {
	Name     string `json:"name"`
	Ready    bool   `json:"ready"`
	PodCIDR  string `json:"podCIDR,omitempty"`
	Region   string `json:"region,omitempty"`
	Zone     string `json:"zone,omitempty"`
	Internal string `json:"internalIP,omitempty"`
}

// Component is one process or container of a cluster.
type Component struct {
	Name    string `json:"name"`
	Running bool   `json:"running"`
	PID     int    `json:"pid,omitempty"`
	Address string `json:"address,omitempty"`
}

// IstiodEndpoints is implemented by providers that know where each primary's istiod answers, so probes
// can reach it directly.
type IstiodEndpoints interface {
	// IstiodEndpoint is where the istiod serving cluster runs (known before it starts).
	IstiodEndpoint(cluster string) (IstiodEndpoint, error)
}

// IstiodProcesses is implemented by providers whose Capabilities.Istiod is IstiodProcess: they run
// istiod (pilot-discovery) as a local process per primary, configured as the chart's Deployment would
// configure the pod.
type IstiodProcesses interface {
	IstiodEndpoints
	// StartIstiod starts, or keeps running, istiod for a primary cluster and waits for /ready.
	StartIstiod(ctx context.Context, cluster string, spec IstiodSpec) error
}

// IstiodRestarter stops a process istiod so that StartIstiod starts a fresh one (the local provider).
type IstiodRestarter interface {
	StopIstiod(ctx context.Context, cluster string) error
}

// IstiodEndpoint is how to reach one istiod.
type IstiodEndpoint struct {
	// XDS is the plaintext xDS address (15010 in a pod).
	XDS string `json:"xds"`
	// XDSTLS is the TLS xDS and CA address (15012).
	XDSTLS string `json:"xdsTLS"`
	// Webhook is the injection and validation webhook address (15017), as host:port whose host is one
	// of istiod's certificate names.
	Webhook string `json:"webhook"`
	// Monitoring is the metrics address (15014).
	Monitoring string `json:"monitoring"`
	// Debug is the HTTP debug address (8080): /ready, /debug/clusterz, /debug/networkz, ...
	Debug string `json:"debug"`
}

// IstiodSpec is what a process runtime needs to run istiod as its chart would.
type IstiodSpec struct {
	// Env is the container's environment, with pod field references resolved.
	Env []string
	// Files are written relative to istiod's working directory, where its defaults resolve
	// (./etc/istio/config/mesh, ./var/lib/istio/inject/config, ...).
	Files map[string][]byte
	// Args are extra pilot-discovery arguments; listen addresses and the kubeconfig are the runtime's.
	Args []string
	// CACertsDir holds the plugged-in CA (ROOT_CA_DIR).
	CACertsDir string
	// Binary is the pilot-discovery to run (a release's, verified); "" runs the provider's own. An istiod
	// running another binary is restarted on it (an upgrade).
	Binary string
}

// LoadBalancerAssigner is implemented by providers whose Capabilities.LoadBalancer is "lab-assigned":
// no load-balancer controller runs, so the lab writes the address into the Service's status itself, as
// a controller would. Addresses come from a per-lab range and are stable for the lab's life.
type LoadBalancerAssigner interface {
	// LoadBalancerAddress is the address of cluster's east-west gateway.
	LoadBalancerAddress(cluster string) (string, error)
}

// LogCollector is implemented by providers that can export their clusters' logs (node logs, component
// logs) for a failure report.
type LogCollector interface {
	// CollectLogs writes the lab's logs under dir.
	CollectLogs(ctx context.Context, dir string) error
}

// PodTunnel reaches into pods through the API server, as `kubectl port-forward` and `kubectl exec` do.
// Providers whose istiod runs in the cluster (kind, existing) implement it, so installers and probes
// reach istiod's debug and xDS ports and run commands in sample pods without a route to pod IPs. Tests
// give those providers a fake that records calls and answers.
type PodTunnel interface {
	// PortForward forwards local loopback ports to ports of a running, ready pod chosen by labelSelector
	// (as `kubectl port-forward deploy/NAME` picks one). It returns the local host:port per remote port
	// and a stop function.
	PortForward(ctx context.Context, cluster, namespace, labelSelector string, ports []int) (local map[int]string, stop func(), err error)
	// Exec runs a command in a pod's container and returns its output.
	Exec(ctx context.Context, cluster, namespace, pod, container string, cmd []string) (stdout, stderr string, err error)
}

// Tunneled is implemented by providers that reach pods through a PodTunnel.
type Tunneled interface {
	Tunnel() PodTunnel
}
