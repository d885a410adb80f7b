// Package diagnose derives why an expectation of the mesh does not hold, from what istiod itself holds.
// An expectation is "a client in cluster A gets service S's endpoints of cluster B" (directly, or
// through B's network's east-west gateway). Explain walks the chain from the Kubernetes objects to the
// client's view, one link at a time, reading each link from istiod's debug endpoints (/debug/clusterz,
// registryz, endpointShardz, networkz, mesh, configz) and the clusters' API servers, and stops at the
// first broken link: it names the object (cluster, kind, namespace/name), the field, and what it saw.
// When no link is broken as far as istiod's state shows, it says exactly that.
//
// verify's failure lines, `mclab train` hints and `mclab explain` all use it.
package diagnose

import (
	"context"
	"fmt"
	"strings"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// The classes of links, in the order a chain walks them.
const (
	ClassRemoteAccess  = "remote access"
	ClassRegistry      = "registry"
	ClassMeshConfig    = "mesh config"
	ClassVisibility    = "visibility"
	ClassNetworks      = "networks"
	ClassTrafficPolicy = "traffic policy"
	ClassIdentity      = "identity"
)

// Env is the lab as the diagnosis reads it.
type Env struct {
	Scenario *scenario.Scenario
	// Clients talk to each cluster's API server.
	Clients map[string]*kube.Client
	// Debug reads the debug endpoints of the istiod serving a primary.
	Debug Debug
}

// Expectation is one thing a spec checks.
type Expectation struct {
	// Client is the cluster of the client; Namespace its namespace (whose Sidecar scopes what it sees).
	Client, Namespace string
	// Host is the service's FQDN (helloworld.sample.svc.cluster.local); Port its port, 0 for any.
	Host string
	Port int
	// From is the cluster whose endpoints the client should get.
	From string
	// MTLS asks for Istio mTLS on the path too (the traffic policy and identity links); crossing
	// networks needs it anyway.
	MTLS bool `json:"mtls,omitempty"`
	// Local inverts the expectation: the host is cluster-local, so the client gets only its own
	// cluster's endpoints of it (From is the client's cluster).
	Local bool `json:"local,omitempty"`
	// Import is the mesh that exports Host to the client's (federated) mesh: the client reaches it only
	// through that mesh's east-west gateways (From is one of its clusters).
	Import string `json:"import,omitempty"`
}

func (e Expectation) String() string {
	port := ""
	if e.Port != 0 {
		port = fmt.Sprintf(":%d", e.Port)
	}
	if e.Import != "" {
		return fmt.Sprintf("a client in %s/%s gets %s%s, exported by mesh %s, through its gateways", e.Client, e.Namespace, e.Host, port, e.Import)
	}
	if e.Local {
		return fmt.Sprintf("a client in %s/%s gets only %s's endpoints of %s%s", e.Client, e.Namespace, e.Client, e.Host, port)
	}
	return fmt.Sprintf("a client in %s/%s gets %s%s endpoints of %s", e.Client, e.Namespace, e.Host, port, e.From)
}

// Link is one step of the chain.
type Link struct {
	Class string `json:"class"`
	// Check says what the link requires ("istiod of c1 reads c2, synced").
	Check string `json:"check"`
	OK    bool   `json:"ok"`
	// Object is what holds the value: "c1 Secret istio-system/istio-remote-secret-c2".
	Object string `json:"object,omitempty"`
	// Field is where in it: "data.c2 (kubeconfig) server".
	Field string `json:"field,omitempty"`
	// Saw is the value seen.
	Saw string `json:"saw,omitempty"`
	// Evidence names where it was read: "istiod of c1 /debug/clusterz".
	Evidence string `json:"evidence,omitempty"`
	// Fix says what makes the link hold, for a broken link.
	Fix string `json:"fix,omitempty"`
}

// Chain is the walk of one expectation: the links that hold, then the first broken one (if any).
type Chain struct {
	Expectation Expectation `json:"expectation"`
	// Serving is the primary whose istiod serves the client.
	Serving string `json:"serving"`
	Links   []Link `json:"links"`
	// Evidence lists every debug endpoint and API read the walk used.
	Evidence []string `json:"evidence"`
}

// Broken is the first broken link, or nil.
func (c *Chain) Broken() *Link {
	for i := range c.Links {
		if !c.Links[i].OK {
			return &c.Links[i]
		}
	}
	return nil
}

// Cause is the one-line cause for a failure line: the broken link's object, field and value, or the
// statement that istiod's state shows no broken link.
func (c *Chain) Cause() string {
	b := c.Broken()
	if b == nil {
		return fmt.Sprintf("no link is broken as far as istiod's state shows (%d links checked from %s)", len(c.Links), strings.Join(c.Evidence, ", "))
	}
	s := fmt.Sprintf("%s: %s", b.Class, b.Object)
	if b.Field != "" {
		s += " " + b.Field
	}
	if b.Saw != "" {
		s += " = " + b.Saw
	}
	s += " (" + b.Check + "; " + b.Evidence + ")"
	if b.Fix != "" {
		s += "; " + b.Fix
	}
	return s
}

// Explain walks the chain of e. An error is an infrastructure problem (an istiod or API server that
// does not answer), never a cause.
func Explain(ctx context.Context, env Env, e Expectation) (*Chain, error) {
	s := env.Scenario
	client, from := s.Cluster(e.Client), s.Cluster(e.From)
	if client == nil || from == nil {
		return nil, fmt.Errorf("no cluster %q or %q in lab %s (clusters: %s)", e.Client, e.From, s.Name, strings.Join(clusterNames(s), ", "))
	}
	topo := istio.Topology{S: s}
	serving := topo.Serving(*client)
	st, err := readState(ctx, env.Debug, serving.Name)
	if err != nil {
		return nil, err
	}
	w := &walk{ctx: ctx, env: env, e: e, client: *client, from: *from, serving: serving, st: st,
		chain: &Chain{Expectation: e, Serving: serving.Name}}
	w.used("istiod of %s /debug/clusterz, registryz, endpointShardz, networkz, mesh, configz", serving.Name)
	links := []func() (bool, error){w.remoteAccess, w.registry, w.meshConfig, w.visibility, w.networks, w.trafficPolicy, w.identity}
	if e.Local {
		if e.From != e.Client {
			return nil, fmt.Errorf("a cluster-local expectation is of the client's own cluster (client %s, from %s)", e.Client, e.From)
		}
		links = []func() (bool, error){w.clusterLocal}
	}
	if e.Import != "" {
		links = []func() (bool, error){w.federationImport, w.exportGateway}
	}
	for _, link := range links {
		ok, err := link()
		if err != nil {
			return nil, err
		}
		if !ok {
			break
		}
	}
	return w.chain, nil
}

type walk struct {
	ctx          context.Context
	env          Env
	e            Expectation
	client, from scenario.Cluster
	serving      scenario.Cluster
	st           *istiodState
	chain        *Chain
}

func (w *walk) used(format string, args ...any) {
	w.chain.Evidence = append(w.chain.Evidence, fmt.Sprintf(format, args...))
}

// ok records a link that holds; it returns true so a link function can end with it.
func (w *walk) ok(class, check, object, saw, evidence string) bool {
	w.chain.Links = append(w.chain.Links, Link{Class: class, Check: check, OK: true, Object: object, Saw: saw, Evidence: evidence})
	return true
}

// broken records the first broken link; it returns false so the walk stops there.
func (w *walk) broken(l Link) bool {
	l.OK = false
	w.chain.Links = append(w.chain.Links, l)
	return false
}

func (w *walk) kube(cluster string) (*kube.Client, error) {
	c := w.env.Clients[cluster]
	if c == nil {
		return nil, fmt.Errorf("no client for cluster %s", cluster)
	}
	return c, nil
}

// svcName and svcNamespace split the host (name.namespace.svc.<domain>).
func (w *walk) svcName() string {
	name, _, _ := strings.Cut(w.e.Host, ".")
	return name
}

func (w *walk) svcNamespace() string {
	parts := strings.Split(w.e.Host, ".")
	if len(parts) > 1 {
		return parts[1]
	}
	return w.e.Namespace
}

func (w *walk) sameNetwork() bool { return w.client.Network == w.from.Network }

func clusterNames(s *scenario.Scenario) []string {
	var out []string
	for _, c := range s.Clusters {
		out = append(out, c.Name)
	}
	return out
}

// hostMatches reports whether an Istio host pattern ("*", "*.sample.svc.cluster.local",
// "helloworld.sample.svc.cluster.local") matches host.
func hostMatches(pattern, host string) bool {
	switch {
	case pattern == "*" || pattern == host:
		return true
	case strings.HasPrefix(pattern, "*."):
		return strings.HasSuffix(host, pattern[1:])
	}
	return false
}
