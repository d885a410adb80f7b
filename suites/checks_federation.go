package suites

import (
	"context"
	"fmt"
	"strings"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/diagnose"
	"mclab.dev/mclab/suites/probe/ca"
	"mclab.dev/mclab/suites/probe/xds"
)

// CheckFederation: each exported service is reachable from the other meshes only through the exporting
// mesh's east-west gateways (address:15443, tlsMode istio), and nothing else of the exporting mesh is
// visible (CheckEndpoints covers helloworld).
func CheckFederation(ctx context.Context, t *Target) Verdict {
	var v Verdict
	f := t.Scenario.Istio.Federation
	if f == nil {
		v.cannot("the scenario is not federated")
		return v
	}
	for _, e := range f.Exports {
		gws := map[string]bool{}
		for _, c := range t.Scenario.Clusters {
			if c.Mesh == e.Mesh {
				if gw, _ := t.networkGateway(ctx, c.Network, c.Mesh); gw != "" {
					gws[gw+":15443"] = true
				}
			}
		}
		if len(gws) == 0 {
			v.fail("mesh %s exports %v but its gateways have no address", e.Mesh, e.Hosts)
			continue
		}
		for _, host := range e.Hosts {
			name, ns, _ := strings.Cut(host, ".")
			ns, _, _ = strings.Cut(ns, ".")
			ports, err := t.Clients[firstOfMesh(t, e.Mesh)].Kube.CoreV1().Services(ns).Get(ctx, name, getOpts)
			if err != nil {
				v.record(apiErr(err), "exported service %s in mesh %s", host, e.Mesh)
				continue
			}
			edsName := fmt.Sprintf("outbound|%d||%s", ports.Spec.Ports[0].Port, host)
			for _, client := range t.Scenario.Clusters {
				if client.Mesh == e.Mesh || client.Role != "primary" {
					continue
				}
				eps, err := t.edsFor(ctx, client, edsName)
				if err != nil {
					v.record(err, "reading %s for a client in %s", edsName, client.Name)
					continue
				}
				v.saw("mesh %s client in %s: %s -> %+v", client.Mesh, client.Name, edsName, eps)
				// The cause is the federation chain's broken link, from the importing istiod's configz.
				why := func() string {
					return t.chainCause(ctx, diagnose.Expectation{Client: client.Name, Namespace: t.discoverySample().Namespace, Host: host, From: firstOfMesh(t, e.Mesh), Import: e.Mesh})
				}
				if len(eps) == 0 {
					v.notYetWhy(why, "a client in %s (mesh %s) gets no endpoint for %s exported by %s", client.Name, client.Mesh, host, e.Mesh)
				}
				for _, ep := range eps {
					addr := fmt.Sprintf("%s:%d", ep.Address, ep.Port)
					if !gws[addr] || ep.TLSMode != istio.MTLSMode {
						v.failWhy(why, "a client in %s reaches %s at %s (tlsMode %q), not only through %s's gateway %v", client.Name, host, addr, ep.TLSMode, e.Mesh, keys(gws))
					}
				}
			}
		}
	}
	return v
}

var getOpts = metav1.GetOptions{}

func firstOfMesh(t *Target, mesh string) string {
	for _, c := range t.Scenario.Clusters {
		if c.Mesh == mesh {
			return c.Name
		}
	}
	return ""
}

// workloadCert asks the istiod serving cluster c for the curl workload's certificate, as its agent does.
func (t *Target) workloadCert(ctx context.Context, c scenario.Cluster) (issued, error) {
	serving := t.topo().Serving(c)
	if err := t.secretServerDown(ctx, serving, c); err != nil {
		return issued{}, err
	}
	ep, err := t.Istiod(serving.Name)
	if err != nil {
		return issued{}, fmt.Errorf("reaching istiod of %s: %w", serving.Name, err)
	}
	root, _, err := t.clusterRoot(ctx, serving.Name)
	if err != nil {
		return issued{}, fmt.Errorf("reading %s's cacerts: %w", serving.Name, err)
	}
	ns, sa := t.probeIdentity()
	tok, err := t.Clients[c.Name].Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		return issued{}, fmt.Errorf("TokenRequest for %s/%s in %s: %w", ns, sa, c.Name, err)
	}
	spiffe := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", t.Scenario.Mesh(c.Name).TrustDomain, ns, sa)
	chain, key, err := ca.CertificateAndKey(ctx, ca.Request{Addr: ep.XDSTLS, Roots: root, Token: tok.Status.Token, ClusterID: c.Name, SPIFFEID: spiffe})
	if err != nil {
		if xds.IsFinding(err) {
			return issued{}, finding(fmt.Errorf("the CA of istiod %s: %w", serving.Name, err))
		}
		return issued{}, fmt.Errorf("the CA of istiod %s at %s: %w", serving.Name, ep.XDSTLS, err)
	}
	return issued{c.Name, chain, key, root, spiffe}, nil
}

