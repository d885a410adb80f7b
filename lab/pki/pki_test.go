package pki

import (
	"crypto/x509"
	"strings"
	"testing"
)

func TestIntermediateHasIstioExtensionsAndChains(t *testing.T) {
	root, err := NewRoot("cluster.local", 0)
	if err != nil {
		t.Fatal(err)
	}
	inter, err := NewIntermediate(root, "c1", 0)
	if err != nil {
		t.Fatal(err)
	}
	c := inter.Cert
	if !c.IsCA || c.MaxPathLen != 0 || !c.MaxPathLenZero {
		t.Errorf("intermediate must be CA:true pathlen:0: IsCA=%v MaxPathLen=%d", c.IsCA, c.MaxPathLen)
	}
	if c.KeyUsage != caKeyUsage {
		t.Errorf("keyUsage %v, want %v", c.KeyUsage, caKeyUsage)
	}
	if len(c.DNSNames) != 1 || c.DNSNames[0] != "istiod.istio-system.svc" {
		t.Errorf("SANs %v", c.DNSNames)
	}
	if got := c.Subject.String(); !strings.Contains(got, "L=c1") || !strings.Contains(got, "CN=Intermediate CA") || !strings.Contains(got, "O=Istio") {
		t.Errorf("subject %s", got)
	}
	cc := NewCACerts(inter, root)
	if err := cc.Verify(); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := cc.Write(dir); err != nil {
		t.Fatal(err)
	}
	back, err := ReadCACerts(dir)
	if err != nil || back.Verify() != nil {
		t.Fatalf("read back: %v", err)
	}
	r, _ := back.Root()
	if Fingerprint(r) != root.Fingerprint() {
		t.Error("root fingerprint changed through the files")
	}
}

// TestVerifyCatchesForeignRoot is the fault every mTLS check depends on: an intermediate from another
// root must be told apart.
func TestVerifyCatchesForeignRoot(t *testing.T) {
	rootA, _ := NewRoot("a", 0)
	rootB, _ := NewRoot("b", 0)
	inter, _ := NewIntermediate(rootB, "c2", 0)
	bad := NewCACerts(inter, rootA)
	err := bad.Verify()
	if err == nil || !strings.Contains(err.Error(), "does not chain to the root") {
		t.Fatalf("Verify = %v", err)
	}
	if rootA.Fingerprint() == rootB.Fingerprint() {
		t.Fatal("two roots share a fingerprint")
	}
	var _ x509.Certificate
}
