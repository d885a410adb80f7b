// Package images builds, on a machine with no registry, the container images a kind lab needs and
// cannot pull: Istio's pilot (from the same pilot-discovery the local provider runs), an agent-only
// proxyv2 (pilot-agent without Envoy, for Istio's proxyless gRPC template grpc-agent), Istio's echo
// app (server and client, for proxyless samples) and MetalLB's controller and speaker (the version
// fixtures/metallb names). Each image is a root filesystem of host files imported with `docker
// import`, tagged with the exact reference the manifests use, and labelled with a hash of its content,
// so an unchanged image is never rebuilt. Programs are built from pinned source: Istio's from
// lab/images/module (a Go module of its own, aligned with the local provider's pins so the Go build
// cache is shared), MetalLB's from its own module at its own pins.
package images

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	osexec "os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"time"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/exec"
)

//go:embed module/*.txt
var moduleFS embed.FS

// Hub and Tag of the Istio images built here; a kind lab with offline images renders Istio's charts
// with them (global.hub, global.tag).
const (
	Hub = "mclab.local/istio"
	Tag = "1.31-dev-offline"
)

// MetalLB is the MetalLB release fixtures/metallb names, and its images' repository there.
const (
	MetalLBVersion = "v0.14.3"
	metallbRepo    = "registry.istio.io/testing/metallb"
	metallbModule  = "go.universe.tf/metallb"
)

// Names of the images Offline builds.
const (
	Pilot             = "pilot"
	ProxyV2           = "proxyv2"
	Echo              = "app"
	MetalLBController = "metallb-controller"
	MetalLBSpeaker    = "metallb-speaker"
)

// Ref returns the reference of an image Offline builds.
func Ref(name string) string {
	switch name {
	case MetalLBController:
		return metallbRepo + "/controller:" + MetalLBVersion
	case MetalLBSpeaker:
		return metallbRepo + "/speaker:" + MetalLBVersion
	}
	return Hub + "/" + name + ":" + Tag
}

// All lists every image Offline can build.
var All = []string{Pilot, ProxyV2, Echo, MetalLBController, MetalLBSpeaker}

// program is a binary an image carries and where it is built from.
type program struct {
	name, pkg, ldflags string
	// metallb: built from MetalLB's module, statically; otherwise from lab/images/module (or, for
	// pilot-discovery, the local provider's binary set).
	metallb bool
}

// spec describes one image.
type spec struct {
	programs   []program
	entrypoint []string
	user       string
}

const istioLDFlags = "-X istio.io/istio/pkg/version.buildVersion=1.31-dev -X istio.io/istio/pkg/version.buildGitRevision=eed52ebb66ad -X istio.io/istio/pkg/version.buildStatus=Clean -X istio.io/istio/pkg/version.buildTag=1.31-dev -X istio.io/istio/pkg/version.buildHub=" + Hub

var specs = map[string]spec{
	// Istio's pilot image: ENTRYPOINT /usr/local/bin/pilot-discovery, user istio-proxy (pilot/docker/Dockerfile.pilot).
	Pilot: {programs: []program{{name: "pilot-discovery"}}, entrypoint: []string{"/usr/local/bin/pilot-discovery"}, user: "1337:1337"},
	// proxyv2 without Envoy: pilot-agent only (pilot/docker/Dockerfile.proxyv2 adds envoy, which cannot
	// be built here). Proxyless (grpc-agent) pods run it as their agent; a sidecar or gateway that
	// starts Envoy fails with pilot-agent's own error that /usr/local/bin/envoy is missing.
	ProxyV2: {programs: []program{{name: "pilot-agent", pkg: "istio.io/istio/pilot/cmd/pilot-agent", ldflags: istioLDFlags}}, entrypoint: []string{"/usr/local/bin/pilot-agent"}, user: "1337:1337"},
	// Istio's echo app, as its integration tests deploy it (pkg/test/echo; image "app").
	Echo: {programs: []program{
		{name: "server", pkg: "istio.io/istio/pkg/test/echo/cmd/server", ldflags: istioLDFlags},
		{name: "client", pkg: "istio.io/istio/pkg/test/echo/cmd/client", ldflags: istioLDFlags},
	}, entrypoint: []string{"/usr/local/bin/server"}, user: "1338:1338"},
	// MetalLB's images: ENTRYPOINT /controller and /speaker (MetalLB's controller/ and speaker/ Dockerfiles).
	MetalLBController: {programs: []program{{name: "controller", pkg: "./controller", metallb: true}}, entrypoint: []string{"/controller"}, user: "65534:65534"},
	MetalLBSpeaker:    {programs: []program{{name: "speaker", pkg: "./speaker", metallb: true}}, entrypoint: []string{"/speaker"}},
}

