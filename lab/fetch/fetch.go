// Package fetch downloads release artifacts the way mclab trusts them: each is checked against its
// published digest before it is kept, written through a temporary file and a rename (an interrupted or
// refused download never leaves a file behind), and a mismatch is refused naming the URL and both sums.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
)

// ChecksumError is a fetched artifact whose digest is not the published one.
type ChecksumError struct {
	What, URL, Want, Got string
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("refusing %s from %s: its sha256 is %s, but the published digest is %s (a tampered or corrupted download, or a server serving other bytes than it publishes)", e.What, e.URL, e.Got, e.Want)
}

// SHA256 is the "sha256:<hex>" digest of b.
func SHA256(b []byte) string {
	s := sha256.Sum256(b)
	return "sha256:" + hex.EncodeToString(s[:])
}

// Normalize writes a digest as "sha256:<hex>" in lower case.
func Normalize(d string) string {
	d = strings.ToLower(strings.TrimSpace(d))
	if !strings.HasPrefix(d, "sha256:") {
		d = "sha256:" + d
	}
	return d
}

// WriteAtomic writes data to path through a temporary file in the same directory and a rename.
func WriteAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".partial-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	cerr := tmp.Close()
	if err := errors.Join(werr, cerr, os.Chmod(tmp.Name(), mode)); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}

// Get reads url whole (a small file: a checksum list, an index).
func Get(ctx context.Context, c *http.Client, url string) ([]byte, error) {
	rc, _, err := open(ctx, c, url)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", url, err)
	}
	return data, nil
}

// Verified downloads url into a temporary file beside path while hashing it; only when its sha256 is
// want is it renamed to path (mode). A short or interrupted body is an error and leaves nothing.
func Verified(ctx context.Context, c *http.Client, what, url, want, path string, mode os.FileMode) error {
	want = Normalize(want)
	rc, size, err := open(ctx, c, url)
	if err != nil {
		return err
	}
	defer rc.Close()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".partial-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), rc)
	cerr := tmp.Close()
	if err != nil {
		return fmt.Errorf("downloading %s from %s: interrupted after %d bytes: %w", what, url, n, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("downloading %s from %s: interrupted after %d of %d bytes", what, url, n, size)
	}
	if cerr != nil {
		return cerr
	}
	if got := "sha256:" + hex.EncodeToString(h.Sum(nil)); got != want {
		return &ChecksumError{What: what, URL: url, Want: want, Got: got}
	}
	if err := os.Chmod(tmp.Name(), mode); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

func open(ctx context.Context, c *http.Client, url string) (io.ReadCloser, int64, error) {
	if c == nil {
		c = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, 0, fmt.Errorf("downloading %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, 0, fmt.Errorf("downloading %s: %s", url, resp.Status)
	}
	return resp.Body, resp.ContentLength, nil
}
