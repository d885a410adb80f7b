package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
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
