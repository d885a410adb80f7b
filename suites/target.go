// Package suites holds mclab's conformance suites (Ginkgo v2) and the checks behind them. A check
// probes a lab (or any clusters described by a scenario) and returns a verdict with a diagnosis: the
// likely cause and its evidence, not just which assertion failed. Suites never create clusters; they
// read a Target.
package suites

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
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
}

func (t *Target) topo() istio.Topology { return istio.Topology{S: t.Scenario} }

// Verdict of one check.
type Verdict struct {
	// Failures are the diagnoses, one per broken property: cause first, evidence after.
	Failures []string
	// Evidence is what was seen, for the report.
	Evidence []string
	// Inconclusive is set when the harness or the infrastructure failed (not the mesh).
	Inconclusive error
}

func (v *Verdict) fail(format string, args ...any) {
	v.Failures = append(v.Failures, fmt.Sprintf(format, args...))
}
func (v *Verdict) saw(format string, args ...any) {
	v.Evidence = append(v.Evidence, fmt.Sprintf(format, args...))
}

// Passed reports a clean verdict.
func (v *Verdict) Passed() bool { return len(v.Failures) == 0 && v.Inconclusive == nil }

// pod returns the first running pod of app in the sample namespace of a cluster.
func (t *Target) pod(ctx context.Context, cluster, app string) (*corev1.Pod, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(istio.SampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if pods.Items[i].Status.Phase == corev1.PodRunning && pods.Items[i].Status.PodIP != "" {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no running %s pod in %s/%s", app, cluster, istio.SampleNamespace)
}

// podIPs returns the IPs of the running pods of app in a cluster.
func (t *Target) podIPs(ctx context.Context, cluster, app string) (map[string]bool, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(istio.SampleNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
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

func keys(m map[string]bool) string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}
