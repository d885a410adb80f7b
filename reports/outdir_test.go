package reports

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// userTree makes a directory of a user's own: a config with a password, an executable script, a
// symlink and a subfolder, as a repository's working tree has.
func userTree(t *testing.T) (string, map[string]string) {
	t.Helper()
	dir := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "config.yaml"), []byte("password: hunter2\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "run.sh"), []byte("#!/bin/sh\necho token=abc\n"), 0o755))
	must(os.Symlink("config.yaml", filepath.Join(dir, "link")))
	must(os.Mkdir(filepath.Join(dir, "src"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "src", "main.go"), []byte("package main\n"), 0o644))
	return dir, snapshot(t, dir)
}

// snapshot describes every entry under dir: mode, content or link target.
func snapshot(t *testing.T, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		desc := fi.Mode().String()
		switch {
		case fi.Mode()&os.ModeSymlink != 0:
			target, _ := os.Readlink(p)
			desc += " -> " + target
		case fi.Mode().IsRegular():
			data, _ := os.ReadFile(p)
			desc += " " + string(data)
		}
		out[p] = desc
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// A directory of user files is refused, naming what is there, and nothing in it changes: not the
// config (redaction would have rewritten its password), not the script's mode, not the symlink.
func TestClaimDirRefusesAUsersDirectoryAndChangesNothing(t *testing.T) {
	dir, before := userTree(t)
	_, err := ClaimDir(dir, "verify's reports")
	if !errors.Is(err, ErrNotOurs) || !strings.Contains(err.Error(), "config.yaml, link, run.sh, src/") || !strings.Contains(err.Error(), "give a new or empty directory") {
		t.Fatalf("want a refusal naming the files, got %v", err)
	}
	after := snapshot(t, dir)
	for p, d := range before {
		if after[p] != d {
			t.Errorf("%s changed: %q -> %q", p, d, after[p])
		}
	}
	if len(after) != len(before) {
		t.Errorf("entries added: %v", after)
	}
	file := filepath.Join(dir, "config.yaml")
	if _, err := ClaimDir(file, "verify's reports"); !errors.Is(err, ErrNotOurs) {
		t.Errorf("a file as the directory: %v", err)
	}
}

// A new or empty directory is claimed with the marker; a run redacts what it wrote. A later run reuses
// it and touches only its own files: an earlier run's file stays byte for byte.
func TestClaimDirNewEmptyAndReused(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "reports", "run1")
	d, err := ClaimDir(dir, "verify's reports")
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(filepath.Join(dir, Marker)); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("marker: %v %v", fi, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "junit.xml"), []byte("token: s3cr3t-value\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Redact(); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
	if strings.Contains(string(data), "s3cr3t") {
		t.Errorf("this run's file was not redacted: %s", data)
	}
	// An earlier run's file (as if written by an older mclab, unredacted) stays as it is.
	old := filepath.Join(dir, "old.txt")
	if err := os.WriteFile(old, []byte("password: left-alone\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	d2, err := ClaimDir(dir, "verify's reports")
	if err != nil {
		t.Fatalf("a directory with the marker must be reused: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ginkgo.json"), []byte(`{"token": "xyz-secret"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d2.Redact(); err != nil {
		t.Fatal(err)
	}
	if data, _ := os.ReadFile(old); string(data) != "password: left-alone\n" {
		t.Errorf("an earlier file was rewritten: %s", data)
	}
	if fi, _ := os.Stat(old); fi.Mode().Perm() != 0o640 {
		t.Errorf("an earlier file's mode changed: %v", fi.Mode())
	}
	if data, _ := os.ReadFile(filepath.Join(dir, "ginkgo.json")); strings.Contains(string(data), "xyz-secret") {
		t.Errorf("this run's JSON was not redacted: %s", data)
	}
	empty := t.TempDir()
	if _, err := ClaimDir(empty, "bench results"); err != nil {
		t.Errorf("an empty directory must be claimed: %v", err)
	}
}
