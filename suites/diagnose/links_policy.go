package diagnose

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// trafficPolicy: for mTLS on the path (asked for, or needed to cross networks), no DestinationRule
// turns client TLS off or to another mode and no PeerAuthentication disables mTLS.
func (w *walk) trafficPolicy() (bool, error) {
	if !w.e.MTLS && w.sameNetwork() {
		return true, nil
	}
	ev := fmt.Sprintf("istiod of %s /debug/configz", w.serving.Name)
	for _, c := range w.st.configsOf("DestinationRule") {
		var spec struct {
			Host          string `json:"host"`
			TrafficPolicy struct {
				TLS *struct {
					Mode string `json:"mode"`
				} `json:"tls"`
			} `json:"trafficPolicy"`
		}
		_ = json.Unmarshal(c.Spec, &spec)
		host := spec.Host
		if !strings.Contains(host, ".") {
			host += "." + c.Metadata.Namespace + ".svc.cluster.local"
		}
		if !hostMatches(host, w.e.Host) {
			continue
		}
		if spec.TrafficPolicy.TLS == nil {
			continue
		}
		// configz drops an enum's zero value: a tls block without a mode is DISABLE (ClientTLSSettings).
		m := spec.TrafficPolicy.TLS.Mode
		if m == "" {
			m = "DISABLE"
		}
		if m != "ISTIO_MUTUAL" {
			return w.broken(Link{Class: ClassTrafficPolicy, Check: "client TLS to " + w.e.Host + " is Istio mTLS", Object: fmt.Sprintf("%s DestinationRule %s/%s", w.serving.Name, c.Metadata.Namespace, c.Metadata.Name),
				Field: "spec.trafficPolicy.tls.mode", Saw: m, Evidence: ev, Fix: "use ISTIO_MUTUAL, or remove the tls block (auto mTLS)"}), nil
		}
	}
	// The server side's PeerAuthentications are the config of the istiod serving the source cluster.
	server := istio.Topology{S: w.env.Scenario}.Serving(w.from)
	pas := w.st.configsOf("PeerAuthentication")
	paEv := ev
	if server.Name != w.serving.Name {
		body, err := w.env.Debug(w.ctx, server.Name, "/debug/configz")
		if err != nil {
			return false, &InfraError{Primary: server.Name, Path: "/debug/configz", Err: err}
		}
		var cfgs []configEntry
		if err := json.Unmarshal(body, &cfgs); err != nil {
			return false, &InfraError{Primary: server.Name, Path: "/debug/configz", Err: err}
		}
		pas = (&istiodState{configs: cfgs}).configsOf("PeerAuthentication")
		paEv = fmt.Sprintf("istiod of %s /debug/configz", server.Name)
		w.used("%s", paEv)
	}
	for _, c := range pas {
		if c.Metadata.Namespace != w.svcNamespace() && c.Metadata.Namespace != w.rootNamespace() {
			continue
		}
		var spec struct {
			Selector *struct {
				MatchLabels map[string]string `json:"matchLabels"`
			} `json:"selector"`
			MTLS struct {
				Mode string `json:"mode"`
			} `json:"mtls"`
		}
		_ = json.Unmarshal(c.Spec, &spec)
		if spec.Selector != nil && len(spec.Selector.MatchLabels) > 0 && spec.Selector.MatchLabels["app"] != w.svcName() {
			continue
		}
		if spec.MTLS.Mode == "DISABLE" {
			return w.broken(Link{Class: ClassTrafficPolicy, Check: w.e.Host + "'s workloads accept Istio mTLS", Object: fmt.Sprintf("%s PeerAuthentication %s/%s", server.Name, c.Metadata.Namespace, c.Metadata.Name),
				Field: "spec.mtls.mode", Saw: "DISABLE", Evidence: paEv, Fix: "use STRICT or PERMISSIVE, or delete it"}), nil
		}
	}
	return w.ok(ClassTrafficPolicy, "no DestinationRule or PeerAuthentication turns mTLS off for "+w.e.Host, w.serving.Name, "", ev), nil
}

// identity: for mTLS, the client's and the source's istiods share the trust domain and the clusters'
// plugged-in CAs share a root.
func (w *walk) identity() (bool, error) {
	if !w.e.MTLS {
		return true, nil
	}
	topo := istio.Topology{S: w.env.Scenario}
	other := topo.Serving(w.from)
	if other.Name != w.serving.Name {
		body, err := w.env.Debug(w.ctx, other.Name, "/debug/mesh")
		if err != nil {
			return false, &InfraError{Primary: other.Name, Path: "/debug/mesh", Err: err}
		}
		var m meshConfig
		if err := json.Unmarshal(body, &m); err != nil {
			return false, &InfraError{Primary: other.Name, Path: "/debug/mesh", Err: err}
		}
		if m.TrustDomain != w.st.mesh.TrustDomain {
			return w.broken(Link{Class: ClassIdentity, Check: "one trust domain", Object: fmt.Sprintf("%s ConfigMap %s/istio", other.Name, istio.IstioNamespace),
				Field: "data.mesh trustDomain", Saw: fmt.Sprintf("%q (%s's: %q)", m.TrustDomain, w.serving.Name, w.st.mesh.TrustDomain),
				Evidence: fmt.Sprintf("istiod of %s and %s /debug/mesh", w.serving.Name, other.Name), Fix: "use one trust domain, or list the other in trustDomainAliases"}), nil
		}
	}
	roots := map[string]string{}
	for _, c := range []string{w.client.Name, w.from.Name} {
		k, err := w.kube(c)
		if err != nil {
			return false, err
		}
		sec, err := k.Kube.CoreV1().Secrets(istio.IstioNamespace).Get(w.ctx, istio.CACertsSecret, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			continue // istiod's self-signed CA: the root check (MC-MTLS) judges it
		} else if err != nil {
			return false, err
		}
		sum := sha256.Sum256(sec.Data["root-cert.pem"])
		roots[c] = hex.EncodeToString(sum[:6])
	}
	if a, b := roots[w.client.Name], roots[w.from.Name]; a != "" && b != "" && a != b {
		return w.broken(Link{Class: ClassIdentity, Check: "one root of trust", Object: fmt.Sprintf("%s Secret %s/%s", w.from.Name, istio.IstioNamespace, istio.CACertsSecret),
			Field: "data[root-cert.pem]", Saw: fmt.Sprintf("sha256 %s (%s's: %s)", b, w.client.Name, a), Evidence: "API servers of " + w.client.Name + " and " + w.from.Name,
			Fix: "plug in certificates from the same root, then restart istiod"}), nil
	}
	return w.ok(ClassIdentity, "one trust domain and one root", w.from.Name, w.st.mesh.TrustDomain, "istiod /debug/mesh, cacerts"), nil
}
