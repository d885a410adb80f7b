package local

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"mclab.dev/mclab/lab/state"
)

// clusterPKI is one cluster's Kubernetes PKI: a cluster CA, the API server's serving certificate, an
// admin client certificate (system:masters) and the service-account signing key pair. Keys are ECDSA
// P-256: fast to generate and accepted by every component.
type clusterPKI struct {
	dir string
}

func (p clusterPKI) path(name string) string { return filepath.Join(p.dir, name) }

// CA, the serving pair, the admin pair and the SA key pair, as files the components read.
func (p clusterPKI) caCert() string        { return p.path("ca.crt") }
func (p clusterPKI) caKey() string         { return p.path("ca.key") }
func (p clusterPKI) apiserverCert() string { return p.path("apiserver.crt") }
func (p clusterPKI) apiserverKey() string  { return p.path("apiserver.key") }
func (p clusterPKI) adminCert() string     { return p.path("admin.crt") }
func (p clusterPKI) adminKey() string      { return p.path("admin.key") }
func (p clusterPKI) saKey() string         { return p.path("sa.key") }
func (p clusterPKI) saPub() string         { return p.path("sa.pub") }

func (p clusterPKI) files() []string {
	return []string{p.caCert(), p.caKey(), p.apiserverCert(), p.apiserverKey(), p.adminCert(), p.adminKey(), p.saKey(), p.saPub()}
}

// complete reports whether every file exists.
func (p clusterPKI) complete() bool {
	for _, f := range p.files() {
		if _, err := os.Stat(f); err != nil {
			return false
		}
	}
	return true
}

// ensure generates the PKI unless it is complete. The API server certificate is valid for loopback,
// localhost, the kubernetes Service names and the first address of the Service subnet.
func (p clusterPKI) ensure(cluster, serviceSubnet string) error {
	if p.complete() {
		return nil
	}
	svc, err := netip.ParsePrefix(serviceSubnet)
	if err != nil {
		return fmt.Errorf("service subnet %q: %w", serviceSubnet, err)
	}
	caKey, err := newKey()
	if err != nil {
		return err
	}
	now := time.Now().Add(-time.Hour)
	caTmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: cluster + "-kube-ca", Organization: []string{"mclab"}},
		NotBefore:             now,
		NotAfter:              now.Add(10 * 365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)

	serving := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "kube-apiserver"},
		NotBefore:    now,
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), svc.Addr().Next().AsSlice()},
		DNSNames:     []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"},
	}
	admin := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: "admin", Organization: []string{"system:masters"}},
		NotBefore:    now,
		NotAfter:     now.Add(5 * 365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	saKey, err := newKey()
	if err != nil {
		return err
	}
	files := map[string][]byte{
		p.caCert(): pemCert(caDER),
		p.caKey():  pemKey(caKey),
		p.saKey():  pemKey(saKey),
	}
	saPub, err := x509.MarshalPKIXPublicKey(saKey.Public())
	if err != nil {
		return err
	}
	files[p.saPub()] = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: saPub})
	for _, leaf := range []struct {
		tmpl      *x509.Certificate
		cert, key string
	}{{serving, p.apiserverCert(), p.apiserverKey()}, {admin, p.adminCert(), p.adminKey()}} {
		k, err := newKey()
		if err != nil {
			return err
		}
		der, err := x509.CreateCertificate(rand.Reader, leaf.tmpl, ca, k.Public(), caKey)
		if err != nil {
			return err
		}
		files[leaf.cert], files[leaf.key] = pemCert(der), pemKey(k)
	}
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		return err
	}
	for path, data := range files {
		if err := state.WriteFile(path, data); err != nil {
			return err
		}
	}
	return nil
}

func newKey() (*ecdsa.PrivateKey, error) { return ecdsa.GenerateKey(elliptic.P256(), rand.Reader) }

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func pemCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func pemKey(k crypto.Signer) []byte {
	der, err := x509.MarshalECPrivateKey(k.(*ecdsa.PrivateKey))
	if err != nil {
		panic(err) // a P-256 key always marshals
	}
	return pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der})
}

func readFile(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s is missing; `mclab down` then `mclab up` recreates the lab", path)
	}
	return data, err
}
