package release_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/istio/release"
	"mclab.dev/mclab/lab/istio/release/releasetest"
)

func TestChartsFromRepository(t *testing.T) {
	r, err := releasetest.NewChartRepo("1.31.0-mclab.1", "1.31.0-mclab.2")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f := &release.Fetcher{CacheDir: t.TempDir()}
	ctx := context.Background()
	charts, err := f.Charts(ctx, r.URL, "1.31.0-mclab.2")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range release.ChartNames {
		c := charts[n]
		if c == nil || c.Chart.Metadata.Name != n || c.Chart.Metadata.Version != "1.31.0-mclab.2" {
			t.Fatalf("chart %s: %+v", n, c)
		}
		if !strings.HasPrefix(c.Digest, "sha256:") || !strings.HasPrefix(c.Path, f.CacheDir) {
			t.Errorf("chart %s: digest %q path %q", n, c.Digest, c.Path)
		}
		if c.URL != r.URL+"/"+n+"-1.31.0-mclab.2.tgz" {
			t.Errorf("chart %s URL %q", n, c.URL)
		}
	}
	// A second fetch reads the verified archives from the cache: only the index is asked for again.
	before := r.Requests["istiod-1.31.0-mclab.2.tgz"]
	if _, err := f.Charts(ctx, r.URL, "1.31.0-mclab.2"); err != nil {
		t.Fatal(err)
	}
	if got := r.Requests["istiod-1.31.0-mclab.2.tgz"]; got != before {
		t.Errorf("cached chart downloaded again: %d requests, was %d", got, before)
	}
	// A version the repository does not have names the field and what there is.
	_, err = f.Charts(ctx, r.URL, "1.29.0")
	if err == nil || !strings.Contains(err.Error(), "not in "+r.URL+"/index.yaml") || !strings.Contains(err.Error(), "--istio-version") {
		t.Errorf("missing version: %v", err)
	}
}

func TestTamperedChartRefused(t *testing.T) {
	r, err := releasetest.NewChartRepo("1.31.0-mclab.1")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	r.Tamper("istiod", "1.31.0-mclab.1")
	f := &release.Fetcher{CacheDir: t.TempDir()}
	_, err = f.Charts(context.Background(), r.URL, "1.31.0-mclab.1")
	var ce *release.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("tampered chart accepted or refused for another reason: %v", err)
	}
	msg := err.Error()
	for _, want := range []string{"refusing chart istiod 1.31.0-mclab.1", r.URL + "/istiod-1.31.0-mclab.1.tgz", ce.Want, ce.Got} {
		if !strings.Contains(msg, want) {
			t.Errorf("error %q does not say %q", msg, want)
		}
	}
	if ce.Want == ce.Got || !strings.HasPrefix(ce.Got, "sha256:") {
		t.Errorf("sums: %+v", ce)
	}
	// Nothing refused is cached.
	matches, _ := filepath.Glob(filepath.Join(f.CacheDir, "istio", "charts", "istiod-*"))
	if len(matches) != 0 {
		t.Errorf("refused chart cached: %v", matches)
	}
}

func TestPilotDiscoveryFromImage(t *testing.T) {
	reg := releasetest.NewRegistry()
	defer reg.Close()
	prog := filepath.Join(t.TempDir(), "pilot-discovery")
	if err := os.WriteFile(prog, []byte("#!/bin/sh\necho pilot-discovery 1.31.0-mclab.1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := reg.PushPilot("istio", "1.31.0-mclab.1", prog)
	if err != nil {
		t.Fatal(err)
	}
	f := &release.Fetcher{CacheDir: t.TempDir()}
	bin, err := f.PilotDiscovery(context.Background(), p.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if bin.Digest != p.Digest {
		t.Errorf("digest %s, pushed %s", bin.Digest, p.Digest)
	}
	got, err := os.ReadFile(bin.Path)
	if err != nil || !strings.Contains(string(got), "pilot-discovery 1.31.0-mclab.1") {
		t.Fatalf("extracted %q: %v", got, err)
	}
	if st, _ := os.Stat(bin.Path); st.Mode()&0o111 == 0 {
		t.Errorf("not executable: %v", st.Mode())
	}
}

func TestTamperedLayerRefused(t *testing.T) {
	reg := releasetest.NewRegistry()
	defer reg.Close()
	prog := filepath.Join(t.TempDir(), "pilot-discovery")
	if err := os.WriteFile(prog, []byte(strings.Repeat("pilot-discovery ", 4096)), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := reg.PushPilot("istio", "1.31.0-mclab.1", prog)
	if err != nil {
		t.Fatal(err)
	}
	reg.TamperBlob(p.BinaryLayer)
	f := &release.Fetcher{CacheDir: t.TempDir()}
	_, err = f.PilotDiscovery(context.Background(), p.Ref)
	var ce *release.ChecksumError
	if !errors.As(err, &ce) {
		t.Fatalf("tampered layer accepted or refused for another reason: %v", err)
	}
	if ce.Want != p.BinaryLayer || ce.Got == ce.Want || !strings.Contains(err.Error(), p.Ref) {
		t.Errorf("error %v (%+v), layer %s", err, ce, p.BinaryLayer)
	}
	matches, _ := filepath.Glob(filepath.Join(f.CacheDir, "istio", "pilot", "*", "pilot-discovery"))
	if len(matches) != 0 {
		t.Errorf("refused program cached: %v", matches)
	}
}
