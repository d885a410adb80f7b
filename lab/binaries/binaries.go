// Package binaries builds the upstream programs the local provider runs (kube-apiserver,
// kube-controller-manager, kube-scheduler, etcd, kwok, pilot-discovery) from the pinned upstream
// module in lab/upstream, through the Go module proxy, into a cache shared by every lab. A build is done
// once per pin set (the cache key hashes the module files and the Go version) and reused after.
package binaries

import (
	"context"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	osexec "os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"mclab.dev/mclab/lab/plan"
)

// The upstream module's files, copied verbatim from lab/upstream (a test keeps them equal). They are
// embedded so an installed mclab can build without its source tree; the module itself lives in
// lab/upstream so that its dependency graph never reaches mclab's go.mod.
//
//go:embed module/go.mod.txt module/go.sum.txt module/tools.go.txt
var moduleFS embed.FS

// Program is one upstream program.
type Program struct {
	// Name is the binary's file name.
	Name string
	// Package is the Go package that builds it.
	Package string
	// LDFlags stamp the version the upstream release process would (so /version and istiod's build
	// info tell the truth).
	LDFlags string
}

const (
	kubeLDFlags = "-X k8s.io/component-base/version.gitVersion=v1.37.2 -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=37 -X k8s.io/component-base/version.gitTreeState=clean"
	// The pinned istio.io/istio is master at eed52ebb66ad, between 1.30 and 1.31.
	istioLDFlags = "-X istio.io/istio/pkg/version.buildVersion=1.31-dev -X istio.io/istio/pkg/version.buildGitRevision=eed52ebb66ad -X istio.io/istio/pkg/version.buildStatus=Clean -X istio.io/istio/pkg/version.buildTag=1.31-dev -X istio.io/istio/pkg/version.buildHub=registry.istio.io/testing"
)

// Programs are the programs built, in build order (kube-apiserver first: it compiles most of the rest).
var Programs = []Program{
	{"kube-apiserver", "k8s.io/kubernetes/cmd/kube-apiserver", kubeLDFlags},
	{"kube-controller-manager", "k8s.io/kubernetes/cmd/kube-controller-manager", kubeLDFlags},
	{"kube-scheduler", "k8s.io/kubernetes/cmd/kube-scheduler", kubeLDFlags},
	{"etcd", "go.etcd.io/etcd/server/v3", ""},
	{"kwok", "sigs.k8s.io/kwok/cmd/kwok", ""},
	{"pilot-discovery", "istio.io/istio/pilot/cmd/pilot-discovery", istioLDFlags},
}

// Versions are the pinned upstream versions, for `mclab version` and reports.
var Versions = map[string]string{
	"kubernetes": "v1.37.2",
	"etcd":       "v3.7.0",
	"kwok":       "v0.8.0",
	"istio":      "v0.0.0-20260827124520-eed52ebb66ad (master, 1.31-dev)",
}

// EnvBinDir points mclab at a directory of prebuilt binaries instead of the cache.
const EnvBinDir = "MCLAB_BIN_DIR"

// Set is a directory holding every program.
type Set struct {
	// Dir holds one executable per Program.
	Dir string
}

// Path is the path of the named program.
func (s Set) Path(name string) string { return filepath.Join(s.Dir, name) }

// Missing lists the programs not present in the set.
func (s Set) Missing() []string {
	var out []string
	for _, p := range Programs {
		if st, err := os.Stat(s.Path(p.Name)); err != nil || st.Mode()&0o111 == 0 {
			out = append(out, p.Name)
		}
	}
	return out
}

// DefaultCacheDir is $MCLAB_CACHE_DIR, else the user cache dir ($XDG_CACHE_HOME or ~/.cache) + /mclab.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("MCLAB_CACHE_DIR"); d != "" {
		return filepath.Abs(d)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache directory: %w; set MCLAB_CACHE_DIR", err)
	}
	return filepath.Join(d, "mclab"), nil
}

