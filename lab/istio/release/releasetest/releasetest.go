// Package releasetest serves Istio "releases" the way Istio publishes them, from servers a test
// starts on loopback (this machine has no internet): a Helm chart repository (index.yaml with sha256
// digests, packaged base, istiod and gateway charts, as istio-release.storage.googleapis.com/charts) and
// an OCI registry (go-containerregistry's registry) holding a pilot image whose layer carries a
// pilot-discovery. Both can be made to serve tampered bytes, to test that they are refused.
package releasetest

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/provenance"
	"helm.sh/helm/v3/pkg/repo"

	"mclab.dev/mclab/lab/istio"
)

// ChartRepo is a Helm chart repository of Istio's built-in charts packaged as release versions.
type ChartRepo struct {
	*httptest.Server
	dir      string
	mu       sync.Mutex
	tampered map[string]bool
	// Requests counts the requests served, by path.
	Requests map[string]int
}

// NewChartRepo packages the built-in base, istiod and gateway charts as each version (chart version
// and appVersion set to it) and serves them with their index.
func NewChartRepo(versions ...string) (*ChartRepo, error) {
	dir, err := os.MkdirTemp("", "mclab-chartrepo-")
	if err != nil {
		return nil, err
	}
	r := &ChartRepo{dir: dir, tampered: map[string]bool{}, Requests: map[string]int{}}
	r.Server = httptest.NewServer(http.HandlerFunc(r.serve))
	idx := repo.NewIndexFile()
	for _, v := range versions {
		for _, n := range []string{istio.ChartBase, istio.ChartIstiod, istio.ChartGateway} {
			ch, err := istio.EmbeddedCharts().Load(n)
			if err != nil {
				return nil, err
			}
			ch.Metadata.Version, ch.Metadata.AppVersion = v, v
			path, err := chartutil.Save(ch, dir)
			if err != nil {
				return nil, err
			}
			digest, err := provenance.DigestFile(path)
			if err != nil {
				return nil, err
			}
			if err := idx.MustAdd(ch.Metadata, filepath.Base(path), r.URL, digest); err != nil {
				return nil, err
			}
		}
	}
	idx.SortEntries()
	if err := idx.WriteFile(filepath.Join(dir, "index.yaml"), 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *ChartRepo) serve(w http.ResponseWriter, req *http.Request) {
	file := strings.TrimPrefix(req.URL.Path, "/")
	r.mu.Lock()
	r.Requests[file]++
	tampered := r.tampered[file]
	r.mu.Unlock()
	data, err := os.ReadFile(filepath.Join(r.dir, filepath.Base(file)))
	if err != nil {
		http.NotFound(w, req)
		return
	}
	if tampered {
		data = flip(data)
	}
	_, _ = w.Write(data)
}

// Tamper makes the repository serve other bytes for chart's archive of version than its index says.
func (r *ChartRepo) Tamper(chart, version string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tampered[fmt.Sprintf("%s-%s.tgz", chart, version)] = true
}

// Close stops the server and removes its files.
func (r *ChartRepo) Close() {
	r.Server.Close()
	os.RemoveAll(r.dir)
}

// flip returns data with one byte changed in the middle (still a plausible download).
func flip(data []byte) []byte {
	out := bytes.Clone(data)
	if len(out) > 0 {
		out[len(out)/2] ^= 0xff
	}
	return out
}

// Registry is an OCI registry on loopback (go-containerregistry's in-memory registry).
type Registry struct {
	*httptest.Server
	// Host is host:port, for image references (a loopback registry is spoken to over http).
	Host     string
	mu       sync.Mutex
	tampered map[string]bool
}

// NewRegistry starts an empty registry.
func NewRegistry() *Registry {
	r := &Registry{tampered: map[string]bool{}}
	reg := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		tamper := false
		for d := range r.tampered {
			if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/blobs/"+d) {
				tamper = true
			}
		}
		r.mu.Unlock()
		if !tamper {
			reg.ServeHTTP(w, req)
			return
		}
		rec := httptest.NewRecorder()
		reg.ServeHTTP(rec, req)
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.Code)
		_, _ = w.Write(flip(rec.Body.Bytes()))
	}))
	r.Host = strings.TrimPrefix(r.URL, "http://")
	return r
}

// TamperBlob makes the registry serve other bytes for the blob of digest than the digest says.
func (r *Registry) TamperBlob(digest string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.tampered[digest] = true
}

// Pilot is a pilot image pushed to the registry.
type Pilot struct {
	// Ref is the tag pushed; Digest the manifest digest; BinaryLayer the digest of the layer holding
	// pilot-discovery.
	Ref, Digest, BinaryLayer string
}

// PushPilot pushes <host>/<repository>/pilot:<tag>, laid out as Istio's pilot image: a base layer, then
// a layer holding pilot-discovery (the program at binary) at usr/local/bin/pilot-discovery and the tag
// at etc/istio/version.
func (r *Registry) PushPilot(repository, tag, binary string) (*Pilot, error) {
	prog, err := os.ReadFile(binary)
	if err != nil {
		return nil, err
	}
	base, err := layer(map[string][]byte{"etc/istio/proxy/.keep": nil, "var/lib/istio/envoy/.keep": nil})
	if err != nil {
		return nil, err
	}
	// The version file makes each tag's layer its own (equal layers would share one digest and blob).
	bin, err := layer(map[string][]byte{"usr/local/bin/pilot-discovery": prog, "etc/istio/version": []byte(tag + "\n")})
	if err != nil {
		return nil, err
	}
	img, err := mutate.AppendLayers(empty.Image, base, bin)
	if err != nil {
		return nil, err
	}
	img, err = mutate.ConfigFile(img, &v1.ConfigFile{OS: "linux", Architecture: "amd64",
		Config: v1.Config{Entrypoint: []string{"/usr/local/bin/pilot-discovery"}, Labels: map[string]string{"org.opencontainers.image.version": tag}}})
	if err != nil {
		return nil, err
	}
	ref, err := name.ParseReference(fmt.Sprintf("%s/%s/pilot:%s", r.Host, repository, tag))
	if err != nil {
		return nil, err
	}
	if err := remote.Write(ref, img); err != nil {
		return nil, err
	}
	d, err := img.Digest()
	if err != nil {
		return nil, err
	}
	ld, err := bin.Digest()
	if err != nil {
		return nil, err
	}
	return &Pilot{Ref: ref.String(), Digest: d.String(), BinaryLayer: ld.String()}, nil
}

// layer is a gzipped tar layer of files (mode 0755), built in memory.
func layer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for n, data := range files {
		if err := tw.WriteHeader(&tar.Header{Name: n, Mode: 0o755, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			return nil, err
		}
		if _, err := tw.Write(data); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	data := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(data)), nil },
		tarball.WithCompressionLevel(gzip.BestSpeed))
}
