package reports

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/rand"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// remoteSecretKubeconfig is the kubeconfig istioctl create-remote-secret puts under the cluster's name
// (one cluster, user and context named after it, CA data, server, bearer token), with a user of the
// given kind: a token, or a client key.
func remoteSecretKubeconfig(t *testing.T, token, keyPEM string) []byte {
	t.Helper()
	kc := clientcmdapi.NewConfig()
	kc.Clusters["c2"] = &clientcmdapi.Cluster{Server: "https://10.0.0.2:6443", CertificateAuthorityData: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}
	user := &clientcmdapi.AuthInfo{Token: token}
	if keyPEM != "" {
		user = &clientcmdapi.AuthInfo{ClientKeyData: []byte(keyPEM), ClientCertificateData: []byte("-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n")}
	}
	kc.AuthInfos["c2"] = user
	kc.Contexts["c2"] = &clientcmdapi.Context{Cluster: "c2", AuthInfo: "c2"}
	kc.CurrentContext = "c2"
	data, err := clientcmd.Write(*kc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// saToken is shaped like a Kubernetes service-account token (RS256 JWS).
func saToken(seed int64) string {
	r := rand.New(rand.NewSource(seed))
	sig := make([]byte, 64)
	r.Read(sig)
	header := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"RS256","kid":"k1"}`))
	claims := base64.RawURLEncoding.EncodeToString([]byte(`{"iss":"kubernetes/serviceaccount","sub":"system:serviceaccount:istio-system:istio-reader-service-account"}`))
	return header + "." + claims + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func wrap(s string, n int) string {
	var b strings.Builder
	for len(s) > n {
		b.WriteString(s[:n] + "\n")
		s = s[n:]
	}
	b.WriteString(s)
	return b.String()
}

// TestRedactCorpus: every form the audit found leaking (issue 31), from an Istio remote secret and a
// service-account token: none survives RedactBytes, and a public certificate and ordinary text stay.
func TestRedactCorpus(t *testing.T) {
	tok := saToken(1)
	rsaKey, err := rsa.GenerateKey(rand.New(rand.NewSource(2)), 1024)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := string(pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)}))
	kcToken := remoteSecretKubeconfig(t, tok, "")
	kcKey := remoteSecretKubeconfig(t, "", keyPEM)
	kcOpaque := remoteSecretKubeconfig(t, "opaque-bearer-0123456789abcdef", "")
	b64 := base64.StdEncoding.EncodeToString
	secretJSON, _ := json.Marshal(map[string]any{"apiVersion": "v1", "kind": "Secret", "metadata": map[string]any{"name": "istio-remote-secret-c2"}, "data": map[string]string{"c2": b64(kcToken)}})
	escaped, _ := json.Marshal(string(`{"token":"` + tok[:20] + `-plain-token-value"}`))
	// The secret parts a form must not show, by form.
	tokenSig := tok[strings.LastIndexByte(tok, '.')+1:]
	keyBody := strings.Split(keyPEM, "\n")[3] // a line of the key's base64 body
	forms := []struct {
		name, doc string
		secrets   []string
	}{
		{"remote secret YAML, kubeconfig with a token", "apiVersion: v1\nkind: Secret\ndata:\n  c2: " + b64(kcToken) + "\n", []string{b64(kcToken)[:40], tokenSig}},
		{"remote secret YAML, kubeconfig with a client key", "data:\n  c2: " + b64(kcKey) + "\n", []string{b64(kcKey)[:40], b64(kcKey)[200:240]}},
		{"remote secret YAML, kubeconfig with an opaque token", "data: {c2: " + b64(kcOpaque) + "}\n", []string{b64(kcOpaque)[:40]}},
		{"remote secret JSON", string(secretJSON), []string{b64(kcToken)[:40]}},
		// Found by TestIntegrationNoSecretInAnyOutput on a real lab: the next log line's timestamp is
		// base64-shaped (URL alphabet) and was taken as the value's last wrapped line, so nothing decoded.
		{"remote secret YAML in a log, the next line timestamped", "data:\n  c2: " + b64(kcToken) + "\n2026-12-07T10:01:02.123Z\tinfo\tnext\n", []string{b64(kcToken)[:40], b64(kcToken)[100:140]}},
		{"wrapped base64 in a log, the next line timestamped", "dump:\n" + wrap(b64(kcToken), 76) + "\n2026-12-07T10:01:02Z next\n", []string{b64(kcToken)[:40], b64(kcToken)[200:240]}},
		{"kubeconfig in clear, token", string(kcToken), []string{tokenSig}},
		{"kubeconfig in clear, opaque token", string(kcOpaque), []string{"opaque-bearer-0123456789abcdef"}},
		{"base64 JWT under sa-token", "sa-token: " + b64([]byte(tok)) + "\n", []string{b64([]byte(tok))[:40]}},
		{"base64 under api-key", "api-key: " + b64([]byte("k3y-"+tokenSig[:20])) + "\n", []string{b64([]byte("k3y-" + tokenSig[:20]))}},
		{"base64 PEM key wrapped at 64 columns", "key: |\n" + wrap(b64([]byte(keyPEM)), 64) + "\n", []string{wrap(b64([]byte(keyPEM)), 64)[65:129], b64([]byte(keyPEM))[300:360]}},
		{"base64 PEM key wrapped, unindented in a log", "dump:\n" + wrap(b64([]byte(keyPEM)), 76) + "\nend\n", []string{b64([]byte(keyPEM))[76:152], b64([]byte(keyPEM))[400:450]}},
		{"PEM key in clear", "tls.key: |\n" + indent(keyPEM) + "\n", []string{keyBody}},
		{"escaped JSON inside a log line", `I1207 msg="body: ` + string(escaped)[1:len(escaped)-1] + `"`, []string{"-plain-token-value"}},
		{"escaped JSON kubeconfig in a log line", "I1207 got " + strings.ReplaceAll(string(kcOpaque), "\n", `\n`), []string{"opaque-bearer-0123456789abcdef"}},
		{"token= in a URL", "GET https://api.example/v1/watch?token=abcDEF123456ghi&x=1", []string{"abcDEF123456ghi"}},
		{"access_token= in a log", "I1207 callback access_token=ya29.a0AfH6SMB-secret-value state=ok", []string{"ya29.a0AfH6SMB-secret-value"}},
		{"YAML block value", "auth:\n  password: |\n    correct-horse-battery\n    staple-line-two\nnext: ok\n", []string{"correct-horse-battery", "staple-line-two"}},
		{"YAML folded block value", "- token: >-\n    folded-token-part-one\n    folded-token-part-two\n", []string{"folded-token-part-one", "folded-token-part-two"}},
		{"JSON array value", `{"tokens": ["first-token-value-1", "second-token-value-2"], "ok": "yes"}`, []string{"first-token-value-1", "second-token-value-2"}},
		{"YAML flow array value", "token: [flow-token-one, flow-token-two]\n", []string{"flow-token-one", "flow-token-two"}},
		{"X-Api-Key header", "X-Api-Key: 9f8e7d6c5b4a39281706\nAccept: */*\n", []string{"9f8e7d6c5b4a39281706"}},
		{"Authorization header", "Authorization: Bearer " + tok + "\n", []string{tokenSig}},
	}
	if len(forms) < 20 {
		t.Fatalf("the corpus must hold every form of the audit: %d", len(forms))
	}
	for _, f := range forms {
		out := string(RedactBytes([]byte(f.doc)))
		for _, s := range f.secrets {
			if strings.Contains(out, s) {
				t.Errorf("%s: %q survived:\n%s", f.name, s, out)
			}
		}
		if f.name == "JSON array value" && !strings.Contains(out, `"ok": "yes"`) && !strings.Contains(out, `"ok":"yes"`) {
			t.Errorf("%s: the rest of the document is damaged: %s", f.name, out)
		}
	}
	// Public material and ordinary text stay readable.
	cert := b64([]byte("-----BEGIN CERTIFICATE-----\nMIIBszCCAVmgAwIBAgIRAKz\n-----END CERTIFICATE-----\n"))
	keep := "root-cert.pem: " + cert + "\nsecretName: istio-remote-secret-c2\nistiod of c1 has no remote secret for c2\npath /var/lib/mclab/labs/multi-network-primary-remote/local/c1\n"
	if out := string(RedactBytes([]byte("data:\n  c2: " + b64(kcToken) + "\n2026-12-07T10:01:02.123Z\tinfo\tnext\n"))); !strings.HasSuffix(out, "\n2026-12-07T10:01:02.123Z\tinfo\tnext\n") {
		t.Errorf("the line after a redacted value is damaged: %q", out)
	}
	if out := string(RedactBytes([]byte(keep))); out != keep {
		t.Errorf("public data changed:\nin:  %q\nout: %q", keep, out)
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}
