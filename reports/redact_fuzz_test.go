package reports

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/rand"
	"strings"
	"testing"
)

// secretForms embeds a secret the way it shows up in what verify writes: logs, YAML (kubeconfigs,
// Secrets, flow style), JSON (client-go's kubeconfig JSON, Secret data), HTTP headers, command lines.
var secretForms = []func(token, keyPEM string) (doc string, secrets []string){
	func(tok, _ string) (string, []string) { return "Authorization: Bearer " + tok, []string{tok} },
	func(tok, _ string) (string, []string) {
		b := base64.StdEncoding.EncodeToString([]byte("admin:" + tok))
		return "Authorization: Basic " + b, []string{b}
	},
	func(tok, _ string) (string, []string) {
		return "kube-apiserver --token=" + tok + " --v=2", []string{tok}
	},
	func(tok, _ string) (string, []string) {
		return "users:\n- name: c2\n  user:\n    token: " + tok, []string{tok}
	},
	func(tok, _ string) (string, []string) {
		j, _ := json.Marshal(map[string]any{"users": []any{map[string]any{"user": map[string]any{"token": tok}}}})
		return string(j), []string{tok}
	},
	func(tok, _ string) (string, []string) {
		j, _ := json.MarshalIndent(map[string]any{"password": tok, "name": "x"}, "", "  ")
		return string(j), []string{tok}
	},
	func(tok, _ string) (string, []string) {
		return "{token: " + tok + ", server: https://10.0.0.1:6443}", []string{tok}
	},
	func(_, key string) (string, []string) { return key, []string{pemBody(key)} },
	func(_, key string) (string, []string) {
		b := base64.StdEncoding.EncodeToString([]byte(key))
		return "data:\n  ca-key.pem: " + b + "\n  root-cert.pem: LS0tLS1CRUdJTiBDRVJU", []string{b[:60]}
	},
	func(_, key string) (string, []string) {
		b := base64.StdEncoding.EncodeToString([]byte(key))
		j, _ := json.Marshal(map[string]any{"data": map[string]any{"tls.key": b}})
		return string(j), []string{b[:60]}
	},
	func(_, key string) (string, []string) {
		b := base64.StdEncoding.EncodeToString([]byte(key))
		return "    client-key-data: " + b, []string{b[:60]}
	},
	func(tok, _ string) (string, []string) {
		jwt := "eyJhbGciOiJSUzI1NiIsImtpZCI6Ik" + tok[:8] + "." + "eyJhdWQiOlsiaXN0aW8tY2EiXX0" + tok + "." + tok
		return `{"status":{"token":"` + jwt + `"}}`, []string{jwt[:40], tok}
	},
}

func pemBody(key string) string {
	lines := strings.Split(key, "\n")
	return lines[1]
}

// newKeyPEM makes a real EC private key in PEM.
func newKeyPEM(t testing.TB, seed int64) string {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.New(rand.NewSource(seed)))
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
}

// FuzzRedact: whatever surrounds a generated secret, in whichever form, the secret does not survive
// RedactBytes. Run: go test ./reports -fuzz FuzzRedact -fuzztime 60s
func FuzzRedact(f *testing.F) {
	f.Add("I1126 12:00:00 request", []byte("s3cr3t-token-value-0123456789"), uint8(0), "ok", int64(1))
	f.Add("", []byte{0xff, 0x00, 0x10}, uint8(7), "\n---\n", int64(2))
	f.Add("kind: Config", []byte("abcdefghijklmnop"), uint8(8), "", int64(3))
	f.Fuzz(func(t *testing.T, before string, raw []byte, form uint8, after string, seed int64) {
		if len(raw) < 12 {
			raw = append(raw, []byte("padding-0123456789")...)
		}
		tok := base64.RawURLEncoding.EncodeToString(raw)
		key := newKeyPEM(t, seed)
		doc, secrets := secretForms[int(form)%len(secretForms)](tok, key)
		for _, s := range secrets {
			if strings.Contains(before, s[:12]) || strings.Contains(after, s[:12]) {
				t.Skip("the surrounding text carries the secret itself")
			}
		}
		in := before + "\n" + doc + "\n" + after
		out := string(RedactBytes([]byte(in)))
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("form %d: secret %q survived:\nin:  %q\nout: %q", int(form)%len(secretForms), s, in, out)
			}
		}
	})
}

// Every form, with real generated secrets, in a table (the fuzz seeds run in go test too).
func TestRedactEveryForm(t *testing.T) {
	for i := range secretForms {
		tok := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf("generated-secret-%02d-xyzzy", i)))
		doc, secrets := secretForms[i](tok, newKeyPEM(t, int64(i)))
		out := string(RedactBytes([]byte(doc)))
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Errorf("form %d: %q survived in %q", i, s, out)
			}
		}
	}
	// What is not secret stays readable.
	keep := "root-cert.pem: LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ\nistiod of c1 has no remote secret for c2\nverdict: non-conformant"
	if out := string(RedactBytes([]byte(keep))); !strings.Contains(out, "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCk1JSUJ") || !strings.Contains(out, "has no remote secret for c2") {
		t.Errorf("redaction damaged public data: %q", out)
	}
}

// TestRedactKeepsJSON: a JSON report whose strings hold text that looks like a secret field (a
// diagnosis "... remote secret: Get \"https://...\"", a kubeconfig in YAML) stays valid JSON, with the
// secret gone and the key order kept (Ginkgo's ginkgo.json broke here once).
func TestRedactKeepsJSON(t *testing.T) {
	in := `{
  "Message": "c1's API server refuses the credentials of c2's remote secret: Get \"https://127.0.0.1:20034/version\": x509",
  "kubeconfig": "users:\n- name: c2\n  user:\n    token: s3cr3t-value-123\n",
  "z": [1, true, null, {"password": "hunter2-hunter2", "token": {"nested": "kept"}}],
  "a": "last"
}
`
	out := RedactBytes([]byte(in))
	if !json.Valid(out) {
		t.Fatalf("not JSON any more:\n%s", out)
	}
	for _, s := range []string{"s3cr3t-value-123", "hunter2-hunter2"} {
		if strings.Contains(string(out), s) {
			t.Errorf("%q survived:\n%s", s, out)
		}
	}
	if !strings.Contains(string(out), "x509") || !strings.Contains(string(out), `"nested": "kept"`) ||
		strings.Index(string(out), `"Message"`) > strings.Index(string(out), `"a"`) {
		t.Errorf("redaction damaged the document:\n%s", out)
	}
}

// FuzzRedactJSON: whatever text a JSON document's strings hold, it stays valid JSON.
func FuzzRedactJSON(f *testing.F) {
	f.Add("remote secret: Get \"https://x\"", "token: abc\\\"")
	f.Add("{token: x, secret: 'y'}", "password: \"p\"")
	f.Fuzz(func(t *testing.T, a, b string) {
		doc, _ := json.MarshalIndent(map[string]any{"m": a, "list": []any{b, map[string]any{"token": a}}}, "", "  ")
		out := RedactBytes(doc)
		if !json.Valid(out) {
			t.Fatalf("not JSON any more:\nin:  %s\nout: %s", doc, out)
		}
	})
}
