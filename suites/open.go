package suites

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/reports"
)

// OpenLab opens lab name of m as the suites (and the bench) read it: a client per cluster, istiod at the
// provider's addresses or through port-forwards, the environment for reports. What it opens is closed by
// the functions it appends to closers.
// A cluster that does not answer is warned about on warn; the checks that need it say they could not
// judge it.
func OpenLab(ctx context.Context, m *lab.Manager, name string, warn io.Writer, closers *[]func()) (*Target, reports.Environment, error) {
	var env reports.Environment
	rec, p, err := m.Open(name)
	if err != nil {
		return nil, env, err
	}
	installer := &istio.Installer{S: rec.Scenario, Dir: m.Store.Dir(name), Provider: p}
	*closers = append(*closers, installer.Close)
	if !rec.Istio && !installer.MeshInstalled(ctx) {
		return nil, env, fmt.Errorf("lab %s has no mesh to verify: Istio was not installed by mclab (--skip-istio) and no istio-system with cacerts was found", name)
	}
	t := &Target{Lab: name, Scenario: rec.Scenario, Provider: rec.Provider, Capabilities: p.Capabilities(), Clients: map[string]*kube.Client{}}
	// istiod is reached at the provider's addresses, else through a port-forward to its pod.
	eps := &istio.Endpoints{Provider: p}
	*closers = append(*closers, eps.Close)
	t.Istiod = func(cluster string) (provider.IstiodEndpoint, error) { return eps.Endpoint(ctx, cluster) }
	if tp, ok := p.(provider.Tunneled); ok && t.Capabilities.RunsContainers {
		t.Exec = tp.Tunnel()
		t.Forward = tp.Tunnel().PortForward
	}
	env = reports.Environment{Lab: name, Provider: string(rec.Provider), Topology: rec.Scenario.Name}
	if r := rec.IstioRelease; r != nil {
		env.IstioCharts, env.IstioChartDigests, env.IstioPilot = r.Charts, r.ChartDigests, r.Pilot
	}
	var down []string
	for _, c := range rec.Scenario.Clusters {
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err != nil {
			return nil, env, err
		}
		cfg, err := clientcmd.NewDefaultClientConfig(*kc, nil).ClientConfig()
		if err != nil {
			return nil, env, err
		}
		cfg.Timeout = 10 * time.Second
		cl, err := kube.NewClient(c.Name, cfg)
		if err != nil {
			return nil, env, err
		}
		t.Clients[c.Name] = cl
		env.Clusters = append(env.Clusters, c.Name)
		v, err := cl.Kube.Discovery().ServerVersion()
		if err != nil {
			// The checks still run: the ones that need this cluster say they could not judge it, and
			// the remote-API check names it as a finding where istiod reads it.
			down = append(down, fmt.Sprintf("cluster %s does not answer: %v", c.Name, err))
			continue
		}
		env.KubernetesVersion = v.GitVersion
	}
	if len(down) == len(rec.Scenario.Clusters) {
		return nil, env, fmt.Errorf("%s; `mclab status --name %s` says more", strings.Join(down, "; "), name)
	}
	for _, d := range down {
		fmt.Fprintf(warn, "WARNING: %s; checks that need it are not judged\n", d)
	}
	st := installer.Status(ctx)
	for _, s := range st {
		if s.IstioVersion != "" {
			env.IstioVersion = s.IstioVersion
		}
	}
	return t, env, nil
}
