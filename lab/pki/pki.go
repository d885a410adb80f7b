// Package pki makes the mesh certificate authorities Istio's "plug in CA certificates" setup uses: a
// root per trust domain (or one shared by federated meshes) and an intermediate per cluster, in the
// cacerts layout istiod reads (ca-cert.pem, ca-key.pem, root-cert.pem, cert-chain.pem), with the
// extensions of Istio's tools/certs makefiles (Makefile.selfsigned.mk, common.mk).
package pki

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DefaultKeyBits is the RSA key size of roots and intermediates. Istio's makefiles use 4096; 2048 is as
// valid for istiod and keeps lab creation fast on small machines.
const DefaultKeyBits = 2048

// The cacerts files, as istiod reads them from ROOT_CA_DIR or the cacerts Secret.
const (
	CACertFile    = "ca-cert.pem"
	CAKeyFile     = "ca-key.pem"
	RootCertFile  = "root-cert.pem"
	CertChainFile = "cert-chain.pem"
	rootKeyFile   = "root-key.pem"
)

// CA is a certificate and its key.
type CA struct {
	Cert    *x509.Certificate
	Key     crypto.Signer
	CertPEM []byte
	KeyPEM  []byte
}

// Fingerprint is the SHA-256 of the certificate's DER, in lower-case hex.
func (c *CA) Fingerprint() string { return Fingerprint(c.Cert) }

// Fingerprint is the SHA-256 of a certificate's DER, in lower-case hex.
func Fingerprint(c *x509.Certificate) string {
	sum := sha256.Sum256(c.Raw)
	return hex.EncodeToString(sum[:])
}

// NewRoot makes a self-signed root: O=Istio, CN=Root CA (plus the trust domain, so roots of different
// meshes are told apart), basicConstraints critical CA:true, keyUsage critical digitalSignature,
// nonRepudiation, keyEncipherment, keyCertSign; 10 years.
func NewRoot(name string, bits int) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits(bits))
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Istio"}, CommonName: "Root CA", OrganizationalUnit: []string{name}},
		NotBefore:             now,
		NotAfter:              now.Add(3650 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		KeyUsage:              caKeyUsage,
		SubjectKeyId:          ski(&key.PublicKey),
	}
	return sign(tmpl, tmpl, key, key)
}

// caKeyUsage is "critical, digitalSignature, nonRepudiation, keyEncipherment, keyCertSign" (Go marks
// keyUsage critical).
const caKeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageContentCommitment | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign

// NewIntermediate makes a cluster's intermediate, signed by root: O=Istio, CN=Intermediate CA,
// L=<cluster>, basicConstraints critical CA:true pathlen:0, the root's keyUsage, SAN
// DNS:istiod.istio-system.svc; 10 years.
func NewIntermediate(root *CA, cluster string, bits int) (*CA, error) {
	key, err := rsa.GenerateKey(rand.Reader, keyBits(bits))
	if err != nil {
		return nil, err
	}
	now := time.Now().Add(-time.Hour)
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{Organization: []string{"Istio"}, CommonName: "Intermediate CA", Locality: []string{cluster}},
		NotBefore:             now,
		NotAfter:              now.Add(3650 * 24 * time.Hour),
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLen:            0,
		MaxPathLenZero:        true,
		KeyUsage:              caKeyUsage,
		DNSNames:              []string{"istiod.istio-system.svc"},
		SubjectKeyId:          ski(&key.PublicKey),
	}
	return sign(tmpl, root.Cert, key, root.Key)
}

func keyBits(bits int) int {
	if bits <= 0 {
		return DefaultKeyBits
	}
	return bits
}

func sign(tmpl, parent *x509.Certificate, key *rsa.PrivateKey, parentKey crypto.Signer) (*CA, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, key.Public(), parentKey)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &CA{
		Cert:    cert,
		Key:     key,
		CertPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		KeyPEM:  pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
	}, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}

func ski(pub *rsa.PublicKey) []byte {
	sum := sha256.Sum256(x509.MarshalPKCS1PublicKey(pub))
	return sum[:20]
}

// CACerts is a cluster's cacerts material: what goes into the cacerts Secret and ROOT_CA_DIR.
type CACerts struct {
	// CACert is the intermediate (ca-cert.pem).
	CACert []byte
	// CAKey is its key (ca-key.pem).
	CAKey []byte
	// RootCert is the mesh root (root-cert.pem); with extra trusted roots appended when federating
	// through caCertificates.
	RootCert []byte
	// CertChain is the intermediate followed by the root (cert-chain.pem).
	CertChain []byte
}

// NewCACerts lays out an intermediate and its root as Istio's makefiles do.
func NewCACerts(intermediate, root *CA) *CACerts {
	return &CACerts{
		CACert:    intermediate.CertPEM,
		CAKey:     intermediate.KeyPEM,
		RootCert:  root.CertPEM,
		CertChain: append(append([]byte{}, intermediate.CertPEM...), root.CertPEM...),
	}
}

// Files returns the cacerts files by name.
func (c *CACerts) Files() map[string][]byte {
	return map[string][]byte{CACertFile: c.CACert, CAKeyFile: c.CAKey, RootCertFile: c.RootCert, CertChainFile: c.CertChain}
}

// Write writes the files into dir, mode 0600.
func (c *CACerts) Write(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	for name, data := range c.Files() {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// ReadCACerts reads a cacerts directory.
func ReadCACerts(dir string) (*CACerts, error) {
	read := func(n string) ([]byte, error) { return os.ReadFile(filepath.Join(dir, n)) }
	var c CACerts
	var errs []error
	for _, f := range []struct {
		name string
		dst  *[]byte
	}{{CACertFile, &c.CACert}, {CAKeyFile, &c.CAKey}, {RootCertFile, &c.RootCert}, {CertChainFile, &c.CertChain}} {
		data, err := read(f.name)
		errs = append(errs, err)
		*f.dst = data
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return &c, nil
}

// Root parses the first certificate of root-cert.pem.
func (c *CACerts) Root() (*x509.Certificate, error) { return FirstCert(c.RootCert) }

// FirstCert parses the first PEM certificate in data.
func FirstCert(data []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(block.Bytes)
}

// Verify checks that the intermediate chains to the root and that the key matches the intermediate.
func (c *CACerts) Verify() error {
	inter, err := FirstCert(c.CACert)
	if err != nil {
		return fmt.Errorf("%s: %w", CACertFile, err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(c.RootCert) {
		return fmt.Errorf("%s holds no certificate", RootCertFile)
	}
	if _, err := inter.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("intermediate %q does not chain to the root: %w", inter.Subject, err)
	}
	block, _ := pem.Decode(c.CAKey)
	if block == nil {
		return fmt.Errorf("%s holds no key", CAKeyFile)
	}
	key, err := x509.ParsePKCS1PrivateKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("%s: %w", CAKeyFile, err)
	}
	if !key.PublicKey.Equal(inter.PublicKey) {
		return fmt.Errorf("%s does not match %s", CAKeyFile, CACertFile)
	}
	if !bytes.HasPrefix(c.CertChain, c.CACert) {
		return fmt.Errorf("%s must start with %s", CertChainFile, CACertFile)
	}
	return nil
}

// ShortFingerprint is the first 12 hex digits of a fingerprint, for messages.
func ShortFingerprint(fp string) string {
	if len(fp) > 12 {
		return strings.ToLower(fp[:12])
	}
	return fp
}
