package istio

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"mclab.dev/mclab/lab/provider"
)

// Ports of the istiod pod (the chart's Deployment) that probes reach through a port-forward.
const (
	PortXDS        = 15010
	PortXDSTLS     = 15012
	PortMonitoring = 15014
	PortDebug      = 8080
)

// IstiodSelector selects istiod's pods (the chart's Deployment, default revision).
const IstiodSelector = "app=istiod"

// Endpoints finds where each primary's istiod answers: the provider's own addresses (istiod processes,
// or addresses a scenario gives for existing clusters), else a port-forward to a ready istiod pod
// through the provider's tunnel, kept open until Close.
type Endpoints struct {
	Provider provider.Provider

	mu       sync.Mutex
	forwards map[string]forward
}

type forward struct {
	ep   provider.IstiodEndpoint
	stop func()
}

// Endpoint returns how to reach the istiod of a primary cluster.
func (e *Endpoints) Endpoint(ctx context.Context, cluster string) (provider.IstiodEndpoint, error) {
	var direct error
	if pp, ok := e.Provider.(provider.IstiodEndpoints); ok {
		ep, err := pp.IstiodEndpoint(cluster)
		if err == nil {
			return ep, nil
		}
		direct = err
	}
	tp, ok := e.Provider.(provider.Tunneled)
	if !ok {
		if direct != nil {
			return provider.IstiodEndpoint{}, direct
		}
		return provider.IstiodEndpoint{}, errors.New("this provider does not say where istiod answers and cannot port-forward to it")
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.forwards[cluster]; ok {
		return f.ep, nil
	}
	local, stop, err := tp.Tunnel().PortForward(ctx, cluster, IstioNamespace, IstiodSelector, []int{PortXDS, PortXDSTLS, PortMonitoring, PortDebug})
	if err != nil {
		return provider.IstiodEndpoint{}, fmt.Errorf("reaching the istiod of %s (port-forward to %s in %s): %w", cluster, IstiodSelector, IstioNamespace, err)
	}
	ep := provider.IstiodEndpoint{XDS: local[PortXDS], XDSTLS: local[PortXDSTLS], Monitoring: local[PortMonitoring], Debug: local[PortDebug]}
	if e.forwards == nil {
		e.forwards = map[string]forward{}
	}
	e.forwards[cluster] = forward{ep: ep, stop: stop}
	return ep, nil
}

// Forget drops (and stops) the port-forward of a cluster, e.g. after istiod's pod was replaced.
func (e *Endpoints) Forget(cluster string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if f, ok := e.forwards[cluster]; ok {
		f.stop()
		delete(e.forwards, cluster)
	}
}

// Close stops every port-forward.
func (e *Endpoints) Close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c, f := range e.forwards {
		f.stop()
		delete(e.forwards, c)
	}
}