// ContentLabel holds the hash of an image's content.
const ContentLabel = "dev.mclab.image.content"

// Builder builds the images into the host's Docker.
type Builder struct {
	// CacheDir is mclab's cache root (binaries are built under it).
	CacheDir string
	// Runner runs docker.
	Runner exec.Runner
	// Binaries gives the local provider's programs (pilot-discovery).
	Binaries *binaries.Builder
	// Out receives progress lines.
	Out io.Writer
}

// Ensure builds the named images that are missing or out of date and returns their references.
func (b *Builder) Ensure(ctx context.Context, names ...string) ([]string, error) {
	var refs []string
	for _, name := range names {
		sp, ok := specs[name]
		if !ok {
			return nil, fmt.Errorf("no offline image %q (have %s)", name, strings.Join(All, ", "))
		}
		ref := Ref(name)
		start := time.Now()
		files, err := b.files(ctx, sp)
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		hash, err := contentHash(ref, sp, files)
		if err != nil {
			return nil, err
		}
		if out, err := b.Runner.Run(ctx, "docker", "image", "inspect", "--format", `{{ index .Config.Labels "`+ContentLabel+`" }}`, ref); err == nil && strings.TrimSpace(string(out)) == hash {
			fmt.Fprintf(b.Out, " ✓ image %s is up to date\n", ref)
			refs = append(refs, ref)
			continue
		}
		if err := b.importImage(ctx, ref, sp, files, hash); err != nil {
			return nil, fmt.Errorf("image %s: %w", ref, err)
		}
		fmt.Fprintf(b.Out, " ✓ built image %s (%s)\n", ref, time.Since(start).Round(time.Second))
		refs = append(refs, ref)
	}
	return refs, nil
}

// file is one entry of an image's root filesystem: a host file (followed through symlinks) or data.
type file struct {
	path   string
	source string
	data   []byte
	mode   int64
	dir    bool
}

// files lists the image's root filesystem: its programs in /usr/local/bin (MetalLB's at /), the shared
// libraries they link (from the host, where they were built), and a minimal /etc and /tmp.
func (b *Builder) files(ctx context.Context, sp spec) ([]file, error) {
	fs := []file{
		{path: "etc/passwd", data: []byte("root:x:0:0:root:/root:/sbin/nologin\nistio-proxy:x:1337:1337:istio-proxy:/home/istio-proxy:/sbin/nologin\necho:x:1338:1338::/home/echo:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"), mode: 0o644},
		{path: "etc/group", data: []byte("root:x:0:\nistio-proxy:x:1337:\necho:x:1338:\nnogroup:x:65534:\n"), mode: 0o644},
		{path: "tmp", dir: true, mode: 0o1777},
		{path: "home/istio-proxy", dir: true, mode: 0o777},
		{path: "var/lib/istio/data", dir: true, mode: 0o777},
		{path: "etc/istio/proxy", dir: true, mode: 0o777},
	}
	if _, err := os.Stat("/etc/ssl/certs/ca-certificates.crt"); err == nil {
		fs = append(fs, file{path: "etc/ssl/certs/ca-certificates.crt", source: "/etc/ssl/certs/ca-certificates.crt", mode: 0o644})
	}
	libs := map[string]bool{}
	for _, p := range sp.programs {
		bin, err := b.program(ctx, p)
		if err != nil {
			return nil, err
		}
		dest := "usr/local/bin/" + p.name
		if p.metallb {
			dest = p.name
		}
		fs = append(fs, file{path: dest, source: bin, mode: 0o755})
		deps, err := sharedLibraries(ctx, bin)
		if err != nil {
			return nil, err
		}
		for _, d := range deps {
			libs[d] = true
		}
	}
	var sorted []string
	for l := range libs {
		sorted = append(sorted, l)
	}
	sort.Strings(sorted)
	for _, l := range sorted {
		fs = append(fs, file{path: strings.TrimPrefix(l, "/"), source: l, mode: 0o755})
	}
	return fs, nil
}

