package release

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// PilotDiscoveryPath is where Istio's pilot image holds pilot-discovery (pilot/docker/Dockerfile.pilot).
const PilotDiscoveryPath = "usr/local/bin/pilot-discovery"

// Binary is a program taken from an image.
type Binary struct {
	// Image is the reference pulled, Digest the manifest digest it resolved to.
	Image, Digest string
	// Path is the verified program in the cache.
	Path string
}

// PilotDiscovery takes pilot-discovery from the pilot image ref (e.g. docker.io/istio/pilot:1.30.1):
// the manifest for this platform through the registry API, then the layers from the top down until one
// holds usr/local/bin/pilot-discovery. Every layer read is checked against its digest before its
// content is used; the program is cached as istio/pilot/<manifest digest>/pilot-discovery.
func (f *Fetcher) PilotDiscovery(ctx context.Context, ref string) (*Binary, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("pilot image %q: %w", ref, err)
	}
	img, err := remote.Image(r, remote.WithContext(ctx), remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return nil, fmt.Errorf("pulling %s: %w", ref, err)
	}
	digest, err := img.Digest()
	if err != nil {
		return nil, err
	}
	dst := filepath.Join(f.CacheDir, "istio", "pilot", digest.Hex[:16], "pilot-discovery")
	bin := &Binary{Image: ref, Digest: digest.String(), Path: dst}
	if _, err := os.Stat(dst); err == nil {
		return bin, nil
	}
	layers, err := img.Layers()
	if err != nil {
		return nil, fmt.Errorf("layers of %s: %w", ref, err)
	}
	for i := len(layers) - 1; i >= 0; i-- {
		found, err := f.extract(ref, layers[i], PilotDiscoveryPath, dst)
		if err != nil {
			return nil, err
		}
		if found {
			fmt.Fprintf(f.out(), "pilot-discovery from %s@%s (layer %d of %d, verified)\n", ref, digest, i+1, len(layers))
			return bin, nil
		}
	}
	return nil, fmt.Errorf("%s has no /%s: is it Istio's pilot image?", ref, PilotDiscoveryPath)
}

// extract reads layer l whole into a temporary file while hashing it, refuses it unless its sha256 is
// the layer's digest, and only then looks inside for file; found, it is written to dst (mode 0755).
func (f *Fetcher) extract(ref string, l v1.Layer, file, dst string) (bool, error) {
	want, err := l.Digest()
	if err != nil {
		return false, err
	}
	rc, err := l.Compressed()
	if err != nil {
		return false, fmt.Errorf("layer %s of %s: %w", want, ref, err)
	}
	defer rc.Close()
	tmp, err := os.CreateTemp("", "mclab-layer-*")
	if err != nil {
		return false, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	h := sha256.New()
	_, copyErr := io.Copy(io.MultiWriter(tmp, h), rc)
	got := "sha256:" + hex.EncodeToString(h.Sum(nil))
	if got != want.String() {
		return false, &ChecksumError{What: "layer of " + ref, URL: ref + "@" + want.String(), Want: want.String(), Got: got}
	}
	if copyErr != nil {
		return false, fmt.Errorf("layer %s of %s: %w", want, ref, copyErr)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return false, err
	}
	zr, err := gzip.NewReader(tmp)
	if err != nil {
		return false, fmt.Errorf("layer %s of %s: %w", want, ref, err)
	}
	tr := tar.NewReader(zr)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("layer %s of %s: %w", want, ref, err)
		}
		if strings.TrimPrefix(path.Clean("/"+hdr.Name), "/") != file || hdr.Typeflag != tar.TypeReg {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return false, err
		}
		out, err := os.CreateTemp(filepath.Dir(dst), ".partial-*")
		if err != nil {
			return false, err
		}
		_, err = io.Copy(out, tr)
		err = errors.Join(err, out.Close(), os.Chmod(out.Name(), 0o755))
		if err == nil {
			err = os.Rename(out.Name(), dst)
		}
		if err != nil {
			os.Remove(out.Name())
			return false, err
		}
		return true, nil
	}
}
