package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/bench"
	"mclab.dev/mclab/lab/train"
)

// Every command that writes reports refuses a directory of a user's own files, exit 2, naming the
// flag and what is there, and leaves each file, mode and link as it was (verify once rewrote a user's
// config.yaml to "password: <redacted>", made a script 0600 and deleted a symlink).
func TestReportCommandsRefuseAUsersDirectory(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		flag string
		args []string
	}{
		{"--report-dir", []string{"verify", "--name", "nosuch"}},
		{"--out", []string{"train", "report", "--labs", "*"}},
		{"--out", []string{"bench", "--scenario", "propagation"}},
	} {
		t.Run(tc.args[0], func(t *testing.T) {
			dir := t.TempDir()
			files := map[string]string{"config.yaml": "password: hunter2\n", "run.sh": "#!/bin/sh\n"}
			for n, c := range files {
				mode := os.FileMode(0o644)
				if strings.HasSuffix(n, ".sh") {
					mode = 0o755
				}
				if err := os.WriteFile(filepath.Join(dir, n), []byte(c), mode); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.Symlink("config.yaml", filepath.Join(dir, "link")); err != nil {
				t.Fatal(err)
			}
			_, errOut, code := run(t, append(append([]string{"--state-dir", state}, tc.args...), tc.flag, dir)...)
			if code != 2 || !strings.Contains(errOut, tc.flag+": ") || !strings.Contains(errOut, "it holds files mclab did not write (config.yaml, link, run.sh)") {
				t.Errorf("exit %d, want 2 naming %s and the files:\n%s", code, tc.flag, errOut)
			}
			for n, c := range files {
				data, err := os.ReadFile(filepath.Join(dir, n))
				if err != nil || string(data) != c {
					t.Errorf("%s changed: %q %v", n, data, err)
				}
			}
			if fi, _ := os.Stat(filepath.Join(dir, "run.sh")); fi.Mode().Perm() != 0o755 {
				t.Errorf("run.sh mode changed to %v", fi.Mode())
			}
			if target, err := os.Readlink(filepath.Join(dir, "link")); err != nil || target != "config.yaml" {
				t.Errorf("the symlink is gone or changed: %q %v", target, err)
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 3 {
				t.Errorf("entries added: %v", entries)
			}
		})
	}
}

// Train class reports and bench results are shared files (0644), so what a lab printed into them (a
// bench note carries the error text of a failed step; a train record names the learner's target) passes
// redaction before it is written (issue 31).
func TestSharedResultsAreRedacted(t *testing.T) {
	// A service-account token's shape (RS256 JWS) and a remote secret's base64 kubeconfig.
	jwt := "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJpc3MiOiJrdWJlcm5ldGVzL3NlcnZpY2VhY2NvdW50In0.c2lnbmF0dXJlLXBhcnQtb2YtdGhlLXRva2Vu"
	kc := base64.StdEncoding.EncodeToString([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster: {server: https://10.0.0.2:6443}\nusers:\n- name: c2\n  user: {token: " + jwt + "}\n"))
	leak := "Authorization: Bearer " + jwt + " data: {c2: " + kc + "}"
	dir := t.TempDir()
	r := &bench.Result{APIVersion: bench.APIVersion, Kind: bench.Kind, Notes: []string{"INCOMPLETE: the bench stopped: " + leak}}
	if err := r.Write(filepath.Join(dir, "bench-result.json")); err != nil {
		t.Fatal(err)
	}
	if err := writeTrainReport(dir, &train.Report{Attempts: []train.Record{{Lab: "l", Exercise: "e", Target: leak, Outcome: "solved"}}}); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"bench-result.json", "train-report.yaml", "junit.xml"} {
		data, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), jwt[len(jwt)-20:]) || strings.Contains(string(data), kc[:40]) {
			t.Errorf("%s keeps the token or the kubeconfig:\n%s", f, data)
		}
		if fi, _ := os.Stat(filepath.Join(dir, f)); fi.Mode().Perm() != 0o644 {
			t.Errorf("%s: mode %o, want 644 (shared results, documented)", f, fi.Mode().Perm())
		}
	}
}
