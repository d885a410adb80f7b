package diagnose

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// Request is what `mclab explain` asks: from a client (cluster, namespace, optionally a pod) to a host
// (and port), through the endpoints of each source cluster (every cluster of the client's mesh unless
// Sources names some).
type Request struct {
	From    string   // CLUSTER[/NAMESPACE[/POD]]
	To      string   // HOST[:PORT]: an FQDN, or NAME.NAMESPACE
	Sources []string // clusters whose endpoints are expected; empty: every cluster of the mesh
	MTLS    bool
}

// BadInputError is a request naming a cluster, pod or host the lab does not have (exit 2); it lists
// the names it knows.
type BadInputError struct{ msg string }

func (e *BadInputError) Error() string { return e.msg }

func badInput(format string, args ...any) error {
	return &BadInputError{msg: fmt.Sprintf(format, args...)}
}

// Explanation is the chains of one request.
type Explanation struct {
	Request Request  `json:"request"`
	Chains  []*Chain `json:"chains"`
}

// ExplainRequest resolves r against the lab and istiod's registry, and walks one chain per source
// cluster.
func ExplainRequest(ctx context.Context, env Env, r Request) (*Explanation, error) {
	s := env.Scenario
	parts := strings.Split(r.From, "/")
	if len(parts) > 3 || parts[0] == "" {
		return nil, badInput("--from %q: write CLUSTER, CLUSTER/NAMESPACE or CLUSTER/NAMESPACE/POD", r.From)
	}
	client := s.Cluster(parts[0])
	if client == nil {
		return nil, badInput("--from %q: lab %s has no cluster %s (clusters: %s)", r.From, s.Name, parts[0], strings.Join(clusterNames(s), ", "))
	}
	host, port := r.To, 0
	if h, p, ok := strings.Cut(r.To, ":"); ok {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 || n > 65535 {
			return nil, badInput("--to %q: the port must be a number from 1 to 65535", r.To)
		}
		host, port = h, n
	}
	if host == "" {
		return nil, badInput("--to %q: give a host (helloworld.sample or helloworld.sample.svc.cluster.local)", r.To)
	}
	if strings.Count(host, ".") == 1 {
		host += ".svc.cluster.local"
	}
	// The host must be one istiod of the client's primary knows.
	serving := istio.Topology{S: s}.Serving(*client)
	body, err := env.Debug(ctx, serving.Name, "/debug/registryz")
	if err != nil {
		return nil, &InfraError{Primary: serving.Name, Path: "/debug/registryz", Err: err}
	}
	var reg []registryService
	if err := json.Unmarshal(body, &reg); err != nil {
		return nil, &InfraError{Primary: serving.Name, Path: "/debug/registryz", Err: err}
	}
	var known []string
	var svc *registryService
	for i := range reg {
		known = append(known, reg[i].Hostname)
		if reg[i].Hostname == host {
			svc = &reg[i]
		}
	}
	sort.Strings(known)
	if svc == nil {
		return nil, badInput("--to %q: istiod of %s knows no host %s (it knows: %s)", r.To, serving.Name, host, strings.Join(known, ", "))
	}
	if port != 0 {
		var ports []string
		found := false
		for _, p := range svc.Ports {
			ports = append(ports, strconv.Itoa(p.Port))
			found = found || p.Port == port
		}
		if !found {
			return nil, badInput("--to %q: %s has no port %d (ports: %s)", r.To, host, port, strings.Join(ports, ", "))
		}
	}
	ns := svc.Attributes.Namespace
	if len(parts) > 1 && parts[1] != "" {
		ns = parts[1]
	}
	if len(parts) == 3 {
		k := env.Clients[client.Name]
		if k == nil {
			return nil, fmt.Errorf("no client for cluster %s", client.Name)
		}
		if _, err := k.Kube.CoreV1().Pods(ns).Get(ctx, parts[2], metav1.GetOptions{}); err != nil {
			pods, lerr := k.Kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
			if lerr != nil {
				return nil, errors.Join(err, lerr)
			}
			var names []string
			for _, p := range pods.Items {
				names = append(names, p.Name)
			}
			return nil, badInput("--from %q: %s has no pod %s/%s (pods there: %s)", r.From, client.Name, ns, parts[2], orNone(names))
		}
	}
	sources := r.Sources
	if len(sources) == 0 {
		for _, c := range s.Clusters {
			if c.Mesh == client.Mesh {
				sources = append(sources, c.Name)
			}
		}
	}
	out := &Explanation{Request: r}
	for _, src := range sources {
		if s.Cluster(src) == nil {
			return nil, badInput("--source %q: lab %s has no cluster %s (clusters: %s)", src, s.Name, src, strings.Join(clusterNames(s), ", "))
		}
	}
	for _, src := range sources {
		c, err := Explain(ctx, env, Expectation{Client: client.Name, Namespace: ns, Host: host, Port: port, From: src, MTLS: r.MTLS})
		if err != nil {
			return nil, err
		}
		out.Chains = append(out.Chains, c)
	}
	return out, nil
}
