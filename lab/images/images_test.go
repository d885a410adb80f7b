package images

import (
	"archive/tar"
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRefsMatchTheManifests(t *testing.T) {
	manifest, err := os.ReadFile("../../fixtures/metallb/metallb-native.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{MetalLBController, MetalLBSpeaker} {
		if !strings.Contains(string(manifest), "image: "+Ref(n)+"\n") {
			t.Errorf("fixtures/metallb names no image %s", Ref(n))
		}
	}
	if Ref(Pilot) != "mclab.local/istio/pilot:1.31-dev-offline" || Ref(ProxyV2) != "mclab.local/istio/proxyv2:1.31-dev-offline" {
		t.Errorf("istio refs: %s %s", Ref(Pilot), Ref(ProxyV2))
	}
}

// The libraries ldd reports for a cgo binary are what the image needs besides it (ldd's own format).
func TestSharedLibrariesOfThisHostsSh(t *testing.T) {
	libs, err := sharedLibraries(context.Background(), "/bin/sh")
	if err != nil {
		t.Fatal(err)
	}
	joined := strings.Join(libs, " ")
	if !strings.Contains(joined, "libc.so.6") || !strings.Contains(joined, "ld-linux") {
		t.Errorf("libraries of /bin/sh: %v", libs)
	}
	static := filepath.Join(t.TempDir(), "static")
	if err := os.WriteFile(static, []byte("#!/bin/true\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if libs, err := sharedLibraries(context.Background(), static); err != nil || len(libs) != 0 {
		t.Errorf("a non-ELF file: %v %v", libs, err)
	}
}

func TestRootFilesystemAndContentHash(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "prog")
	if err := os.WriteFile(bin, []byte("v1"), 0o755); err != nil {
		t.Fatal(err)
	}
	files := []file{{path: "etc/passwd", data: []byte("root:x:0:0::/:/sbin/nologin\n"), mode: 0o644}, {path: "tmp", dir: true, mode: 0o1777}, {path: "usr/local/bin/prog", source: bin, mode: 0o755}}
	sp := spec{entrypoint: []string{"/usr/local/bin/prog"}, user: "1337:1337"}
	h1, err := contentHash("x/y:z", sp, files)
	if err != nil {
		t.Fatal(err)
	}
	if h2, _ := contentHash("x/y:z", sp, files); h1 != h2 {
		t.Errorf("hash not stable: %s %s", h1, h2)
	}
	if err := os.WriteFile(bin, []byte("v2"), 0o755); err != nil {
		t.Fatal(err)
	}
	if h3, _ := contentHash("x/y:z", sp, files); h3 == h1 {
		t.Errorf("a changed program must change the hash")
	}
	out := filepath.Join(dir, "rootfs.tar")
	if err := writeTar(out, files); err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(out)
	defer f.Close()
	tr := tar.NewReader(f)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		if h.Name == "tmp/" && h.Mode != 0o1777 {
			t.Errorf("/tmp mode %o", h.Mode)
		}
	}
	if got := strings.Join(names, ","); got != "etc/,etc/passwd,tmp/,usr/,usr/local/,usr/local/bin/,usr/local/bin/prog" {
		t.Errorf("entries %s", got)
	}
}
