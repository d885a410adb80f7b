// Package release fetches a published Istio release: its base, istiod and gateway charts from Istio's
// Helm chart repository (with the Helm SDK's repository code, each archive checked against the sha256
// digest the repository's index.yaml publishes) and pilot-discovery from the release's pilot image
// (registry API through go-containerregistry, the manifest digest recorded and every layer checked
// against its digest). Whatever is fetched is verified before it is cached or run, and cached under the
// cache dir keyed by version and digest; an interrupted or refused download leaves nothing in the cache.
package release

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/cli"
	"helm.sh/helm/v3/pkg/getter"
	"helm.sh/helm/v3/pkg/repo"

	"mclab.dev/mclab/lab/fetch"
)

// DefaultChartRepository is Istio's Helm chart repository (istio.io's Helm install docs:
// `helm repo add istio https://istio-release.storage.googleapis.com/charts`).
const DefaultChartRepository = "https://istio-release.storage.googleapis.com/charts"

// DefaultHub is where Istio publishes its release images.
const DefaultHub = "docker.io/istio"

// ChartNames are the charts of Istio's repository that mclab installs, as named there.
var ChartNames = []string{"base", "istiod", "gateway"}

// Chart is one chart of a release, fetched and verified.
type Chart struct {
	// Name and Version as in the repository's index.
	Name, Version string
	// URL the archive came from.
	URL string
	// Digest is the archive's sha256 ("sha256:<hex>"), as the index publishes it.
	Digest string
	// Path is the verified archive in the cache.
	Path string
	// Chart is the loaded chart.
	Chart *chart.Chart
}

// Fetcher fetches release artifacts into a cache.
type Fetcher struct {
	// CacheDir is mclab's cache root; release artifacts go under CacheDir/istio.
	CacheDir string
	// Getters fetch URLs (Helm's getters; default: Helm's http(s) getter).
	Getters getter.Providers
	// Out receives one line per artifact fetched.
	Out io.Writer
}

func (f *Fetcher) out() io.Writer {
	if f.Out == nil {
		return io.Discard
	}
	return f.Out
}

func (f *Fetcher) getters() getter.Providers {
	if f.Getters != nil {
		return f.Getters
	}
	return getter.All(&cli.EnvSettings{})
}

// ChecksumError is a fetched artifact whose digest is not the published one.
type ChecksumError = fetch.ChecksumError

// Charts fetches the named charts of version from repoURL: the index through Helm's ChartRepository,
// then each archive, checked against the index's digest, cached as istio/charts/<name>-<version>-<digest>.tgz.
func (f *Fetcher) Charts(ctx context.Context, repoURL, version string, names ...string) (map[string]*Chart, error) {
	if len(names) == 0 {
		names = ChartNames
	}
	idx, err := f.index(repoURL)
	if err != nil {
		return nil, err
	}
	out := map[string]*Chart{}
	for _, n := range names {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		cv, err := idx.Get(n, version)
		if err != nil {
			var have []string
			for _, v := range idx.Entries[n] {
				have = append(have, v.Version)
			}
			if len(have) > 5 {
				have = have[:5]
			}
			return nil, fmt.Errorf("chart %s %s is not in %s/index.yaml (newest there: %s); set istio.version (--istio-version) to a published release", n, version, strings.TrimSuffix(repoURL, "/"), strings.Join(have, ", "))
		}
		if len(cv.URLs) == 0 {
			return nil, fmt.Errorf("chart %s %s in %s has no URL", n, version, repoURL)
		}
		if cv.Digest == "" {
			return nil, fmt.Errorf("chart %s %s in %s/index.yaml has no digest, so it cannot be verified; mclab installs only verified charts", n, version, repoURL)
		}
		u, err := repo.ResolveReferenceURL(repoURL, cv.URLs[0])
		if err != nil {
			return nil, err
		}
		c, err := f.chart(n, cv.Version, u, normalizeDigest(cv.Digest))
		if err != nil {
			return nil, err
		}
		out[n] = c
	}
	return out, nil
}

func normalizeDigest(d string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	if !strings.HasPrefix(d, "sha256:") {
		d = "sha256:" + d
	}
	return d
}

// index downloads repoURL's index.yaml with Helm's ChartRepository (kept in the cache; a cached index is
// used when the repository cannot be reached, with a note).
func (f *Fetcher) index(repoURL string) (*repo.IndexFile, error) {
	sum := sha256.Sum256([]byte(repoURL))
	dir := filepath.Join(f.CacheDir, "istio", "repositories", hex.EncodeToString(sum[:8]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	r, err := repo.NewChartRepository(&repo.Entry{Name: "istio", URL: repoURL}, f.getters())
	if err != nil {
		return nil, fmt.Errorf("chart repository %s: %w", repoURL, err)
	}
	r.CachePath = dir
	path, err := r.DownloadIndexFile()
	if err != nil {
		cached := filepath.Join(dir, "istio-index.yaml")
		if _, statErr := os.Stat(cached); statErr != nil {
			return nil, fmt.Errorf("cannot read Istio's chart repository %s: %w (offline? the built-in Istio needs no download: omit --istio-version)", repoURL, err)
		}
		fmt.Fprintf(f.out(), "chart repository %s unreachable (%v); using its index cached at %s\n", repoURL, err, cached)
		path = cached
	}
	idx, err := repo.LoadIndexFile(path)
	if err != nil {
		return nil, fmt.Errorf("index of %s: %w", repoURL, err)
	}
	return idx, nil
}

// chart returns the verified archive of one chart, from the cache or downloaded.
func (f *Fetcher) chart(name, version, url, digest string) (*Chart, error) {
	hexsum := strings.TrimPrefix(digest, "sha256:")
	path := filepath.Join(f.CacheDir, "istio", "charts", fmt.Sprintf("%s-%s-%s.tgz", name, version, hexsum[:min(16, len(hexsum))]))
	data, err := os.ReadFile(path)
	if err == nil && sha256Hex(data) == hexsum {
		return load(name, version, url, digest, path, data)
	}
	g, err := f.getters().ByScheme(schemeOf(url))
	if err != nil {
		return nil, fmt.Errorf("chart %s %s: %w", name, version, err)
	}
	buf, err := g.Get(url)
	if err != nil {
		return nil, fmt.Errorf("downloading chart %s %s from %s: %w", name, version, url, err)
	}
	data = buf.Bytes()
	if got := sha256Hex(data); got != hexsum {
		return nil, &ChecksumError{What: "chart " + name + " " + version, URL: url, Want: digest, Got: "sha256:" + got}
	}
	if err := writeAtomic(path, data, 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(f.out(), "chart %s %s from %s (%s, verified)\n", name, version, url, digest)
	return load(name, version, url, digest, path, data)
}

func load(name, version, url, digest, path string, data []byte) (*Chart, error) {
	ch, err := loader.LoadArchive(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("chart %s %s from %s: %w", name, version, url, err)
	}
	return &Chart{Name: name, Version: version, URL: url, Digest: digest, Path: path, Chart: ch}, nil
}

func schemeOf(url string) string {
	if i := strings.Index(url, "://"); i > 0 {
		return url[:i]
	}
	return "https"
}

func sha256Hex(b []byte) string { return strings.TrimPrefix(fetch.SHA256(b), "sha256:") }

func writeAtomic(path string, data []byte, mode os.FileMode) error {
	return fetch.WriteAtomic(path, data, mode)
}
