package kube

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
)

// The user's kubeconfig, as kubectl and kind find it: --kubeconfig, else every file of $KUBECONFIG,
// else ~/.kube/config (kind's pkg/cluster/internal/kubeconfig/internal/kubeconfig/paths.go).

// UserKubeconfigPaths are the files kubectl reads: explicit alone, else $KUBECONFIG's list (empty and
// repeated entries dropped), else ~/.kube/config.
func UserKubeconfigPaths(explicit string, getenv func(string) string) []string {
	if explicit != "" {
		return []string{explicit}
	}
	var out []string
	for _, p := range filepath.SplitList(getenv(clientcmd.RecommendedConfigPathEnvVar)) {
		if p != "" && !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	if len(out) > 0 {
		return out
	}
	home := getenv("HOME")
	if home == "" {
		home, _ = os.UserHomeDir()
	}
	return []string{filepath.Join(home, clientcmd.RecommendedHomeDir, clientcmd.RecommendedFileName)}
}

// UserKubeconfigForMerge is the file kubectl writes new entries to: the first of the list that exists,
// else the last.
func UserKubeconfigForMerge(explicit string, getenv func(string) string) string {
	paths := UserKubeconfigPaths(explicit, getenv)
	for _, p := range paths {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	return paths[len(paths)-1]
}

// MergeIntoUserKubeconfig adds (or replaces) the lab's clusters, users and contexts in the user's
// kubeconfig and makes the lab's current context current, as `kind create cluster` does. Other entries
// are left as they are. It returns the file it wrote.
func MergeIntoUserKubeconfig(lab *clientcmdapi.Config, explicit string) (string, error) {
	path := UserKubeconfigForMerge(explicit, os.Getenv)
	err := withLockedKubeconfig(path, func(cfg *clientcmdapi.Config) (bool, error) {
		for name, c := range lab.Clusters {
			cfg.Clusters[name] = c
		}
		for name, u := range lab.AuthInfos {
			cfg.AuthInfos[name] = u
		}
		for name, c := range lab.Contexts {
			cfg.Contexts[name] = c
		}
		if lab.CurrentContext != "" {
			cfg.CurrentContext = lab.CurrentContext
		}
		return true, nil
	})
	return path, err
}

// RemoveFromUserKubeconfig removes the named clusters, users and contexts from every file of the user's
// kubeconfig (unsetting current-context if it was one of them), as `kind delete cluster` does. It
// returns the files it changed.
func RemoveFromUserKubeconfig(names []string, explicit string) ([]string, error) {
	var changed []string
	for _, path := range UserKubeconfigPaths(explicit, os.Getenv) {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			continue
		}
		mutated := false
		err := withLockedKubeconfig(path, func(cfg *clientcmdapi.Config) (bool, error) {
			for _, n := range names {
				if _, ok := cfg.Clusters[n]; ok {
					delete(cfg.Clusters, n)
					mutated = true
				}
				if _, ok := cfg.AuthInfos[n]; ok {
					delete(cfg.AuthInfos, n)
					mutated = true
				}
				if _, ok := cfg.Contexts[n]; ok {
					delete(cfg.Contexts, n)
					mutated = true
				}
				if cfg.CurrentContext == n {
					cfg.CurrentContext = ""
					mutated = true
				}
			}
			return mutated, nil
		})
		if err != nil {
			return changed, err
		}
		if mutated {
			changed = append(changed, path)
		}
	}
	return changed, nil
}

// LockWait is how long a merge waits for another writer's lock on the kubeconfig.
var LockWait = 10 * time.Second

// withLockedKubeconfig reads path (an empty config when it does not exist), lets edit change it, and
// writes it back (0600) when edit says so, under the lock client-go and kind take: path+".lock",
// created exclusively (waited for a few seconds, as another kubectl or mclab may hold it).
func withLockedKubeconfig(path string, edit func(*clientcmdapi.Config) (bool, error)) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	lock := path + ".lock"
	var f *os.File
	var err error
	for deadline := time.Now().Add(LockWait); ; time.Sleep(100 * time.Millisecond) {
		if f, err = os.OpenFile(lock, os.O_CREATE|os.O_EXCL, 0); err == nil || !errors.Is(err, os.ErrExist) || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("locking kubeconfig %s: %w (remove %s if no kubectl or mclab is writing it)", path, err, lock)
	}
	f.Close()
	defer os.Remove(lock)
	cfg := clientcmdapi.NewConfig()
	if data, err := os.ReadFile(path); err == nil {
		if cfg, err = clientcmd.Load(data); err != nil {
			return fmt.Errorf("kubeconfig %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	mutated, err := edit(cfg)
	if err != nil || !mutated {
		return err
	}
	return clientcmd.WriteToFile(*cfg, path)
}
