package binaries

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// TestEmbeddedModuleMatchesLabUpstream keeps the embedded copy of the upstream module equal to
// lab/upstream, the module developers edit (`make sync-upstream` copies it).
func TestEmbeddedModuleMatchesLabUpstream(t *testing.T) {
	for _, name := range []string{"go.mod", "go.sum", "tools.go"} {
		want, err := os.ReadFile(filepath.Join("..", "upstream", name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := moduleFS.ReadFile("module/" + name + ".txt")
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("lab/binaries/module/%s.txt differs from lab/upstream/%s; run `make sync-upstream`", name, name)
		}
	}
}

func TestKeyChangesWithGoVersion(t *testing.T) {
	if Key("go1.26.8") == Key("go1.26.9") {
		t.Error("the cache key must change with the Go version")
	}
	if Key("go1.26.8") != Key("go1.26.8") {
		t.Error("the cache key must be stable")
	}
}

func TestBinDirOverride(t *testing.T) {
	dir := t.TempDir()
	t.Setenv(EnvBinDir, dir)
	b := &Builder{CacheDir: t.TempDir(), Out: &bytes.Buffer{}}
	if _, err := b.Ensure(t.Context()); err == nil {
		t.Fatal("an empty MCLAB_BIN_DIR must be refused, naming what is missing")
	}
	for _, p := range Programs {
		if err := os.WriteFile(filepath.Join(dir, p.Name), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	set, err := b.Ensure(t.Context())
	if err != nil || set.Dir != dir {
		t.Fatalf("Ensure = %v, %v", set, err)
	}
}
