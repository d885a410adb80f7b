package bench

import (
	"context"
	"fmt"
	"io"
	"time"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites"
)

// ManagerLabs brings the scale bench's labs up and down with the lab manager, as `mclab up` and
// `mclab down` do (the Labs that Scale drives).
type ManagerLabs struct {
	M *lab.Manager
	S *Scenario
	// Keep leaves the labs up (--keep), saying how to remove them on Out; Out also gets the warnings
	// about clusters that do not answer.
	Keep bool
	Out  io.Writer
}

func (l *ManagerLabs) Up(ctx context.Context, name string, clusters int, onStep func(string, time.Duration, bool)) error {
	sc, err := scenario.Compose(l.S.Lab.Topology, l.S.Lab.Model, clusters)
	if err != nil {
		return err
	}
	sc.Provider.Name = l.S.Lab.Provider
	if err := sc.Validate("bench scenario " + l.S.Name); err != nil {
		return err
	}
	l.M.OnStep = onStep
	defer func() { l.M.OnStep = nil }()
	return l.M.Up(ctx, sc, name)
}

func (l *ManagerLabs) clients(ctx context.Context, name string) (map[string]*kube.Client, *scenario.Scenario, provider.Provider, error) {
	rec, p, err := l.M.Open(name)
	if err != nil {
		return nil, nil, nil, err
	}
	out := map[string]*kube.Client{}
	for _, c := range rec.Scenario.Clusters {
		kc, err := p.Kubeconfig(ctx, c.Name, provider.FromHost)
		if err != nil {
			return nil, nil, nil, err
		}
		cl, err := kube.NewClientFromKubeconfig(c.Name, kc)
		if err != nil {
			return nil, nil, nil, err
		}
		out[c.Name] = cl
	}
	return out, rec.Scenario, p, nil
}

func (l *ManagerLabs) Endpoints(ctx context.Context, name string, e int) error {
	cls, _, _, err := l.clients(ctx, name)
	if err != nil {
		return err
	}
	for _, c := range cls {
		if err := ScaleWorkload(ctx, c, e); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60*time.Second + time.Duration(e)*60*time.Millisecond)
	for cn, c := range cls {
		for {
			n, err := readyEndpoints(ctx, c)
			if err == nil && n == e {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: %d of %d bench endpoints ready at the deadline (%v)", cn, n, e, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

func readyEndpoints(ctx context.Context, c *kube.Client) (int, error) {
	l, err := c.Kube.DiscoveryV1().EndpointSlices(Namespace).List(ctx, metav1.ListOptions{LabelSelector: discoveryv1.LabelServiceName + "=" + Workload})
	if err != nil {
		return 0, err
	}
	n := 0
	for _, s := range l.Items {
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready == nil || *ep.Conditions.Ready {
				n++
			}
		}
	}
	return n, nil
}

func (l *ManagerLabs) Processes(ctx context.Context, name string) (map[string]int, error) {
	rec, p, err := l.M.Open(name)
	if err != nil {
		return nil, err
	}
	pp, ok := p.(interface{ ProcessIDs(string) map[string]int })
	if !ok {
		return nil, ErrNotLocal
	}
	out := map[string]int{}
	for _, c := range rec.Scenario.Clusters {
		for comp, pid := range pp.ProcessIDs(c.Name) {
			out[c.Name+"/"+comp] = pid
		}
	}
	return out, nil
}

func (l *ManagerLabs) Istiods(ctx context.Context, name string) (map[string]string, error) {
	rec, p, err := l.M.Open(name)
	if err != nil {
		return nil, err
	}
	ip, ok := p.(provider.IstiodProcesses)
	if !ok {
		return nil, ErrNotLocal
	}
	out := map[string]string{}
	for _, c := range rec.Scenario.Clusters {
		if c.Role != scenario.Primary {
			continue
		}
		ep, err := ip.IstiodEndpoint(c.Name)
		if err != nil {
			return nil, err
		}
		out[c.Name] = ep.Monitoring
	}
	return out, nil
}

func (l *ManagerLabs) Watch(ctx context.Context, name string) (func(), error) {
	ctx, cancel := context.WithCancel(ctx)
	var closers []func()
	stop := func() {
		cancel()
		for _, c := range closers {
			c()
		}
	}
	t, _, err := suites.OpenLab(ctx, l.M, name, l.Out, &closers)
	if err != nil {
		stop()
		return nil, err
	}
	for _, c := range t.Scenario.Clusters {
		updates, _, err := t.WatchEDS(ctx, c.Name, EDSCluster)
		if err != nil {
			stop()
			return nil, fmt.Errorf("a sidecar of %s: %w", c.Name, err)
		}
		go func() {
			for range updates {
			}
		}()
	}
	return stop, nil
}

func (l *ManagerLabs) Down(ctx context.Context, name string) error {
	if l.Keep {
		fmt.Fprintf(l.Out, "keeping lab %s (--keep): `mclab down --name %s` removes it\n", name, name)
		return nil
	}
	_, err := l.M.Down(ctx, name)
	return err
}
