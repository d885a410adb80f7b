package istio

import (
	"context"
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mclab.dev/mclab/lab/scenario"
)

// FederatedFromLabel marks the WorkloadEntries and selects them in the ServiceEntries that import
// another mesh's service.
const FederatedFromLabel = "mclab.dev/federated-from"

// TLSModeLabel marks a workload that speaks Istio mTLS (value MTLSMode), as the injector labels pods.
const TLSModeLabel = "security.istio.io/tlsMode"

// federation returns the scenario's federation settings, or nil outside the federated model.
func (in *Installer) federation() *scenario.Federation {
	if in.S.Istio.Model != scenario.Federated {
		return nil
	}
	return in.S.Istio.Federation
}

// exportedBy returns the mesh that exports host, or "".
func (in *Installer) exportedBy(host string) string {
	if f := in.federation(); f != nil {
		for _, e := range f.Exports {
			for _, h := range e.Hosts {
				if h == host {
					return e.Mesh
				}
			}
		}
	}
	return ""
}

// federationMeshConfig is the meshConfig a federated mesh's istiod needs to accept the other meshes'
// workloads: their trust domains as aliases and, with a root per mesh, their roots as extra trust
// anchors (as Istio's ca_custom_root integration test configures multi-root meshes).
func (in *Installer) federationMeshConfig(c scenario.Cluster) (map[string]any, error) {
	f := in.federation()
	if f == nil {
		return nil, nil
	}
	var aliases []any
	var cas []any
	for _, m := range in.S.Meshes {
		if m.ID == c.Mesh {
			continue
		}
		aliases = append(aliases, m.TrustDomain)
		if f.Trust == scenario.TrustCACertificates {
			for _, other := range in.S.Clusters {
				if other.Mesh == m.ID {
					root, err := in.readRoot(other.Name)
					if err != nil {
						return nil, err
					}
					cas = append(cas, map[string]any{"pem": string(root), "trustDomains": []any{m.TrustDomain}})
					break
				}
			}
		}
	}
	out := map[string]any{"trustDomainAliases": aliases}
	if len(cas) > 0 {
		out["caCertificates"] = cas
		// Extra roots reach the sidecars only as the trust bundle istiod pushes over PCDS, which needs
		// ISTIO_MULTIROOT_MESH on istiod and PROXY_CONFIG_XDS_AGENT on the agents (Istio's
		// tests/integration/security/ca_custom_root/main_test.go setupConfig).
		out["defaultConfig"] = map[string]any{"proxyMetadata": map[string]any{"PROXY_CONFIG_XDS_AGENT": "true"}}
	}
	return out, nil
}

// MultiRootEnv is istiod's environment for a mesh that trusts more than its own root.
const MultiRootEnv = "ISTIO_MULTIROOT_MESH"

// federationSteps: exporting primaries get an AUTO_PASSTHROUGH Gateway for their exported hosts only;
// every primary of another mesh imports each exported host as a ServiceEntry whose endpoints are
// WorkloadEntries at the exporting clusters' east-west gateways (port 15443, tlsMode istio), as Istio's
// TestWorkloadEntryGateway does.
func (in *Installer) federate(ctx context.Context) error {
	f := in.federation()
	if f == nil {
		return nil
	}
	t := in.topo()
	for _, e := range f.Exports {
		var exporters []scenario.Cluster
		for _, c := range t.Primaries() {
			if c.Mesh == e.Mesh {
				exporters = append(exporters, c)
			}
		}
		for _, c := range exporters {
			kc, err := in.client(ctx, c.Name)
			if err != nil {
				return err
			}
			if err := kc.Apply(ctx, IstioNamespace, exportGateway(e)); err != nil {
				return err
			}
		}
		for _, host := range e.Hosts {
			name, ns, ok := splitHost(host)
			if !ok {
				return fmt.Errorf("exported host %q is not <service>.<namespace>.svc.<domain>", host)
			}
			if len(exporters) == 0 {
				return fmt.Errorf("mesh %s exports %s but has no primary", e.Mesh, host)
			}
			ports, err := in.servicePorts(ctx, exporters[0].Name, ns, name)
			if err != nil {
				return fmt.Errorf("exported service %s in %s: %w", host, exporters[0].Name, err)
			}
			var entries []*unstructured.Unstructured
			entries = append(entries, serviceEntry(e.Mesh, host, name, ns, ports))
			for _, c := range exporters {
				addr, err := in.gatewayAddress(c.Name)
				if err != nil {
					return err
				}
				entries = append(entries, workloadEntry(e.Mesh, c.Name, name, ns, addr, ports))
			}
			for _, consumer := range t.Primaries() {
				if consumer.Mesh == e.Mesh {
					continue
				}
				kc, err := in.client(ctx, consumer.Name)
				if err != nil {
					return err
				}
				if err := kc.Apply(ctx, ns, entries...); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

func splitHost(host string) (name, ns string, ok bool) {
	parts := strings.Split(host, ".")
	if len(parts) < 3 || parts[2] != "svc" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

type servicePort struct {
	Name   string
	Number int32
}

func (in *Installer) servicePorts(ctx context.Context, cluster, ns, name string) ([]servicePort, error) {
	kc, err := in.client(ctx, cluster)
	if err != nil {
		return nil, err
	}
	svc, err := kc.Kube.CoreV1().Services(ns).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, err
	}
	var out []servicePort
	for _, p := range svc.Spec.Ports {
		out = append(out, servicePort{Name: p.Name, Number: p.Port})
	}
	return out, nil
}

func exportGateway(e scenario.Export) *unstructured.Unstructured {
	hosts := make([]any, len(e.Hosts))
	for i, h := range e.Hosts {
		hosts[i] = h
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "Gateway",
		"metadata": map[string]any{"name": "federation-export", "namespace": IstioNamespace},
		"spec": map[string]any{
			"selector": map[string]any{"istio": "eastwestgateway"},
			"servers": []any{map[string]any{
				"port":  map[string]any{"number": int64(15443), "name": "tls", "protocol": "TLS"},
				"tls":   map[string]any{"mode": "AUTO_PASSTHROUGH"},
				"hosts": hosts,
			}},
		},
	}}
}

func serviceEntry(mesh, host, name, ns string, ports []servicePort) *unstructured.Unstructured {
	var ps []any
	for _, p := range ports {
		ps = append(ps, map[string]any{"number": int64(p.Number), "name": p.Name, "protocol": "HTTP"})
	}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "ServiceEntry",
		"metadata": map[string]any{"name": name + "-from-" + mesh, "namespace": ns},
		"spec": map[string]any{
			"hosts": []any{host}, "location": "MESH_INTERNAL", "resolution": "STATIC", "ports": ps,
			"workloadSelector": map[string]any{"labels": map[string]any{FederatedFromLabel: mesh, "app": name}},
		},
	}}
}

func workloadEntry(mesh, cluster, name, ns, gateway string, ports []servicePort) *unstructured.Unstructured {
	pm := map[string]any{}
	for _, p := range ports {
		pm[p.Name] = int64(15443)
	}
	labels := map[string]any{FederatedFromLabel: mesh, "app": name, TLSModeLabel: MTLSMode}
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "networking.istio.io/v1", "kind": "WorkloadEntry",
		"metadata": map[string]any{"name": name + "-" + mesh + "-" + cluster, "namespace": ns, "labels": labels},
		"spec":     map[string]any{"address": gateway, "ports": pm, "labels": labels, "serviceAccount": name},
	}}
}

// MTLSMode is the tlsMode of endpoints that speak Istio mTLS.
const MTLSMode = "istio"
