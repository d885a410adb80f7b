// Package suites holds mclab's conformance suites (Ginkgo v2) and the checks behind them. A check
// probes a lab (or any clusters described by a scenario) and returns a verdict with a diagnosis: the
// likely cause and its evidence, not just which assertion failed. Suites never create clusters; they
// read a Target.
package suites

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/diagnose"
	"mclab.dev/mclab/suites/probe/traffic"
)

// Target is what the suites verify: the scenario, a client per cluster, how to reach each istiod, and
// what the provider can do.
type Target struct {
	// Lab is the lab's name.
	Lab string
	// Scenario describes the clusters and meshes.
	Scenario *scenario.Scenario
	// Provider names the provider, for reports.
	Provider scenario.ProviderName
	// Capabilities say which views can run.
	Capabilities provider.Capabilities
	// Clients talk to each cluster.
	Clients map[string]*kube.Client
	// Istiod returns the endpoint of the istiod serving a primary.
	Istiod func(cluster string) (provider.IstiodEndpoint, error)
	// Exec runs commands in pods, for data-plane checks; nil where pods run no containers.
	Exec traffic.Exec
	// Forward forwards local ports to a pod's ports (what `kubectl port-forward` does), for data-plane
	// checks that drive an app's own API (the echo app's ForwardEcho); nil where pods run no containers.
	Forward func(ctx context.Context, cluster, namespace, selector string, ports []int) (map[int]string, func(), error)

	// reachable is what this run learned about which remote secrets' servers answer (reach.go).
	reachable *reachability
}

func (t *Target) topo() istio.Topology { return istio.Topology{S: t.Scenario} }

// Verdict of one check.
type Verdict struct {
	// Failures are the diagnoses, one per broken property: cause first, evidence after. In a safety
	// check they are violations (something that must never happen, happened).
	Failures []string
	// Unconverged are what a safety check expects to appear once istiod has pushed (an endpoint, an
	// import) and did not see yet: retried like a convergence property, never a violation by itself
	// until the settle time ends.
	Unconverged []string
	// Evidence is what was seen, for the report.
	Evidence []string
	// Inconclusive is set when a part of the check could not be judged because the harness or the
	// infrastructure failed (not the mesh): which endpoint, which cluster, which call. A check keeps
	// going after it, so a violation elsewhere is still found.
	Inconclusive error

	// causes are the failures and unconverged expectations whose cause is derived only for the verdict
	// that stands (see failWhy).
	causes []pendingCause
	// diagnosed is the time deriving those causes took (the report's "diagnosis" entry).
	diagnosed time.Duration
}

// pendingCause is one cause a check derives only when its verdict is final: deriving it reads istiod's
// debug state and asks the API servers (the diagnosis chain: seconds on a busy machine), and a failing
// convergence check is polled many times during the settle window.
type pendingCause struct {
	unconverged bool
	i           int
	derive      func() string
}

// failWhy records a failure whose cause why derives, on the verdict that stands only: the message is
// format's, then ": " and the cause.
func (v *Verdict) failWhy(why func() string, format string, args ...any) {
	v.fail(format, args...)
	v.causes = append(v.causes, pendingCause{i: len(v.Failures) - 1, derive: why})
}

// notYetWhy is failWhy for an expectation that may still appear after a push.
func (v *Verdict) notYetWhy(why func() string, format string, args ...any) {
	v.notYet(format, args...)
	v.causes = append(v.causes, pendingCause{unconverged: true, i: len(v.Unconverged) - 1, derive: why})
}

// explained is v with every pending cause derived (what judge reports for the verdict that stands).
func (v Verdict) explained() Verdict {
	if len(v.causes) == 0 {
		return v
	}
	out := v
	out.Failures = slices.Clone(v.Failures)
	out.Unconverged = slices.Clone(v.Unconverged)
	out.causes = nil
	start := time.Now()
	for _, c := range v.causes {
		list := out.Failures
		if c.unconverged {
			list = out.Unconverged
		}
		list[c.i] += ": " + c.derive()
	}
	out.diagnosed = time.Since(start)
	return out
}

// notYet records something a safety check expects to appear after a push and does not see yet.
func (v *Verdict) notYet(format string, args ...any) {
	v.Unconverged = append(v.Unconverged, fmt.Sprintf(format, args...))
}

// cannot records a part of the check that could not be judged.
func (v *Verdict) cannot(format string, args ...any) {
	v.Inconclusive = errors.Join(v.Inconclusive, fmt.Errorf(format, args...))
}

// record files err under what it is: a finding about the mesh (see Finding) fails the check, anything
// else (a dead port-forward, an API error, a timeout) leaves that part not judged. what says which
// call, on which cluster.
func (v *Verdict) record(err error, what string, args ...any) {
	msg := fmt.Sprintf(what, args...)
	var f *FindingError
	if errors.As(err, &f) {
		v.fail("%s: %v", msg, err)
		return
	}
	v.cannot("%s: %v", msg, err)
}

