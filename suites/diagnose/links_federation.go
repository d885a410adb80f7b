package diagnose

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// The federation chain (Expectation.Import): a client of one mesh reaches a host another mesh exports
// only through the exporting mesh's east-west gateways, as Istio's TestWorkloadEntryGateway sets it up
// (lab/istio/federation.go): the importing istiod holds a ServiceEntry for the host whose
// workloadSelector picks WorkloadEntries at the exporting gateways' addresses, port 15443, tlsMode
// istio; each exporting primary has a Gateway passing the host through by SNI (AUTO_PASSTHROUGH).

type serviceEntrySpec struct {
	Hosts            []string `json:"hosts"`
	ExportTo         []string `json:"exportTo"`
	WorkloadSelector *struct {
		Labels map[string]string `json:"labels"`
	} `json:"workloadSelector"`
}

type workloadEntrySpec struct {
	Address string            `json:"address"`
	Ports   map[string]int    `json:"ports"`
	Labels  map[string]string `json:"labels"`
}

// federationImport: the importing istiod's ServiceEntry and WorkloadEntries for the host.
func (w *walk) federationImport() (bool, error) {
	ev := fmt.Sprintf("istiod of %s /debug/configz", w.serving.Name)
	var se *configEntry
	var spec serviceEntrySpec
	var seen []string
	for _, c := range w.st.configsOf("ServiceEntry") {
		var s serviceEntrySpec
		_ = json.Unmarshal(c.Spec, &s)
		seen = append(seen, c.Metadata.Namespace+"/"+c.Metadata.Name)
		if slices.ContainsFunc(s.Hosts, func(h string) bool { return hostMatches(h, w.e.Host) }) {
			se, spec = &c, s
			break
		}
	}
	expected := fmt.Sprintf("%s ServiceEntry %s/%s-from-%s", w.serving.Name, w.svcNamespace(), w.svcName(), w.e.Import)
	if se == nil {
		return w.broken(Link{Class: ClassVisibility, Check: fmt.Sprintf("istiod of %s imports %s from mesh %s", w.serving.Name, w.e.Host, w.e.Import),
			Object: expected, Field: "spec.hosts", Saw: "absent: no ServiceEntry for " + w.e.Host + " (ServiceEntries: " + orNone(seen) + ")", Evidence: ev,
			Fix: "apply the import (`mclab up` converges it): a ServiceEntry for the host and WorkloadEntries at mesh " + w.e.Import + "'s east-west gateways"}), nil
	}
	object := fmt.Sprintf("%s ServiceEntry %s/%s", w.serving.Name, se.Metadata.Namespace, se.Metadata.Name)
	if len(spec.ExportTo) > 0 && !exportedTo(spec.ExportTo, se.Metadata.Namespace, w.e.Namespace) {
		return w.broken(Link{Class: ClassVisibility, Check: fmt.Sprintf("the import of %s is exported to %s", w.e.Host, w.e.Namespace),
			Object: object, Field: "spec.exportTo", Saw: fmt.Sprint(spec.ExportTo), Evidence: ev, Fix: fmt.Sprintf("add %q (or \"*\")", w.e.Namespace)}), nil
	}
	if spec.WorkloadSelector == nil || len(spec.WorkloadSelector.Labels) == 0 {
		return w.broken(Link{Class: ClassRegistry, Check: "the import selects the exporting gateways' WorkloadEntries", Object: object,
			Field: "spec.workloadSelector.labels", Saw: "none", Evidence: ev, Fix: fmt.Sprintf("select the WorkloadEntries labelled %s=%s", istio.FederatedFromLabel, w.e.Import)}), nil
	}
	gateways, err := w.exportingGateways()
	if err != nil {
		return false, err
	}
	var names []string
	selected := 0
	for _, c := range w.st.configsOf("WorkloadEntry") {
		if c.Metadata.Namespace != se.Metadata.Namespace {
			continue
		}
		var we workloadEntrySpec
		_ = json.Unmarshal(c.Spec, &we)
		names = append(names, c.Metadata.Name)
		if !selects(spec.WorkloadSelector.Labels, we.Labels) {
			continue
		}
		selected++
		weObject := fmt.Sprintf("%s WorkloadEntry %s/%s", w.serving.Name, c.Metadata.Namespace, c.Metadata.Name)
		if len(gateways) > 0 && !slices.Contains(gateways, we.Address) {
			return w.broken(Link{Class: ClassNetworks, Check: fmt.Sprintf("the import reaches mesh %s only through its east-west gateways", w.e.Import),
				Object: weObject, Field: "spec.address", Saw: fmt.Sprintf("%s (mesh %s's gateways: %v)", orNone([]string{we.Address}), w.e.Import, gateways), Evidence: ev,
				Fix: "set it to the exporting cluster's east-west gateway address"}), nil
		}
		for port, n := range we.Ports {
			if n != 15443 {
				return w.broken(Link{Class: ClassNetworks, Check: "the import goes to the gateways' AUTO_PASSTHROUGH port 15443", Object: weObject,
					Field: "spec.ports[" + port + "]", Saw: fmt.Sprint(n), Evidence: ev, Fix: "map every port to 15443"}), nil
			}
		}
		if we.Labels[istio.TLSModeLabel] != istio.MTLSMode {
			return w.broken(Link{Class: ClassTrafficPolicy, Check: "the import speaks Istio mTLS to the gateway (SNI routing needs it)", Object: weObject,
				Field: "spec.labels[" + istio.TLSModeLabel + "]", Saw: fmt.Sprintf("%q", we.Labels[istio.TLSModeLabel]), Evidence: ev, Fix: "label it " + istio.TLSModeLabel + "=" + istio.MTLSMode}), nil
		}
	}
	if selected == 0 {
		return w.broken(Link{Class: ClassRegistry, Check: "the import selects the exporting gateways' WorkloadEntries", Object: object,
			Field: "spec.workloadSelector.labels", Saw: fmt.Sprintf("%v selects none of the WorkloadEntries in %s (%s)", spec.WorkloadSelector.Labels, se.Metadata.Namespace, orNone(names)), Evidence: ev,
			Fix: "apply the WorkloadEntries at mesh " + w.e.Import + "'s east-west gateways with these labels (`mclab up` converges them)"}), nil
	}
	return w.ok(ClassVisibility, fmt.Sprintf("istiod of %s imports %s from mesh %s", w.serving.Name, w.e.Host, w.e.Import), object,
		fmt.Sprintf("%d WorkloadEntries at %v:15443, tlsMode istio", selected, gateways), ev), nil
}