// Key identifies a build: a hash of the upstream module's files, the Go version and the platform.
func Key(goVersion string) string {
	h := sha256.New()
	_ = fs.WalkDir(moduleFS, "module", func(path string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			data, _ := moduleFS.ReadFile(path)
			fmt.Fprintf(h, "%s %d\n", path, len(data))
			h.Write(data)
		}
		return nil
	})
	for _, p := range Programs {
		fmt.Fprintf(h, "%s %s %s\n", p.Name, p.Package, p.LDFlags)
	}
	fmt.Fprintf(h, "%s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// Measured figures of a cold build (empty Go build and module caches) on a clean 2-core machine, used
// for the progress estimate.
const (
	ColdBuild          = 15*time.Minute + 19*time.Second
	ColdBuildAPIServer = 5*time.Minute + 54*time.Second
)

// Builder builds and caches the upstream programs.
type Builder struct {
	// CacheDir is the shared cache root.
	CacheDir string
	// Go is the go command (default "go" on PATH).
	Go string
	// Out receives progress lines.
	Out io.Writer
	// From is FromSource or FromRelease (default $MCLAB_UPSTREAM_FROM, else FromSource).
	From string
	// Artifacts are the release artifacts' locations (default DefaultReleaseArtifacts).
	Artifacts *ReleaseArtifacts
	// HTTP downloads release artifacts (default http.DefaultClient).
	HTTP *http.Client
}

func (b *Builder) from() (string, error) {
	f := b.From
	if f == "" {
		f = os.Getenv(EnvFrom)
	}
	switch f {
	case "", FromSource:
		return FromSource, nil
	case FromRelease:
		return FromRelease, nil
	}
	return "", fmt.Errorf("upstream programs from %q: use %s (build from pinned source) or %s (official release artifacts, checksums verified)", f, FromSource, FromRelease)
}

func (b *Builder) artifacts() ReleaseArtifacts {
	if b.Artifacts != nil {
		return *b.Artifacts
	}
	return DefaultReleaseArtifacts
}

// Ensure returns the set of programs, building it first when the cache does not hold it. A set in
// $MCLAB_BIN_DIR is used as it is. Builds are serialized across processes by a lock in the cache.
func (b *Builder) Ensure(ctx context.Context) (Set, error) {
	if d := os.Getenv(EnvBinDir); d != "" {
		s := Set{Dir: d}
		if m := s.Missing(); len(m) > 0 {
			return s, fmt.Errorf("%s=%s lacks %s; unset it to build them, or put the binaries there", EnvBinDir, d, strings.Join(m, ", "))
		}
		return s, nil
	}
	goCmd, goVersion, err := b.goVersion(ctx)
	if err != nil {
		return Set{}, err
	}
	from, err := b.from()
	if err != nil {
		return Set{}, err
	}
	dir := filepath.Join(b.CacheDir, "upstream", Key(goVersion))
	set := Set{Dir: filepath.Join(dir, "bin")}
	if len(set.Missing()) == 0 {
		return set, nil
	}
	// A set of release artifacts made earlier (`mclab tools --from release`) serves as well.
	rdir := filepath.Join(b.CacheDir, "release", releaseKey(b.artifacts(), goVersion))
	if rset := (Set{Dir: filepath.Join(rdir, "bin")}); len(rset.Missing()) == 0 || from == FromRelease {
		if len(rset.Missing()) == 0 {
			return rset, nil
		}
		dir, set = rdir, rset
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return set, err
	}
	unlock, err := lock(ctx, filepath.Join(dir, ".lock"))
	if err != nil {
		return set, err
	}
	defer unlock()
	if len(set.Missing()) == 0 { // another mclab built it while we waited
		return set, nil
	}
	if from == FromRelease {
		staging := filepath.Join(dir, "bin.partial")
		fmt.Fprintf(b.Out, "Fetching Kubernetes %s, etcd %s and kwok %s from their release artifacts (checksums verified) into %s\n", Versions["kubernetes"], Versions["etcd"], Versions["kwok"], set.Dir)
		if err := b.artifacts().FetchReleases(ctx, b.HTTP, staging, b.Out); err != nil {
			return set, err
		}
	}
	return set, b.build(ctx, goCmd, dir, set)
}

// CacheKey is the key of the set Ensure would use: the pins, the programs and their flags, and the Go
// version (a CI cache keyed on it is reused exactly when mclab would reuse its own).
func (b *Builder) CacheKey(ctx context.Context) (string, error) {
	_, goVersion, err := b.goVersion(ctx)
	if err != nil {
		return "", err
	}
	return Key(goVersion), nil
}

func (b *Builder) goVersion(ctx context.Context) (string, string, error) {
	goCmd := b.Go
	if goCmd == "" {
		goCmd = "go"
	}
	path, err := osexec.LookPath(goCmd)
	if err != nil {
		return "", "", fmt.Errorf("the local provider builds Kubernetes, etcd, kwok and istiod from source and needs Go 1.26+ on PATH (%w); install Go, or point %s at prebuilt binaries", err, EnvBinDir)
	}
	out, err := osexec.CommandContext(ctx, path, "env", "GOVERSION").Output()
	if err != nil {
		return "", "", fmt.Errorf("%s env GOVERSION: %w", path, err)
	}
	return path, strings.TrimSpace(string(out)), nil
}

func (b *Builder) build(ctx context.Context, goCmd, dir string, set Set) error {
	src := filepath.Join(dir, "src")
	if err := writeModule(src); err != nil {
		return err
	}
	staging := filepath.Join(dir, "bin.partial")
	if err := os.MkdirAll(staging, 0o755); err != nil {
		return err
	}
	fmt.Fprintf(b.Out, "Building the upstream binaries once into %s (a cold build took %s on 2 cores, kube-apiserver alone %s; `make tools` does this ahead)\n",
		set.Dir, ColdBuild, ColdBuildAPIServer)
	total := time.Now()
	st := plan.NewStatus(b.Out)
	for i, p := range Programs {
		out := filepath.Join(staging, p.Name)
		if _, err := os.Stat(out); err == nil {
			fmt.Fprintf(b.Out, " ✓ %s (%d/%d) already there\n", p.Name, i+1, len(Programs))
			continue
		}
		left := "about " + (ColdBuild - time.Since(total)).Round(time.Minute).String() + " left if the cache is cold"
		if time.Since(total) >= ColdBuild {
			left = "longer than the measured cold build"
		}
		st.Start(fmt.Sprintf("building %s (%d/%d) from %s; %s", p.Name, i+1, len(Programs), p.Package, left))
		cmd := osexec.CommandContext(ctx, goCmd, "build", "-trimpath", "-ldflags", p.LDFlags, "-o", out+".tmp", p.Package)
		cmd.Dir = src
		cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-buildvcs=false")
		cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
		combined, err := cmd.CombinedOutput()
		st.End(err == nil)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("building %s interrupted: %w", p.Name, context.Cause(ctx))
			}
			return fmt.Errorf("building %s failed: %w\n%s\nthe build needs the Go module proxy; check GOPROXY and the network", p.Name, err, tail(combined, 2000))
		}
		if err := os.Rename(out+".tmp", out); err != nil {
			return err
		}
	}
	_ = os.RemoveAll(set.Dir)
	if err := os.Rename(staging, set.Dir); err != nil {
		return err
	}
	fmt.Fprintf(b.Out, "Upstream binaries ready in %s\n", time.Since(total).Round(time.Second))
	return nil
}

func writeModule(dst string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	for _, name := range []string{"go.mod", "go.sum", "tools.go"} {
		data, err := moduleFS.ReadFile("module/" + name + ".txt")
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dst, name), data, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func tail(b []byte, n int) string {
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func lock(ctx context.Context, path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, err
	}
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, err
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, context.Cause(ctx)
		case <-time.After(time.Second):
		}
	}
}
