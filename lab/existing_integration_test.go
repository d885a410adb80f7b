package lab_test

import (
	"errors"
	"strings"
	"testing"

	"mclab.dev/mclab/lab"
	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// TestIntegrationExistingProvider points the existing provider at a running local lab's kubeconfig
// contexts: it maps the clusters (contexts named <scenario>-<cluster>), reads their nodes, sees that
// the nodes are kwok fakes (no containers, said in the capabilities), detects the installed mesh and
// reads its state (istiods at the given addresses), refuses to install Istio before touching
// anything, and `down` forgets the lab without stopping the clusters it does not own.
func TestIntegrationExistingProvider(t *testing.T) {
	labtest.SkipIfShort(t)
	host, out := labtest.Manager(t)
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	if err := host.Up(t.Context(), s, s.Name); err != nil {
		t.Fatalf("up: %v\n%s", err, out)
	}

	gate, _ := labtest.Manager(t)
	ex := *s
	_, hp, err := host.Open(s.Name)
	if err != nil {
		t.Fatal(err)
	}
	istiods := map[string]scenario.IstiodAddresses{}
	for _, c := range s.Clusters {
		ep, err := hp.(provider.IstiodEndpoints).IstiodEndpoint(c.Name)
		if err != nil {
			t.Fatal(err)
		}
		istiods[c.Name] = scenario.IstiodAddresses{XDS: ep.XDS, XDSTLS: ep.XDSTLS, Debug: ep.Debug, Monitoring: ep.Monitoring}
	}
	ex.Provider = scenario.Provider{Name: scenario.ProviderExisting, Existing: &scenario.ExistingOptions{Kubeconfig: host.Store.Kubeconfig(s.Name), Istiod: istiods}}
	err = gate.Up(t.Context(), &ex, "gate")
	if !errors.Is(err, lab.ErrMeshExists) || !strings.Contains(err.Error(), "--skip-install") {
		t.Fatalf("installing Istio over a mesh mclab did not install must be refused with the way out: %v", err)
	}
	if names, _ := gate.Store.List(); len(names) != 0 {
		t.Fatalf("a refused up left labs: %v", names)
	}
	gate.SkipIstio = true
	if err := gate.Up(t.Context(), &ex, "gate"); err != nil {
		t.Fatal(err)
	}
	st, err := gate.Status(t.Context(), "gate")
	if err != nil || !st.Ready() || len(st.Clusters) != 2 || st.Clusters[1].Nodes[0].Name != "c2-node-0" {
		t.Fatalf("status through existing contexts: %+v %v", st, err)
	}
	if st.Capabilities.CreatesClusters || st.Capabilities.RunsContainers || !strings.Contains(st.Capabilities.NoContainersReason, "kwok") {
		t.Errorf("capabilities: %+v", st.Capabilities)
	}
	// The mesh the host lab installed is detected and read through the contexts and the given istiods.
	if len(st.Istio) != 2 {
		t.Fatalf("the installed mesh was not detected: %+v", st.Istio)
	}
	for _, c := range st.Istio {
		if !c.Healthy() || !c.IstiodReady || c.RootFingerprint == "" || c.EastWestGateway == "" {
			t.Errorf("mesh state of %s through existing contexts: %+v", c.Cluster, c)
		}
	}
	if _, err := gate.Down(t.Context(), "gate"); err != nil {
		t.Fatal(err)
	}

	// Without istiod addresses in the scenario, istiod is reached by port-forward to its pod through
	// the provider's tunnel (here: onto the istiod processes, as kwok pods run no containers).
	tunnel := &labtest.Tunnel{Istiods: map[string]provider.IstiodEndpoint{}}
	for c, a := range istiods {
		tunnel.Istiods[c] = provider.IstiodEndpoint{XDS: a.XDS, XDSTLS: a.XDSTLS, Debug: a.Debug, Monitoring: a.Monitoring}
	}
	fwd, _ := labtest.Manager(t)
	fwd.SkipIstio, fwd.Tunnel = true, tunnel
	ex.Provider.Existing.Istiod = nil
	if err := fwd.Up(t.Context(), &ex, "fwd"); err != nil {
		t.Fatal(err)
	}
	st, err = fwd.Status(t.Context(), "fwd")
	if err != nil || !st.Ready() {
		t.Fatalf("status through port-forwards: %+v %v", st, err)
	}
	got := tunnel.CallsWithPrefix("port-forward")
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "port-forward c2 istio-system/app=istiod [15010 15012 15014 8080]") {
		t.Errorf("port-forwards: %v", got)
	}
	tunnel.Fail = "error upgrading connection: pods run no containers"
	st, _ = fwd.Status(t.Context(), "fwd")
	if st.Ready() || len(st.Istio) != 2 || !strings.Contains(strings.Join(st.Istio[0].Problems, ";"), "reaching the istiod of c1 (port-forward to app=istiod in istio-system): error upgrading connection") {
		t.Errorf("a failed port-forward must be named in the status: %+v", st.Istio)
	}
	hs, err := host.Status(t.Context(), s.Name)
	if err != nil || !hs.Ready() {
		t.Fatalf("down of an existing-clusters lab must leave the clusters running: %+v %v", hs, err)
	}
}