// CheckTrustBundle: in a federated scenario, the roots a sidecar trusts (its mesh's root plus the trust
// bundle istiod pushes over PCDS, which the agent merges into ROOTCA: pkg/istio-agent/xds_proxy.go)
// verify the workload certificates of every other mesh. With a root per mesh (trust ca-certificates)
// the bundle must carry each other mesh's root, which needs meshConfig.caCertificates and
// ISTIO_MULTIROOT_MESH on istiod.
func CheckTrustBundle(ctx context.Context, t *Target) Verdict {
	var v Verdict
	f := t.Scenario.Istio.Federation
	if f == nil {
		v.cannot("the scenario is not federated")
		return v
	}
	// One workload certificate per mesh, from its first cluster.
	certs := map[string]issued{}
	for _, m := range t.Scenario.Meshes {
		c := t.Scenario.Cluster(firstOfMesh(t, m.ID))
		if c == nil {
			continue
		}
		is, err := t.workloadCert(ctx, *c)
		if err != nil {
			v.record(err, "a workload certificate of mesh %s (%s)", m.ID, c.Name)
			continue
		}
		certs[m.ID] = is
	}
	for _, client := range t.topo().Primaries() {
		// PCDS carries extra roots only with a root per mesh; a shared root needs none.
		probe, err := t.probe(ctx, client.Name)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		snap, err := t.proxyFetch(ctx, client, probe, xds.SidecarProxy, xds.Request{ProxyConfig: f.Trust == scenario.TrustCACertificates})
		if err != nil {
			v.record(err, "reading the trust bundle a client in %s gets", client.Name)
			continue
		}
		own, _, err := t.clusterRoot(ctx, client.Name)
		if err != nil {
			v.record(err, "%s has no usable cacerts", client.Name)
			continue
		}
		bundle := append([]byte{}, own...)
		var fps []string
		if snap.ProxyConfig != nil {
			for _, pem := range snap.ProxyConfig.GetCaCertificatesPem() {
				bundle = append(append(bundle, '\n'), pem...)
				if c, err := pki.FirstCert([]byte(pem)); err == nil {
					fps = append(fps, pki.Fingerprint(c))
				}
			}
		}
		v.saw("trust bundle for a client in %s: own root + PCDS %v", client.Name, shortAll(fps))
		for _, m := range t.Scenario.Meshes {
			other, ok := certs[m.ID]
			if m.ID == client.Mesh || !ok {
				continue
			}
			if f.Trust == scenario.TrustCACertificates {
				_, otherFP, err := t.clusterRoot(ctx, other.cluster)
				if err != nil {
					v.cannot("reading %s's cacerts: %v", other.cluster, err)
					continue
				}
				switch {
				case snap.ProxyConfig == nil:
					v.fail("istiod of %s pushes no trust bundle (PCDS) to its sidecars, so they trust only mesh %s's root and reject mesh %s's workloads: run istiod with %s=true and the proxies with PROXY_CONFIG_XDS_AGENT=true (meshConfig.defaultConfig.proxyMetadata)", client.Name, client.Mesh, m.ID, istio.MultiRootEnv)
					continue
				case !contains(fps, otherFP):
					v.fail("the trust bundle istiod of %s pushes lacks mesh %s's root (sha256 %s; it has %v): sidecars of %s reject %s's workloads with CERTIFICATE_VERIFY_FAILED; add that root to meshConfig.caCertificates", client.Name, m.ID, pki.ShortFingerprint(otherFP), shortAll(fps), client.Mesh, m.ID)
					continue
				}
			}
			if err := ca.VerifyUnder(other.chain, bundle, other.spiffe); err != nil {
				v.fail("a workload certificate of mesh %s (%s) does not verify under the roots a client in %s trusts: %v", m.ID, other.spiffe, client.Name, err)
				continue
			}
			v.saw("a certificate of mesh %s verifies under %s's trust bundle", m.ID, client.Name)
		}
	}
	return v
}

func shortAll(fps []string) []string {
	var out []string
	for _, fp := range fps {
		out = append(out, pki.ShortFingerprint(fp))
	}
	return out
}
