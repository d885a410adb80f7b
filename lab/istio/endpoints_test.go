package istio

import (
	"context"
	"errors"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/provider"
)

type tunnelProvider struct {
	fakeInClusterProvider
	forwards, stops int
	fail            error
}

func (p *tunnelProvider) Tunnel() provider.PodTunnel { return p }
func (p *tunnelProvider) PortForward(_ context.Context, cluster, ns, selector string, ports []int) (map[int]string, func(), error) {
	if p.fail != nil {
		return nil, nil, p.fail
	}
	p.forwards++
	out := map[int]string{}
	for i, port := range ports {
		out[port] = "127.0.0.1:4000" + string(rune('0'+i))
	}
	return out, func() { p.stops++ }, nil
}
func (p *tunnelProvider) Exec(context.Context, string, string, string, string, []string) (string, string, error) {
	return "", "", nil
}

// noEndpoints hides fakeProcessProvider's IstiodEndpoint, as a provider that knows no address.
type noEndpoints struct{ *tunnelProvider }

func (noEndpoints) IstiodEndpoint(string) (provider.IstiodEndpoint, error) {
	return provider.IstiodEndpoint{}, errors.New("no address given")
}

func TestEndpointsPreferAddressesThenPortForward(t *testing.T) {
	// A provider that knows istiod's address is used as is, without a port-forward.
	tp := &tunnelProvider{}
	e := &Endpoints{Provider: tp}
	ep, err := e.Endpoint(context.Background(), "c1")
	if err != nil || ep.Debug != "127.0.0.1:8080" || tp.forwards != 0 {
		t.Fatalf("known address: %+v %v, %d forwards", ep, err, tp.forwards)
	}
	// Otherwise one port-forward per cluster, kept until Close.
	e = &Endpoints{Provider: noEndpoints{tp}}
	for range 3 {
		if ep, err = e.Endpoint(context.Background(), "c1"); err != nil {
			t.Fatal(err)
		}
	}
	if tp.forwards != 1 || ep.XDS != "127.0.0.1:40000" || ep.XDSTLS != "127.0.0.1:40001" || ep.Monitoring != "127.0.0.1:40002" || ep.Debug != "127.0.0.1:40003" {
		t.Errorf("forwarded endpoint %+v after %d forwards", ep, tp.forwards)
	}
	e.Close()
	if tp.stops != 1 {
		t.Errorf("Close stopped %d forwards", tp.stops)
	}
	tp.fail = errors.New("no ready pod matches app=istiod in c2/istio-system: istiod-1 (discovery: CrashLoopBackOff)")
	_, err = e.Endpoint(context.Background(), "c2")
	if err == nil || !strings.Contains(err.Error(), "reaching the istiod of c2 (port-forward to app=istiod in istio-system): no ready pod") {
		t.Errorf("failed forward: %v", err)
	}
}
