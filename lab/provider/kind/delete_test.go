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
	// The lab's record, as its up wrote it before creating the clusters: the proof down deletes by.
	if err := os.MkdirAll(p.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := p.recordClusters([]string{"lab-c1", "lab-c2"}); err != nil {
		t.Fatal(err)
	}
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

// TestCollidingNamesAreRefusedNotClaimed: lab "a" with cluster "3-c1" and lab "a-3" with cluster "c1"
// both name the kind cluster "a-3-c1". The second up refuses, naming it, before it creates or records
// anything; the first lab's cluster stays, and down of the refused lab leaves it.
func TestCollidingNamesAreRefusedNotClaimed(t *testing.T) {
	rt := &kindtest.Runtime{}
	root := t.TempDir()
	labOf := func(name string, clusters ...string) *Provider {
		s, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, len(clusters))
		if err != nil {
			t.Fatal(err)
		}
		for i := range s.Clusters {
			s.Clusters[i].Name = clusters[i]
		}
		s.Default()
		return New(Config{Lab: name, Store: state.Store{Root: root}, Scenario: s, Runtime: rt, Out: &strings.Builder{}, GOOS: "linux"})
	}
	a3, a := labOf("a-3", "c1"), labOf("a", "3-c1")
	if err := a3.create(context.Background()); err != nil {
		t.Fatal(err)
	}
	err := a.create(context.Background())
	if err == nil || !strings.Contains(err.Error(), "kind cluster a-3-c1 (lab a, cluster 3-c1) already exists and is not this lab's") {
		t.Fatalf("the colliding up must be refused naming the cluster, got %v", err)
	}
	if owned := a.owned(); len(owned) == 1 && fileExists(a.clustersFile()) {
		t.Errorf("the refused lab recorded %v as its own", owned)
	}
	if err := a.Delete(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(rt.Clusters(), ","); got != "a-3-c1" {
		t.Errorf("down of the refused lab a left %q, want a-3's cluster a-3-c1", got)
	}
	// The owner's second up converges on its own cluster.
	if err := a3.create(context.Background()); err != nil {
		t.Errorf("a second up of the owner: %v", err)
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
