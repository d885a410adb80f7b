package suites

import (
	"context"
	"crypto/ecdsa"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"strings"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/probe/ca"
	"mclab.dev/mclab/suites/probe/xds"
)

// clusterRoot reads root-cert.pem of a cluster's cacerts Secret.
func (t *Target) clusterRoot(ctx context.Context, cluster string) ([]byte, string, error) {
	s, err := t.Clients[cluster].Kube.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, istio.CACertsSecret, metav1.GetOptions{})
	if err != nil {
		return nil, "", apiErr(err)
	}
	root, err := pki.FirstCert(s.Data[pki.RootCertFile])
	if err != nil {
		return nil, "", finding(fmt.Errorf("cacerts of %s: %w", cluster, err))
	}
	return s.Data[pki.RootCertFile], pki.Fingerprint(root), nil
}

// probeIdentity is the namespace and service account of the probe workload (see probe).
func (t *Target) probeIdentity() (string, string) {
	if !scenario.HasSidecarSamples(t.Scenario) && scenario.HasProxylessSamples(t.Scenario) {
		return istio.ProxylessNamespace, "echo"
	}
	return istio.SampleNamespace, "curl"
}

// CheckRootsEqual: every cluster of a mesh plugs in the same root.
func CheckRootsEqual(ctx context.Context, t *Target) Verdict {
	var v Verdict
	first := map[string]struct{ cluster, fp string }{}
	for _, c := range t.Scenario.Clusters {
		_, fp, err := t.clusterRoot(ctx, c.Name)
		if err != nil {
			v.record(err, "%s has no usable cacerts", c.Name)
			continue
		}
		v.saw("%s (mesh %s) root sha256 %s", c.Name, c.Mesh, fp)
		f, ok := first[c.Mesh]
		if !ok {
			first[c.Mesh] = struct{ cluster, fp string }{c.Name, fp}
			continue
		}
		if f.fp != fp {
			v.fail("%s's root (sha256 %s) differs from %s's (%s): its cacerts come from another CA, so cross-cluster mTLS fails with CERTIFICATE_VERIFY_FAILED; plug in an intermediate signed by the mesh root",
				c.Name, pki.ShortFingerprint(fp), f.cluster, pki.ShortFingerprint(f.fp))
		}
	}
	return v
}

type issued struct {
	cluster string
	chain   []*x509.Certificate
	key     *ecdsa.PrivateKey
	root    []byte
	spiffe  string
}