// exportGateway: every primary of the exporting mesh passes the host through its east-west gateway.
func (w *walk) exportGateway() (bool, error) {
	for _, c := range w.env.Scenario.Clusters {
		if c.Mesh != w.e.Import || c.Role != "primary" {
			continue
		}
		servers, ok, err := w.gatewayServers(c.Name)
		if err != nil {
			return false, err
		}
		if !ok {
			continue
		}
		var seen []string
		passed := false
		for _, s := range servers {
			if !s.passthrough() {
				continue
			}
			for _, h := range s.hosts {
				seen = append(seen, s.gateway+":"+h)
				if _, after, ok := strings.Cut(h, "/"); ok {
					h = after // namespace/host
				}
				passed = passed || hostMatches(h, w.e.Host)
			}
		}
		if !passed {
			return w.broken(Link{Class: ClassNetworks, Check: fmt.Sprintf("%s's east-west gateway passes %s through by SNI", c.Name, w.e.Host),
				Object: fmt.Sprintf("%s Gateway %s/federation-export", c.Name, istio.IstioNamespace), Field: "spec.servers[].hosts (15443 AUTO_PASSTHROUGH)",
				Saw: "lacks " + w.e.Host + " (" + orNone(seen) + ")", Evidence: fmt.Sprintf("%s API server, Gateways in %s", c.Name, istio.IstioNamespace),
				Fix: "add the host to the export Gateway's 15443 server (`mclab up` converges it)"}), nil
		}
	}
	return w.ok(ClassNetworks, fmt.Sprintf("mesh %s's gateways pass %s through by SNI", w.e.Import, w.e.Host), "Gateway "+istio.IstioNamespace+"/federation-export", "15443 AUTO_PASSTHROUGH", "API servers of mesh "+w.e.Import), nil
}

// exportingGateways are the addresses of the exporting mesh's primaries' east-west gateways.
func (w *walk) exportingGateways() ([]string, error) {
	var out []string
	for _, c := range w.env.Scenario.Clusters {
		if c.Mesh != w.e.Import || c.Role != "primary" {
			continue
		}
		k, err := w.kube(c.Name)
		if err != nil {
			return nil, err
		}
		svc, err := k.Kube.CoreV1().Services(istio.IstioNamespace).Get(w.ctx, istio.EastWestGatewayName, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			continue
		case err != nil:
			return nil, err
		}
		for _, in := range svc.Status.LoadBalancer.Ingress {
			out = append(out, in.IP)
		}
		out = append(out, svc.Spec.ExternalIPs...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// selects reports whether every label of selector is in labels.
func selects(selector, labels map[string]string) bool {
	for k, v := range selector {
		if got, ok := labels[k]; !ok || got != v {
			return false
		}
	}
	return len(selector) > 0
}
