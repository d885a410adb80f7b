package binaries

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"

	"mclab.dev/mclab/lab/fetch"
)

// releaseServer lays out Kubernetes', etcd's and kwok's release artifacts as dl.k8s.io, GitHub releases
// and GitHub's releases API publish them (paths, checksum files, the API's asset digests).
type releaseServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	// tamper serves other bytes for a path; truncate closes the body half-way for a path.
	tamper, truncate map[string]bool
}

func sum(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

func newReleaseServer(t *testing.T) (*releaseServer, ReleaseArtifacts) {
	t.Helper()
	rs := &releaseServer{files: map[string][]byte{}, tamper: map[string]bool{}, truncate: map[string]bool{}}
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rs.mu.Lock()
		data, ok := rs.files[r.URL.Path]
		tamper, trunc := rs.tamper[r.URL.Path], rs.truncate[r.URL.Path]
		rs.mu.Unlock()
		if !ok {
			http.NotFound(w, r)
			return
		}
		if tamper {
			data = append(bytes.Clone(data[:len(data)-1]), data[len(data)-1]^0xff)
		}
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		if trunc {
			_, _ = w.Write(data[:len(data)/2])
			return // the server ends the response short of its Content-Length
		}
		_, _ = w.Write(data)
	}))
	t.Cleanup(rs.Close)
	goos, goarch := runtime.GOOS, runtime.GOARCH
	kv, ev, wv := Versions["kubernetes"], Versions["etcd"], Versions["kwok"]
	for _, p := range Released[:3] {
		body := []byte("#!/bin/sh\necho " + p + " " + kv + "\n")
		base := fmt.Sprintf("/k8s/%s/bin/%s/%s/%s", kv, goos, goarch, p)
		rs.files[base] = body
		rs.files[base+".sha256"] = []byte(sum(body)) // dl.k8s.io: the hex sum alone
	}
	dir := fmt.Sprintf("etcd-%s-%s-%s", ev, goos, goarch)
	var tgz bytes.Buffer
	zw := gzip.NewWriter(&tgz)
	tw := tar.NewWriter(zw)
	for _, f := range []string{"README.md", "etcdctl", "etcd"} {
		body := []byte("#!/bin/sh\necho " + f + " " + ev + "\n")
		_ = tw.WriteHeader(&tar.Header{Name: dir + "/" + f, Mode: 0o755, Size: int64(len(body)), Typeflag: tar.TypeReg})
		_, _ = tw.Write(body)
	}
	_ = tw.Close()
	_ = zw.Close()
	rs.files["/etcd/"+ev+"/"+dir+".tar.gz"] = tgz.Bytes()
	rs.files["/etcd/"+ev+"/SHA256SUMS"] = []byte(fmt.Sprintf("%s  etcd-%s-darwin-arm64.zip\n%s  %s.tar.gz\n", strings.Repeat("0", 64), ev, sum(tgz.Bytes()), dir))
	kwok := []byte("#!/bin/sh\necho kwok " + wv + "\n")
	name := fmt.Sprintf("kwok-%s-%s", goos, goarch)
	rs.files["/kwok/"+wv+"/"+name] = kwok
	rs.files["/api/"+wv] = []byte(fmt.Sprintf(`{"tag_name":%q,"assets":[{"name":"kwokctl-%s-%s","digest":"sha256:%s"},{"name":%q,"digest":"sha256:%s"}]}`, wv, goos, goarch, strings.Repeat("1", 64), name, sum(kwok)))
	return rs, ReleaseArtifacts{Kubernetes: rs.URL + "/k8s", Etcd: rs.URL + "/etcd", Kwok: rs.URL + "/kwok", KwokAPI: rs.URL + "/api"}
}

func TestFetchReleases(t *testing.T) {
	_, a := newReleaseServer(t)
	dir := t.TempDir()
	var out bytes.Buffer
	if err := a.FetchReleases(context.Background(), nil, dir, &out); err != nil {
		t.Fatal(err)
	}
	for _, p := range Released {
		data, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || !strings.Contains(string(data), "echo "+p) {
			t.Errorf("%s: %q %v", p, data, err)
		}
		if st, _ := os.Stat(filepath.Join(dir, p)); st == nil || st.Mode()&0o111 == 0 {
			t.Errorf("%s not executable", p)
		}
		if !strings.Contains(out.String(), " ✓ "+p+" from ") {
			t.Errorf("no line for %s:\n%s", p, out.String())
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.tar.gz")); len(left) > 0 {
		t.Errorf("archives left: %v", left)
	}
}

func TestFetchReleasesRefusesABadChecksum(t *testing.T) {
	for _, p := range []string{"kube-apiserver", "etcd", "kwok"} {
		t.Run(p, func(t *testing.T) {
			rs, a := newReleaseServer(t)
			var path string
			for k := range rs.files {
				if strings.HasSuffix(k, "/"+p) || (p == "etcd" && strings.HasSuffix(k, ".tar.gz")) || (p == "kwok" && strings.Contains(k, "/kwok/")) {
					path = k
				}
			}
			rs.tamper[path] = true
			dir := t.TempDir()
			err := a.FetchReleases(context.Background(), nil, dir, nil)
			var ce *fetch.ChecksumError
			if !errors.As(err, &ce) {
				t.Fatalf("tampered %s accepted or refused for another reason: %v", path, err)
			}
			if ce.URL != rs.URL+path || ce.Want == ce.Got || !strings.Contains(err.Error(), ce.Want) || !strings.Contains(err.Error(), ce.Got) {
				t.Errorf("the refusal does not name the URL and both sums: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, p)); err == nil {
				t.Errorf("refused %s kept", p)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".partial-*")); len(left) > 0 {
				t.Errorf("partial files left: %v", left)
			}
		})
	}
}

func TestFetchReleasesInterruptedDownloadNotCached(t *testing.T) {
	rs, a := newReleaseServer(t)
	path := fmt.Sprintf("/k8s/%s/bin/%s/%s/kube-scheduler", Versions["kubernetes"], runtime.GOOS, runtime.GOARCH)
	rs.truncate[path] = true
	dir := t.TempDir()
	err := a.FetchReleases(context.Background(), nil, dir, nil)
	if err == nil || !strings.Contains(err.Error(), "kube-scheduler") {
		t.Fatalf("interrupted download: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "kube-scheduler")); err == nil {
		t.Error("an interrupted download was kept")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".partial-*")); len(left) > 0 {
		t.Errorf("partial files left: %v", left)
	}
	// What was verified before the interruption is kept; the next run fetches only the rest.
	rs.mu.Lock()
	delete(rs.truncate, path)
	rs.mu.Unlock()
	var out bytes.Buffer
	if err := a.FetchReleases(context.Background(), nil, dir, &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "kube-apiserver") || !strings.Contains(out.String(), "kube-scheduler") {
		t.Errorf("resumed fetch:\n%s", out.String())
	}
}

func TestFetchReleasesNoPublishedSum(t *testing.T) {
	rs, a := newReleaseServer(t)
	rs.files["/etcd/"+Versions["etcd"]+"/SHA256SUMS"] = []byte("nothing here\n")
	err := a.FetchReleases(context.Background(), nil, t.TempDir(), nil)
	if err == nil || !strings.Contains(err.Error(), "lists no sha256 for etcd-") {
		t.Fatalf("missing sum: %v", err)
	}
}