// CheckWorkloadCertificates asks the istiod serving each cluster for the curl workload's certificate
// with a TokenRequest token (audience istio-ca), checks that it chains to the mesh root and carries
// spiffe://<trust domain>/ns/sample/sa/curl, that a certificate issued in one cluster verifies under
// every other cluster's root of the mesh, and that a TLS handshake between two of them succeeds.
func CheckWorkloadCertificates(ctx context.Context, t *Target) Verdict {
	var v Verdict
	topo := t.topo()
	byMesh := map[string][]issued{}
	for _, c := range t.Scenario.Clusters {
		serving := topo.Serving(c)
		if err := t.secretServerDown(ctx, serving, c); err != nil {
			v.fail("the CA of istiod %s issues no certificate for %s's workloads: %v", serving.Name, c.Name, err)
			continue
		}
		ep, err := t.Istiod(serving.Name)
		if err != nil {
			v.cannot("reaching istiod of %s: %v", serving.Name, err)
			continue
		}
		root, _, err := t.clusterRoot(ctx, serving.Name)
		if err != nil {
			v.record(err, "%s has no usable cacerts for %s", serving.Name, c.Name)
			continue
		}
		ns, sa := t.probeIdentity()
		tok, err := t.Clients[c.Name].Kube.CoreV1().ServiceAccounts(ns).CreateToken(ctx, sa,
			&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{Audiences: []string{"istio-ca"}, ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
		if err != nil {
			v.cannot("TokenRequest for %s/%s in %s: %v", ns, sa, c.Name, err)
			continue
		}
		td := t.Scenario.Mesh(c.Name).TrustDomain
		spiffe := fmt.Sprintf("spiffe://%s/ns/%s/sa/%s", td, ns, sa)
		chain, key, err := ca.CertificateAndKey(ctx, ca.Request{Addr: ep.XDSTLS, Roots: root, Token: tok.Status.Token, ClusterID: c.Name, SPIFFEID: spiffe})
		if err != nil {
			switch {
			case strings.Contains(err.Error(), "x509"):
				v.fail("istiod %s serves a certificate that does not chain to the root in %s's cacerts Secret: istiod runs with other CA material than the Secret says (restart istiod after changing cacerts): %v", serving.Name, serving.Name, err)
			case xds.IsFinding(err):
				why := ""
				if serving.Name != c.Name && strings.Contains(err.Error(), "Unauthenticated") {
					if nr := t.notRead(ctx, serving.Name, c.Name); nr != "" {
						why = fmt.Sprintf(": it reviews %s's tokens at %s's API server through its remote secret for %s, and %s", c.Name, c.Name, c.Name, nr)
					}
				}
				v.fail("the CA of istiod %s refused a certificate for %s in %s%s (%v)", serving.Name, spiffe, c.Name, why, err)
			default:
				v.cannot("asking the CA of istiod %s at %s for %s's certificate: %v", serving.Name, ep.XDSTLS, c.Name, err)
			}
			continue
		}
		if err := ca.VerifyUnder(chain, root, spiffe); err != nil {
			v.fail("the certificate issued for %s by istiod %s does not chain to the mesh root or has the wrong identity: %v", c.Name, serving.Name, err)
			continue
		}
		v.saw("%s: %s issued by %q", c.Name, spiffe, chain[0].Issuer)
		byMesh[c.Mesh] = append(byMesh[c.Mesh], issued{c.Name, chain, key, root, spiffe})
	}
	for mesh, certs := range byMesh {
		for _, a := range certs {
			for _, b := range certs {
				if a.cluster == b.cluster {
					continue
				}
				if err := ca.VerifyUnder(a.chain, b.root, a.spiffe); err != nil {
					v.fail("a certificate issued in %s does not verify under %s's root (mesh %s): %v; their cacerts come from different roots", a.cluster, b.cluster, mesh, err)
					continue
				}
				if a.cluster < b.cluster {
					if err := handshake(a, b); err != nil {
						v.fail("an mTLS handshake between workloads of %s and %s fails: %v", a.cluster, b.cluster, err)
					} else {
						v.saw("mTLS handshake %s <-> %s ok", a.cluster, b.cluster)
					}
				}
			}
		}
	}
	return v
}

func ptr[T any](v T) *T { return &v }

// handshake runs a mutual TLS handshake in memory: a serves with its certificate and trusts b's root,
// b connects with its certificate and trusts a's root.
func handshake(a, b issued) error {
	certOf := func(x issued) tls.Certificate {
		var raw [][]byte
		for _, c := range x.chain {
			raw = append(raw, c.Raw)
		}
		return tls.Certificate{Certificate: raw, PrivateKey: x.key, Leaf: x.chain[0]}
	}
	pool := func(root []byte) *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(root)
		return p
	}
	sc, cc := net.Pipe()
	defer sc.Close()
	defer cc.Close()
	_ = sc.SetDeadline(time.Now().Add(5 * time.Second))
	_ = cc.SetDeadline(time.Now().Add(5 * time.Second))
	server := tls.Server(sc, &tls.Config{Certificates: []tls.Certificate{certOf(a)}, ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: pool(b.root)})
	client := tls.Client(cc, &tls.Config{Certificates: []tls.Certificate{certOf(b)}, RootCAs: pool(a.root), InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			// Workload certificates carry SPIFFE URIs, not DNS names: verify the chain and the identity.
			var chain []*x509.Certificate
			for _, r := range raw {
				c, err := x509.ParseCertificate(r)
				if err != nil {
					return err
				}
				chain = append(chain, c)
			}
			return ca.VerifyUnder(chain, a.root, a.spiffe)
		}})
	errc := make(chan error, 1)
	go func() { errc <- server.Handshake() }()
	if err := client.Handshake(); err != nil {
		return err
	}
	return <-errc
}
