package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

func TestUserKubeconfigPaths(t *testing.T) {
	env := func(kc string) func(string) string {
		return func(k string) string {
			return map[string]string{"KUBECONFIG": kc, "HOME": "/home/u"}[k]
		}
	}
	for _, tc := range []struct {
		explicit, env string
		want          []string
	}{
		{"/x/config", "/a:/b", []string{"/x/config"}},
		{"", "/a::/b:/a", []string{"/a", "/b"}},
		{"", "", []string{"/home/u/.kube/config"}},
	} {
		if got := UserKubeconfigPaths(tc.explicit, env(tc.env)); strings.Join(got, ",") != strings.Join(tc.want, ",") {
			t.Errorf("paths(%q, KUBECONFIG=%q) = %v, want %v", tc.explicit, tc.env, got, tc.want)
		}
	}
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	if got := UserKubeconfigForMerge("", env(a+":"+b)); got != b {
		t.Errorf("no file exists: merge into the last, %s; got %s", b, got)
	}
	must(t, os.WriteFile(a, []byte("apiVersion: v1\nkind: Config\n"), 0o600))
	if got := UserKubeconfigForMerge("", env(a+":"+b)); got != a {
		t.Errorf("merge into the first that exists, %s; got %s", a, got)
	}
}

func labConfig(lab string, clusters ...string) *clientcmdapi.Config {
	c := clientcmdapi.NewConfig()
	for _, cl := range clusters {
		n := lab + "-" + cl
		c.Clusters[n] = &clientcmdapi.Cluster{Server: "https://127.0.0.1:2000" + cl[1:]}
		c.AuthInfos[n] = &clientcmdapi.AuthInfo{ClientCertificateData: []byte("cert"), ClientKeyData: []byte("key")}
		c.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	c.CurrentContext = lab + "-" + clusters[0]
	return c
}

// TestMergeAndRemove: up merges a lab's entries next to the user's own and makes the lab current; a
// second lab joins; down of the first removes exactly its entries (and unsets current-context only
// when it was the lab's), as kind does.
func TestMergeAndRemove(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "config")
	mine := clientcmdapi.NewConfig()
	mine.Clusters["prod"] = &clientcmdapi.Cluster{Server: "https://prod:6443"}
	mine.AuthInfos["me"] = &clientcmdapi.AuthInfo{Token: "t"}
	mine.Contexts["prod"] = &clientcmdapi.Context{Cluster: "prod", AuthInfo: "me", Namespace: "apps"}
	mine.CurrentContext = "prod"
	must(t, clientcmd.WriteToFile(*mine, path))

	if got, err := MergeIntoUserKubeconfig(labConfig("lab", "c1", "c2"), path); err != nil || got != path {
		t.Fatalf("merge: %v %v", got, err)
	}
	if _, err := MergeIntoUserKubeconfig(labConfig("other", "c1"), path); err != nil {
		t.Fatal(err)
	}
	cfg, err := clientcmd.LoadFromFile(path)
	must(t, err)
	for _, n := range []string{"prod", "lab-c1", "lab-c2", "other-c1"} {
		if cfg.Contexts[n] == nil || cfg.Clusters[cfg.Contexts[n].Cluster] == nil || cfg.AuthInfos[cfg.Contexts[n].AuthInfo] == nil {
			t.Errorf("context %s incomplete after the merges", n)
		}
	}
	if cfg.CurrentContext != "other-c1" || cfg.Contexts["prod"].Namespace != "apps" {
		t.Errorf("current %q, prod %+v", cfg.CurrentContext, cfg.Contexts["prod"])
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode())
	}

	changed, err := RemoveFromUserKubeconfig([]string{"lab-c1", "lab-c2"}, path)
	if err != nil || len(changed) != 1 {
		t.Fatalf("remove: %v %v", changed, err)
	}
	cfg, _ = clientcmd.LoadFromFile(path)
	if cfg.Contexts["lab-c1"] != nil || cfg.Clusters["lab-c2"] != nil || cfg.AuthInfos["lab-c1"] != nil || cfg.Contexts["other-c1"] == nil || cfg.Contexts["prod"] == nil || cfg.CurrentContext != "other-c1" {
		t.Errorf("after removing lab: %+v current %q", cfg.Contexts, cfg.CurrentContext)
	}
	if _, err := RemoveFromUserKubeconfig([]string{"other-c1"}, path); err != nil {
		t.Fatal(err)
	}
	cfg, _ = clientcmd.LoadFromFile(path)
	if cfg.CurrentContext != "" || len(cfg.Contexts) != 1 {
		t.Errorf("after removing other: %+v current %q", cfg.Contexts, cfg.CurrentContext)
	}
	// Nothing of a lab in the file: nothing written.
	if changed, err := RemoveFromUserKubeconfig([]string{"gone-c1"}, path); err != nil || len(changed) != 0 {
		t.Errorf("removing what is not there: %v %v", changed, err)
	}
	if _, err := os.Stat(path + ".lock"); !os.IsNotExist(err) {
		t.Errorf("the lock stayed: %v", err)
	}
}

// TestMergeWaitsForTheLock: another writer's lock (client-go's <file>.lock) is waited for, then named.
func TestMergeWaitsForTheLock(t *testing.T) {
	old := LockWait
	LockWait = 300 * time.Millisecond
	defer func() { LockWait = old }()
	path := filepath.Join(t.TempDir(), "config")
	must(t, os.WriteFile(path+".lock", nil, 0o600))
	_, err := MergeIntoUserKubeconfig(labConfig("lab", "c1"), path)
	if err == nil || !strings.Contains(err.Error(), "remove "+path+".lock") {
		t.Errorf("a held lock: %v", err)
	}
	go func() { time.Sleep(100 * time.Millisecond); _ = os.Remove(path + ".lock") }()
	if _, err := MergeIntoUserKubeconfig(labConfig("lab", "c1"), path); err != nil {
		t.Errorf("a lock released while waiting: %v", err)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
