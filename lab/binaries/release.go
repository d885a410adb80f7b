package binaries

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"mclab.dev/mclab/lab/fetch"
)

// Where the upstream programs come from (Builder.From, `mclab tools --from`, $MCLAB_UPSTREAM_FROM).
const (
	// FromSource builds every program from the pinned upstream source (offline through a Go module
	// proxy; the default).
	FromSource = "source"
	// FromRelease downloads Kubernetes, etcd and kwok from their official release artifacts, each
	// checked against its published sha256; pilot-discovery of the built-in Istio is still built from
	// source (a published Istio release's comes from its pilot image, per lab).
	FromRelease = "release"
)

// EnvFrom chooses FromSource or FromRelease when Builder.From is empty.
const EnvFrom = "MCLAB_UPSTREAM_FROM"

// ReleaseArtifacts are the base URLs of the official release artifacts (kwok's own defaults,
// sigs.k8s.io/kwok pkg/consts: KubeBinaryPrefix, EtcdBinaryPrefix, BinaryPrefix).
type ReleaseArtifacts struct {
	// Kubernetes: <Kubernetes>/<version>/bin/<os>/<arch>/<program>, with <program>.sha256 beside it.
	Kubernetes string
	// Etcd: <Etcd>/<version>/etcd-<version>-<os>-<arch>.tar.gz, sums in <Etcd>/<version>/SHA256SUMS.
	Etcd string
	// Kwok: <Kwok>/<version>/kwok-<os>-<arch>; kwok publishes no checksum file, so the digest is the
	// one GitHub's releases API publishes for the asset (<KwokAPI>/<version>: assets[].digest).
	Kwok, KwokAPI string
}

// DefaultReleaseArtifacts are the official locations.
var DefaultReleaseArtifacts = ReleaseArtifacts{
	Kubernetes: "https://dl.k8s.io/release",
	Etcd:       "https://github.com/etcd-io/etcd/releases/download",
	Kwok:       "https://github.com/kubernetes-sigs/kwok/releases/download",
	KwokAPI:    "https://api.github.com/repos/kubernetes-sigs/kwok/releases/tags",
}

// Released are the programs FromRelease downloads.
var Released = []string{"kube-apiserver", "kube-controller-manager", "kube-scheduler", "etcd", "kwok"}

// artifact is one program's download: where, how its digest is published, what to take out of it.
type artifact struct {
	program, url string
	digest       func(ctx context.Context) (string, error)
	// member is the file inside a .tar.gz to take ("" for a bare binary).
	member string
}

func (r ReleaseArtifacts) artifacts(c *http.Client, goos, goarch string) []artifact {
	kv, ev, wv := Versions["kubernetes"], Versions["etcd"], Versions["kwok"]
	var out []artifact
	for _, p := range Released[:3] {
		u := fmt.Sprintf("%s/%s/bin/%s/%s/%s", strings.TrimSuffix(r.Kubernetes, "/"), kv, goos, goarch, p)
		out = append(out, artifact{program: p, url: u, digest: func(ctx context.Context) (string, error) {
			b, err := fetch.Get(ctx, c, u+".sha256")
			if err != nil {
				return "", err
			}
			f := strings.Fields(string(b))
			if len(f) == 0 || len(f[0]) != 64 {
				return "", fmt.Errorf("%s.sha256 holds no sha256", u)
			}
			return f[0], nil
		}})
	}
	etcdDir := fmt.Sprintf("etcd-%s-%s-%s", ev, goos, goarch)
	eu := fmt.Sprintf("%s/%s/%s.tar.gz", strings.TrimSuffix(r.Etcd, "/"), ev, etcdDir)
	out = append(out, artifact{program: "etcd", url: eu, member: etcdDir + "/etcd", digest: func(ctx context.Context) (string, error) {
		sums := fmt.Sprintf("%s/%s/SHA256SUMS", strings.TrimSuffix(r.Etcd, "/"), ev)
		b, err := fetch.Get(ctx, c, sums)
		if err != nil {
			return "", err
		}
		return sumFor(b, path.Base(eu), sums)
	}})
	wname := fmt.Sprintf("kwok-%s-%s", goos, goarch)
	wu := fmt.Sprintf("%s/%s/%s", strings.TrimSuffix(r.Kwok, "/"), wv, wname)
	out = append(out, artifact{program: "kwok", url: wu, digest: func(ctx context.Context) (string, error) {
		api := fmt.Sprintf("%s/%s", strings.TrimSuffix(r.KwokAPI, "/"), wv)
		b, err := fetch.Get(ctx, c, api)
		if err != nil {
			return "", err
		}
		var rel struct {
			Assets []struct {
				Name   string `json:"name"`
				Digest string `json:"digest"`
			} `json:"assets"`
		}
		if err := json.Unmarshal(b, &rel); err != nil {
			return "", fmt.Errorf("%s: %w", api, err)
		}
		for _, a := range rel.Assets {
			if a.Name == wname && a.Digest != "" {
				return a.Digest, nil
			}
		}
		return "", fmt.Errorf("%s publishes no digest for %s", api, wname)
	}})
	return out
}

// sumFor finds file's sum in a sha256sum-format list.
func sumFor(list []byte, file, from string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.TrimPrefix(f[1], "*") == file && len(f[0]) == 64 {
			return f[0], nil
		}
	}
	return "", fmt.Errorf("%s lists no sha256 for %s", from, file)
}

// FetchReleases downloads the Released programs into dir, each verified against its published digest
// before it is kept; a program already in dir is kept. Out gets one line per program.
func (r ReleaseArtifacts) FetchReleases(ctx context.Context, c *http.Client, dir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	for _, a := range r.artifacts(c, runtime.GOOS, runtime.GOARCH) {
		dst := filepath.Join(dir, a.program)
		if st, err := os.Stat(dst); err == nil && st.Mode()&0o111 != 0 {
			continue
		}
		want, err := a.digest(ctx)
		if err != nil {
			return fmt.Errorf("%s: the published checksum: %w", a.program, err)
		}
		target := dst
		if a.member != "" {
			target = dst + ".tar.gz"
		}
		if err := fetch.Verified(ctx, c, a.program+" "+path.Base(a.url), a.url, want, target, 0o755); err != nil {
			return err
		}
		if a.member != "" {
			err := extractMember(target, a.member, dst)
			os.Remove(target)
			if err != nil {
				return fmt.Errorf("%s from %s: %w", a.program, a.url, err)
			}
		}
		fmt.Fprintf(out, " ✓ %s from %s (sha256:%s, verified)\n", a.program, a.url, fetch.Normalize(want)[7:])
	}
	return nil
}

// extractMember takes one regular file out of a .tar.gz into dst (mode 0755), through a temporary file.
func extractMember(archive, member, dst string) error {
	f, err := os.Open(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return err
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("no %s in the archive", member)
		}
		if err != nil {
			return err
		}
		if path.Clean(h.Name) != member || h.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			return err
		}
		return fetch.WriteAtomic(dst, data, 0o755)
	}
}

// releaseKey names a release set: the versions, the artifact locations and the platform.
func releaseKey(r ReleaseArtifacts, goVersion string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s %s %s %s %s %s %s/%s\n", Versions["kubernetes"], Versions["etcd"], Versions["kwok"], r.Kubernetes, r.Etcd, r.Kwok, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(h, "pilot %s\n", Key(goVersion))
	return hex.EncodeToString(h.Sum(nil))[:16]
}