var lddRE = regexp.MustCompile(`(?m)(/\S+) \(0x[0-9a-f]+\)$`)

// sharedLibraries lists the libraries a dynamically linked program loads (ldd), as absolute paths;
// none for a static one.
func sharedLibraries(ctx context.Context, bin string) ([]string, error) {
	out, err := osexec.CommandContext(ctx, "ldd", bin).CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "not a dynamic executable") || strings.Contains(string(out), "statically linked") {
			return nil, nil
		}
		return nil, fmt.Errorf("ldd %s: %v: %s", bin, err, out)
	}
	var libs []string
	for _, m := range lddRE.FindAllStringSubmatch(string(out), -1) {
		libs = append(libs, m[1])
	}
	return libs, nil
}

// contentHash is a hash of everything the image holds and how it starts.
func contentHash(ref string, sp spec, files []file) (string, error) {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%q\n%s\n", ref, sp.entrypoint, sp.user)
	for _, f := range files {
		fmt.Fprintf(h, "%s %o %v\n", f.path, f.mode, f.dir)
		switch {
		case f.data != nil:
			h.Write(f.data)
		case f.source != "":
			in, err := os.Open(f.source)
			if err != nil {
				return "", err
			}
			_, err = io.Copy(h, in)
			in.Close()
			if err != nil {
				return "", err
			}
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:24], nil
}

// importImage writes the root filesystem as a tar and imports it into Docker with the entrypoint,
// user and content label.
func (b *Builder) importImage(ctx context.Context, ref string, sp spec, files []file, hash string) error {
	dir, err := os.MkdirTemp("", "mclab-image-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "rootfs.tar")
	if err := writeTar(path, files); err != nil {
		return err
	}
	entry := `ENTRYPOINT ["` + strings.Join(sp.entrypoint, `", "`) + `"]`
	args := []string{"import", "--change", entry, "--change", "LABEL " + ContentLabel + "=" + hash}
	if sp.user != "" {
		args = append(args, "--change", "USER "+sp.user)
	}
	args = append(args, path, ref)
	if out, err := b.Runner.Run(ctx, "docker", args...); err != nil {
		return fmt.Errorf("docker import: %w (%s)", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func writeTar(path string, files []file) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	dirs := map[string]bool{}
	mkdirs := func(p string) error {
		parts := strings.Split(filepath.Dir(p), "/")
		for i := range parts {
			d := strings.Join(parts[:i+1], "/")
			if d == "." || d == "" || dirs[d] {
				continue
			}
			dirs[d] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: time.Unix(0, 0)}); err != nil {
				return err
			}
		}
		return nil
	}
	for _, fl := range files {
		if err := mkdirs(fl.path); err != nil {
			return err
		}
		if fl.dir {
			dirs[fl.path] = true
			if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: fl.path + "/", Mode: fl.mode, ModTime: time.Unix(0, 0)}); err != nil {
				return err
			}
			continue
		}
		data := fl.data
		if data == nil {
			if data, err = os.ReadFile(fl.source); err != nil {
				return err
			}
		}
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: fl.path, Mode: fl.mode, Size: int64(len(data)), ModTime: time.Unix(0, 0)}); err != nil {
			return err
		}
		if _, err := tw.Write(data); err != nil {
			return err
		}
	}
	return tw.Close()
}

// program returns the path of a built program, building it when the cache does not hold it.
func (b *Builder) program(ctx context.Context, p program) (string, error) {
	if p.name == "pilot-discovery" {
		set, err := b.Binaries.Ensure(ctx)
		if err != nil {
			return "", err
		}
		return set.Path("pilot-discovery"), nil
	}
	if p.metallb {
		return b.buildMetalLB(ctx, p)
	}
	return b.buildIstio(ctx, p)
}

