package reports

import (
	"archive/tar"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRedactRemovesTokensAndKeys(t *testing.T) {
	dir := t.TempDir()
	log := "I1125 request Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345\n" +
		"token eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJpc3MiOiJrdWJlcm5ldGVzIn0.c2lnbmF0dXJlX2hlcmU\n" +
		"-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\n" +
		"users:\n- name: x\n  user:\n    token: s3cr3t-value\n    client-key-data: LS0tLS1CRUdJTi\n" +
		"ok line: pods 3 ready\n"
	if err := os.MkdirAll(filepath.Join(dir, "logs", "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(dir, "logs", "c1", "kube-apiserver.log")
	if err := os.WriteFile(f, []byte(log), 0o600); err != nil {
		t.Fatal(err)
	}
	n, err := Redact(dir)
	if err != nil || n != 1 {
		t.Fatalf("Redact = %d, %v", n, err)
	}
	got, _ := os.ReadFile(f)
	for _, secret := range []string{"abcdefghijklmnopqrstuvwxyz012345", "eyJhbGci", "MIIEpAIBAAKCAQEA", "s3cr3t-value", "LS0tLS1CRUdJTi"} {
		if strings.Contains(string(got), secret) {
			t.Errorf("%q survived:\n%s", secret, got)
		}
	}
	if !strings.Contains(string(got), "ok line: pods 3 ready") || !strings.Contains(string(got), "<token redacted>") {
		t.Errorf("redaction damaged the log:\n%s", got)
	}
	if fi, _ := os.Stat(f); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode changed to %v", fi.Mode())
	}
}

func TestTarballHoldsTheBundle(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "evidence")
	if err := os.MkdirAll(filepath.Join(dir, "logs", "c1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "logs", "c1", "istiod.log"), []byte("ready\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "evidence.tar.gz")
	if err := Tarball(dir, out); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("tarball: %v %v", err, fi)
	}
	f, _ := os.Open(out)
	defer f.Close()
	gz, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(gz)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
	}
	if strings.Join(names, ",") != "evidence/,evidence/logs/,evidence/logs/c1/,evidence/logs/c1/istiod.log" {
		t.Errorf("entries: %v", names)
	}
}
