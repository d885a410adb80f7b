package reports

import (
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
