package reports

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"
)

// Marker is the file that says a directory holds reports mclab wrote (verify, train report, bench):
// a later run may write there again. mclab never writes into a directory that holds anything else.
const Marker = ".mclab-reports"

// ErrNotOurs is returned by ClaimDir for a directory that holds files mclab did not write.
var ErrNotOurs = errors.New("not a directory of mclab's reports")

// OutDir is a directory one run writes its reports into: one the run created, an empty one, or one
// that holds nothing but earlier mclab runs' reports (it has the Marker). It remembers what was there
// before the run, so that the run touches (redacts, chmods) only what it wrote itself.
type OutDir struct {
	Path   string
	before map[string]stamp
}

// stamp identifies a version of a file: a file rewritten (or replaced) since has another one.
type stamp struct {
	size  int64
	mtime time.Time
	ino   uint64
	mode  fs.FileMode
}

func stampOf(fi fs.FileInfo) stamp {
	s := stamp{size: fi.Size(), mtime: fi.ModTime(), mode: fi.Mode()}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		s.ino = st.Ino
	}
	return s
}

// ClaimDir makes path the output directory of a run that writes `what` (e.g. "verify's reports"). It
// creates it (0700) when it does not exist and claims it when it is empty; a directory with the Marker
// is reused. Anything else is refused with ErrNotOurs naming what is there, and nothing is changed: not
// a file, not a mode.
func ClaimDir(path, what string) (*OutDir, error) {
	fi, err := os.Lstat(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.MkdirAll(path, 0o700); err != nil {
			return nil, err
		}
		return claimed(path)
	case err != nil:
		return nil, err
	case !fi.IsDir():
		return nil, fmt.Errorf("%w: %s is not a directory (%s go into a new directory, or one an earlier mclab run wrote)", ErrNotOurs, path, what)
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return nil, err
	}
	if len(entries) == 0 {
		return claimed(path)
	}
	if m, err := os.Lstat(filepath.Join(path, Marker)); err == nil && m.Mode().IsRegular() {
		d := &OutDir{Path: path, before: map[string]stamp{}}
		err := filepath.WalkDir(path, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			info, err := e.Info()
			if err != nil {
				return err
			}
			d.before[p] = stampOf(info)
			return nil
		})
		return d, err
	}
	var names []string
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() {
			n += "/"
		}
		names = append(names, n)
	}
	sort.Strings(names)
	if len(names) > 5 {
		names = append(names[:5], fmt.Sprintf("and %d more", len(names)-5))
	}
	return nil, fmt.Errorf("%w: refusing to write %s into %s: it holds files mclab did not write (%s) and no %s; give a new or empty directory, or one an earlier mclab run wrote", ErrNotOurs, what, path, strings.Join(names, ", "), Marker)
}

func claimed(path string) (*OutDir, error) {
	marker := filepath.Join(path, Marker)
	if err := os.WriteFile(marker, []byte("This directory holds reports mclab wrote; mclab writes only into directories that have this file, are empty, or are new.\n"), 0o600); err != nil {
		return nil, err
	}
	d := &OutDir{Path: path, before: map[string]stamp{}}
	return d, nil
}

// Wrote reports whether path (under the directory) is new or changed since the directory was claimed:
// a file this run wrote.
func (d *OutDir) Wrote(path string) bool {
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	was, ok := d.before[path]
	return !ok || was != stampOf(fi)
}

// Redact redacts every regular file this run wrote under the directory (RedactBytes), makes each 0600
// and each folder the run made 0700. What was there before the run, and anything that is not a regular
// file, is left exactly as it was. A file it cannot redact is removed, so nothing unredacted stays; the
// error names it. It returns how many files it changed.
func (d *OutDir) Redact() (int, error) {
	changed := 0
	var failed []error
	err := filepath.WalkDir(d.Path, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			failed = append(failed, err)
			return nil
		}
		if path == filepath.Join(d.Path, Marker) || !d.Wrote(path) {
			return nil
		}
		switch {
		case e.IsDir():
			return os.Chmod(path, 0o700)
		case !e.Type().IsRegular():
			return nil // mclab writes no links or devices: not this run's
		case strings.HasSuffix(path, ".tar.gz"):
			return nil // packed from files already redacted (Tarball); binary, so never rewritten as text
		}
		if err := redactFile(path, &changed); err != nil {
			failed = append(failed, fmt.Errorf("%s: %w (removed)", path, err))
			_ = os.Remove(path)
		}
		return nil
	})
	if err != nil {
		failed = append(failed, err)
	}
	return changed, errors.Join(failed...)
}
