package kind

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/provider/kind/kindtest"
	"mclab.dev/mclab/lab/scenario"
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
// cluster of the lab and no other (not lab-3's, whose names share the prefix "lab-"), and leaves the
// user's kubeconfig alone.
func TestDeleteRemovesOnlyTheLabsClusters(t *testing.T) {
	log := fakeDockerOnPath(t, `lab-c1\nlab-c2\nlab-3-c1\nlab-3-c2\nlab-3-c3\nother-c1\n`)
	userKC := filepath.Join(t.TempDir(), "user-kubeconfig")
	if err := os.WriteFile(userKC, []byte("apiVersion: v1\nkind: Config\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", userKC)
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		t.Fatal(err)
	}
	p := New(Config{Lab: "lab", Store: state.Store{Root: t.TempDir()}, Scenario: s})
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

// TestDownOfLabLeavesTheLabWhoseNameItPrefixes: `make lab; make lab CLUSTERS=3; make down` made labs
// "a" and "a-3"; down of "a" deletes exactly the clusters "a" recorded at create.
func TestDownOfLabLeavesTheLabWhoseNameItPrefixes(t *testing.T) {
	rt := &kindtest.Runtime{}
	root := t.TempDir()
	labOf := func(name string, n int) *Provider {
		s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, n)
		if err != nil {
			t.Fatal(err)
		}
		s.Default()
		return New(Config{Lab: name, Store: state.Store{Root: root}, Scenario: s, Runtime: rt, Out: &strings.Builder{}, GOOS: "linux"})
	}
	a, a3 := labOf("a", 2), labOf("a-3", 3)
	for _, p := range []*Provider{a, a3} {
		if err := p.create(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if got := strings.Join(rt.Clusters(), ","); got != "a-3-c1,a-3-c2,a-3-c3,a-c1,a-c2" {
		t.Fatalf("clusters after both ups: %s", got)
	}
	if err := a.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rt.Clusters(), ","); got != "a-3-c1,a-3-c2,a-3-c3" {
		t.Errorf("down of lab a left %s, want exactly lab a-3's clusters", got)
	}
	if err := a3.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := rt.Clusters(); len(got) != 0 {
		t.Errorf("down of lab a-3 left %v", got)
	}
}