// FindingError is an error that says something about the mesh, not the harness: istiod serves a
// certificate that does not chain to the mesh root, it refuses a workload's token, a pod was not
// injected.
type FindingError struct{ Err error }

func (e *FindingError) Error() string { return e.Err.Error() }
func (e *FindingError) Unwrap() error { return e.Err }

// apiErr classifies an API server's answer: an object that is not there is a finding about the mesh;
// anything else (refused, timeout, forbidden to the harness) is the infrastructure's.
func apiErr(err error) error {
	if apierrors.IsNotFound(err) {
		return finding(err)
	}
	return err
}

// finding marks err as a finding about the mesh.
func finding(err error) error {
	if err == nil {
		return nil
	}
	return &FindingError{err}
}

func (v *Verdict) fail(format string, args ...any) {
	v.Failures = append(v.Failures, fmt.Sprintf(format, args...))
}
func (v *Verdict) saw(format string, args ...any) {
	v.Evidence = append(v.Evidence, fmt.Sprintf(format, args...))
}

// Passed reports a clean verdict.
func (v *Verdict) Passed() bool {
	return len(v.Failures) == 0 && len(v.Unconverged) == 0 && v.Inconclusive == nil
}

// violated reports a safety violation.
func (v *Verdict) violated() bool { return len(v.Failures) > 0 }

// pod returns the first running pod of app in the sample namespace of a cluster.
func (t *Target) pod(ctx context.Context, cluster, app string) (*corev1.Pod, error) {
	return t.podIn(ctx, cluster, istio.SampleNamespace, app)
}

// probe returns the workload whose identity the control-plane probes take in a cluster: the curl
// sample (sidecar samples), else the echo app (proxyless samples).
func (t *Target) probe(ctx context.Context, cluster string) (*corev1.Pod, error) {
	if !scenario.HasSidecarSamples(t.Scenario) && scenario.HasProxylessSamples(t.Scenario) {
		return t.podIn(ctx, cluster, istio.ProxylessNamespace, "echo")
	}
	return t.pod(ctx, cluster, "curl")
}

// podIn returns the first running pod of app in a namespace of a cluster.
func (t *Target) podIn(ctx context.Context, cluster, namespace, app string) (*corev1.Pod, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if pods.Items[i].Status.Phase == corev1.PodRunning && pods.Items[i].Status.PodIP != "" {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no running %s pod in %s/%s: the sample the check relies on is missing (`mclab up` converges it)", app, cluster, namespace)
}

// podIPs returns the IPs of the running pods of app in a cluster's sample namespace.
func (t *Target) podIPs(ctx context.Context, cluster, app string) (map[string]bool, error) {
	return t.podIPsIn(ctx, cluster, istio.SampleNamespace, app)
}

// podIPsIn returns the IPs of the running pods of app in a namespace of a cluster.
func (t *Target) podIPsIn(ctx context.Context, cluster, namespace, app string) (map[string]bool, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" {
			out[p.Status.PodIP] = true
		}
	}
	return out, nil
}

// notReadyIn names the pods with label app=<app> in cluster's namespace that are not Ready (and so are
// out of their Service's endpoints): a sample that is not serving cannot show what the mesh does.
func (t *Target) notReadyIn(ctx context.Context, cluster, namespace, app string) ([]string, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	var out []string
	for _, p := range pods.Items {
		if !podIsReady(p) {
			out = append(out, fmt.Sprintf("%s (%s)", p.Name, p.Status.Phase))
		}
	}
	return out, nil
}

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// Client is cluster's client (nil for a cluster the target has none for).
func (t *Target) Client(cluster string) *kube.Client { return t.Clients[cluster] }

// ServingCluster is the primary whose istiod serves cluster's proxies (itself for a primary).
func (t *Target) ServingCluster(cluster string) string {
	c := t.Scenario.Cluster(cluster)
	if c == nil {
		return ""
	}
	return t.topo().Serving(*c).Name
}

// DiagnosisEnv is the lab as package diagnose reads it: the clusters' clients and each primary's istiod
// debug endpoints.
func (t *Target) DiagnosisEnv() diagnose.Env {
	return diagnose.Env{Scenario: t.Scenario, Clients: t.Clients, Debug: diagnose.HTTPDebug(func(primary string) (string, error) {
		if t.Istiod == nil {
			return "", fmt.Errorf("no istiod endpoint for %s", primary)
		}
		ep, err := t.Istiod(primary)
		if err != nil {
			return "", err
		}
		return ep.Debug, nil
	})}
}
