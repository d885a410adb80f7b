package kind

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/state"
)

// fakeDockerOnPath puts a docker executable first on PATH that records its arguments and answers like
// docker for the container listings kind's Go API asks for (kind runs docker through its own exec
// package, so the fake stands at the process boundary).
func fakeDockerOnPath(t *testing.T, clusters string) (log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls.log")
	script := `#!/bin/sh
echo "$*" >> ` + log + `
case "$*" in
  *'--format {{.Label "io.x-k8s.kind.cluster"}}'*) printf '` + clusters + `' ;;
  *'--filter label=io.x-k8s.kind.cluster='*)
    name=$(echo "$*" | sed -e 's/.*io.x-k8s.kind.cluster=\([^ ]*\).*/\1/')
    echo "$name-control-plane" ;;
esac
exit 0
`
	if err := os.WriteFile(filepath.Join(dir, "docker"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", dir+string(os.PathListSeparator)+os.Getenv("PATH"))
	return log
}

// TestDeleteRemovesOnlyTheLabsClusters: down (and the clean-up of a failed up) deletes every kind
// cluster of the lab and no other, and leaves the user's kubeconfig alone.
func TestDeleteRemovesOnlyTheLabsClusters(t *testing.T) {
	log := fakeDockerOnPath(t, `lab-c1\nlab-c2\nother-c1\n`)
	userKC := filepath.Join(t.TempDir(), "user-kubeconfig")
	if err := os.WriteFile(userKC, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", userKC)
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}})
	if err := p.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(log)
	var removed []string
	for _, c := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if strings.HasPrefix(c, "rm ") {
			removed = append(removed, c)
		}
	}
	want := []string{"rm -f -v lab-c1-control-plane", "rm -f -v lab-c2-control-plane"}
	if strings.Join(removed, "\n") != strings.Join(want, "\n") {
		t.Errorf("removed:\n%s\nwant:\n%s\nall calls:\n%s", strings.Join(removed, "\n"), strings.Join(want, "\n"), data)
	}
	if got, _ := os.ReadFile(userKC); string(got) != "apiVersion: v1\nkind: Config\n" {
		t.Errorf("the user's kubeconfig was edited:\n%s", got)
	}
}