// moduleKey identifies lab/images/module's build.
func moduleKey(goVersion string) string {
	h := sha256.New()
	for _, n := range []string{"go.mod", "go.sum", "tools.go"} {
		data, _ := moduleFS.ReadFile("module/" + n + ".txt")
		h.Write(data)
	}
	fmt.Fprintf(h, "%s %s\n", goVersion, istioLDFlags)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

func goVersion(ctx context.Context) (string, error) {
	out, err := osexec.CommandContext(ctx, "go", "env", "GOVERSION").Output()
	if err != nil {
		return "", fmt.Errorf("building the offline images needs Go on PATH: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// buildIstio builds an Istio program from lab/images/module, with the flags and environment of the
// local provider's build (cgo as inherited, -trimpath), so the Go build cache is shared.
func (b *Builder) buildIstio(ctx context.Context, p program) (string, error) {
	gv, err := goVersion(ctx)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.CacheDir, "images", "istio-"+moduleKey(gv))
	out := filepath.Join(dir, "bin", p.name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	for _, n := range []string{"go.mod", "go.sum", "tools.go"} {
		data, err := moduleFS.ReadFile("module/" + n + ".txt")
		if err != nil {
			return "", err
		}
		if err := os.WriteFile(filepath.Join(src, n), data, 0o644); err != nil {
			return "", err
		}
	}
	return out, b.goBuild(ctx, src, out, p.pkg, p.ldflags, "GOWORK=off", "GOFLAGS=-buildvcs=false")
}

// buildMetalLB builds a MetalLB program from its own module at MetalLBVersion (its own pins), static.
func (b *Builder) buildMetalLB(ctx context.Context, p program) (string, error) {
	gv, err := goVersion(ctx)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(b.CacheDir, "images", "metallb-"+MetalLBVersion+"-"+strings.ReplaceAll(gv, " ", "_"))
	out := filepath.Join(dir, "bin", p.name)
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	// The proxy's checksum database does not serve go.universe.tf: the module is verified against
	// the go.sum it ships instead, and its dependencies against the checksum database as usual.
	env := []string{"GOWORK=off", "GOFLAGS=-mod=mod -buildvcs=false", "GONOSUMDB=go.universe.tf", "GONOSUMCHECK=1", "CGO_ENABLED=0"}
	dl := osexec.CommandContext(ctx, "go", "mod", "download", "-json", metallbModule+"@"+MetalLBVersion)
	dl.Env = append(os.Environ(), env...)
	dl.Dir = os.TempDir()
	info, err := dl.Output()
	if err != nil {
		return "", fmt.Errorf("downloading %s@%s: %w", metallbModule, MetalLBVersion, err)
	}
	m := regexp.MustCompile(`"Dir": "([^"]+)"`).FindStringSubmatch(string(info))
	if m == nil {
		return "", fmt.Errorf("downloading %s@%s: no module directory in %s", metallbModule, MetalLBVersion, info)
	}
	src := filepath.Join(dir, "src")
	if _, err := os.Stat(filepath.Join(src, "go.mod")); err != nil {
		_ = os.RemoveAll(src)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return "", err
		}
		if out, err := osexec.CommandContext(ctx, "cp", "-r", m[1], src).CombinedOutput(); err != nil {
			return "", fmt.Errorf("copying %s: %v %s", m[1], err, out)
		}
		if out, err := osexec.CommandContext(ctx, "chmod", "-R", "u+w", src).CombinedOutput(); err != nil {
			return "", fmt.Errorf("chmod %s: %v %s", src, err, out)
		}
	}
	return out, b.goBuild(ctx, src, out, p.pkg, "-s -w", env...)
}

func (b *Builder) goBuild(ctx context.Context, src, out, pkg, ldflags string, env ...string) error {
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	start := time.Now()
	fmt.Fprintf(b.Out, " • building %s from %s ...\n", filepath.Base(out), pkg)
	// A name of this build's own: two ups on a cold cache may build the same program at once.
	tmp := fmt.Sprintf("%s.tmp-%d-%d", out, os.Getpid(), time.Now().UnixNano())
	defer os.Remove(tmp)
	cmd := osexec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", ldflags, "-o", tmp, pkg)
	cmd.Dir = src
	cmd.Env = append(os.Environ(), env...)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	combined, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("building %s: %w\n%s", pkg, err, tailOf(combined, 2000))
	}
	fmt.Fprintf(b.Out, " ✓ built %s (%s)\n", filepath.Base(out), time.Since(start).Round(time.Second))
	return os.Rename(tmp, out)
}

func tailOf(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
