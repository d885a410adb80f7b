package main_test

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/clientcmd"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationNoSecretInAnyOutput (issue 31): the real remote secret of a running lab (the kubeconfig
// istiod of c1 reads c2 with, holding istio-reader's service-account token) is written into c1's istiod
// log in every form the audit found leaking, the way a debug-level client or a user's `kubectl get -o
// yaml | tee` puts it there. Then verify runs with a verdict that is not conformant, so that it writes
// every output it has: the reports, the evidence bundle with the lab's logs, and its tarball. None of
// the secret's material survives anywhere: not in a file, not in the tarball, not on stdout or stderr;
// and the planted lines did reach the bundle (so the test cannot pass by collecting nothing).
func TestIntegrationNoSecretInAnyOutput(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	sl := useSharedLab(t, bin, "single-network")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cs := labtest.Client(t, sl.kubeconfig, "single-network-c1")
	sec, err := cs.CoreV1().Secrets(istio.IstioNamespace).Get(ctx, istio.RemoteSecretName("c2"), metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kc := sec.Data["c2"]
	cfg, err := clientcmd.Load(kc)
	if err != nil {
		t.Fatalf("the remote secret's kubeconfig: %v", err)
	}
	var token string
	for _, u := range cfg.AuthInfos {
		token = u.Token
	}
	if len(token) < 100 || strings.Count(token, ".") != 2 {
		t.Fatalf("the remote secret holds no service-account token (%d bytes)", len(token))
	}
	b64 := base64.StdEncoding.EncodeToString
	kcB64, tokB64 := b64(kc), b64([]byte(token))
	signature := token[strings.LastIndexByte(token, '.')+1:]
	secretJSON, _ := json.Marshal(sec)
	escaped, _ := json.Marshal(string(kc))

	const marker = "mclab-issue-31-probe"
	forms := []string{
		"remote secret YAML: apiVersion: v1\nkind: Secret\nmetadata:\n  name: istio-remote-secret-c2\ndata:\n  c2: " + kcB64,
		"remote secret YAML, flow: data: {c2: " + kcB64 + "}",
		"remote secret JSON: " + string(secretJSON),
		"kubeconfig in clear:\n" + string(kc),
		"escaped kubeconfig in a log line: body=" + string(escaped),
		"sa-token: " + tokB64,
		"wrapped:\n" + wrap76(kcB64),
		"GET https://10.0.0.2:6443/api?watch=true&token=" + token + "&x=1",
		"Authorization: Bearer " + token,
		`{"tokens": ["` + token + `"]}`,
		"auth:\n  token: |\n    " + token,
	}
	logPath := filepath.Join(sl.stateDir, "labs", "single-network", "local", "c1", "logs", "istiod.log")
	f, err := os.OpenFile(logPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, form := range forms {
		if _, err := f.WriteString(time.Now().UTC().Format(time.RFC3339Nano) + "\tdebug\t" + marker + " " + form + "\n"); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()

	// The secret's material, as a reader of any output would find it.
	needles := map[string]string{
		"the token": token, "the token's signature": signature, "the token's last 40 characters": token[len(token)-40:],
		"the base64 kubeconfig": kcB64[:60], "the base64 kubeconfig's middle": kcB64[len(kcB64)/2 : len(kcB64)/2+60],
		"the base64 token": tokB64[:60],
	}
	check := func(where, text string) {
		t.Helper()
		for what, n := range needles {
			i := strings.Index(text, n)
			if i < 0 {
				continue
			}
			// Name the planted form it came from (the text after the last marker before it), never the secret.
			form := "not a planted line"
			if m := strings.LastIndex(text[:i], marker); m >= 0 {
				form, _, _ = strings.Cut(text[m+len(marker)+1:], ":")
			}
			t.Errorf("%s of the real remote secret survives in %s (form %q)", what, where, form)
		}
	}

	// A label filter that selects no spec: inconclusive, so verify writes the evidence bundle too.
	dir := filepath.Join(t.TempDir(), "reports")
	stdout, stderr, code := mclab(t, bin, sl.stateDir, "verify", "--name", "single-network", "--report-dir", dir, "--label-filter", "MC-NO-SUCH-LABEL", "-v")
	if code != 2 {
		t.Fatalf("verify with a label filter that selects nothing: exit %d, want 2\n%s%s", code, stdout, stderr)
	}
	check("verify's stdout", stdout)
	check("verify's stderr", stderr)
	files, reached := 0, false
	err = filepath.Walk(dir, func(path string, info os.FileInfo, err error) error {
		if err != nil || info.IsDir() {
			return err
		}
		data, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		files++
		check(path, string(data))
		if strings.Contains(string(data), marker) {
			reached = true
		}
		if strings.HasSuffix(path, ".tar.gz") {
			zr, err := gzip.NewReader(strings.NewReader(string(data)))
			if err != nil {
				t.Fatalf("%s: %v", path, err)
			}
			tr := tar.NewReader(zr)
			for {
				h, err := tr.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				body, _ := io.ReadAll(tr)
				files++
				check(path+":"+h.Name, string(body))
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !reached {
		t.Fatalf("the planted log lines reached no output of verify (%d files under %s): the test checked nothing", files, dir)
	}
	if _, err := os.Stat(filepath.Join(dir, "evidence.tar.gz")); err != nil {
		t.Errorf("no evidence tarball: %v", err)
	}
	t.Logf("%d forms of the real remote secret planted in c1's istiod log; none survives in %d files of verify's outputs (reports, evidence, tarball) or its stdout and stderr", len(forms), files)
}

func wrap76(s string) string {
	var b strings.Builder
	for len(s) > 76 {
		b.WriteString(s[:76] + "\n")
		s = s[76:]
	}
	b.WriteString(s)
	return b.String()
}
