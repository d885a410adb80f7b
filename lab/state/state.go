// Package state keeps what mclab knows about its labs on disk, so that status, kubeconfig and down work
// from a new shell: one directory per lab under a state root, holding the resolved scenario, the lab
// record and whatever the provider keeps (processes, PKI, ports). Directories are 0700 and files 0600:
// a lab's state holds keys and kubeconfigs.
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	"mclab.dev/mclab/lab/scenario"
)

// EnvStateDir overrides the state root.
const EnvStateDir = "MCLAB_STATE_DIR"

// DefaultRoot is $MCLAB_STATE_DIR, else $XDG_STATE_HOME/mclab, else ~/.local/state/mclab.
func DefaultRoot() (string, error) {
	if d := os.Getenv(EnvStateDir); d != "" {
		return filepath.Abs(d)
	}
	if d := os.Getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "mclab"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("cannot find a state directory: %w; set %s", err, EnvStateDir)
	}
	return filepath.Join(home, ".local", "state", "mclab"), nil
}

// Phase is where a lab is in its life.
type Phase string

// Lab phases.
const (
	// Creating: `up` is running or was interrupted before it finished.
	Creating Phase = "Creating"
	// Ready: the last `up` finished.
	Ready Phase = "Ready"
	// Failed: the last `up` failed and --retain kept what it made.
	Failed Phase = "Failed"
)

// Lab is the record of one lab.
type Lab struct {
	// Name is the lab's name, unique under a state root.
	Name string `json:"name"`
	// Provider is the provider that created the clusters (never auto).
	Provider scenario.ProviderName `json:"provider"`
	// Phase is where the lab is.
	Phase Phase `json:"phase"`
	// Created is when the lab's first `up` started.
	Created time.Time `json:"created"`
	// Updated is when the record last changed.
	Updated time.Time `json:"updated"`
	// Scenario is the resolved scenario the lab was made from.
	Scenario *scenario.Scenario `json:"scenario"`
	// Istio is true when `up` installs Istio (not --skip-istio).
	Istio bool `json:"istio"`
	// IstioRelease is the Istio the last successful `up` installed and where it came from.
	IstioRelease *IstioRelease `json:"istioRelease,omitempty"`
}

// IstioRelease is an installed Istio: its version and the verified sources of its charts and programs.
type IstioRelease struct {
	// Version is the Istio version.
	Version string `json:"version"`
	// Charts says where the charts came from (the chart repository, or built in).
	Charts string `json:"charts"`
	// ChartDigests are the verified chart archives' sha256 digests by chart name (releases only).
	ChartDigests map[string]string `json:"chartDigests,omitempty"`
	// Pilot is where pilot-discovery came from: the pilot image with its manifest digest (a release on
	// the local provider), or the built-in source.
	Pilot string `json:"pilot,omitempty"`
	// PilotDiscovery is the verified program the local provider's istiod processes run (releases).
	PilotDiscovery string `json:"pilotDiscovery,omitempty"`
}

// Store is a state root.
type Store struct {
	// Root is the directory holding one directory per lab.
	Root string
}

// Dir is the lab's state directory.
func (s Store) Dir(lab string) string { return filepath.Join(s.Root, "labs", lab) }

// Kubeconfig is the path of the lab's merged kubeconfig.
func (s Store) Kubeconfig(lab string) string { return filepath.Join(s.Dir(lab), "kubeconfig") }

func (s Store) recordPath(lab string) string { return filepath.Join(s.Dir(lab), "lab.json") }

// ErrNotFound is returned for a lab the store does not hold.
var ErrNotFound = errors.New("lab not found")

// Load reads a lab's record.
func (s Store) Load(lab string) (*Lab, error) {
	data, err := os.ReadFile(s.recordPath(lab))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%w: no lab %q under %s; `mclab list` shows the labs there (or set --state-dir / %s)", ErrNotFound, lab, s.Root, EnvStateDir)
	}
	if err != nil {
		return nil, err
	}
	l := &Lab{}
	if err := json.Unmarshal(data, l); err != nil {
		return nil, fmt.Errorf("reading %s: %w; `mclab down --name %s` removes the lab", s.recordPath(lab), err, lab)
	}
	return l, nil
}

// Save writes a lab's record, creating its directory.
func (s Store) Save(l *Lab) error {
	if err := os.MkdirAll(s.Dir(l.Name), 0o700); err != nil {
		return err
	}
	l.Updated = time.Now().UTC().Truncate(time.Second)
	data, err := json.MarshalIndent(l, "", "  ")
	if err != nil {
		return err
	}
	return WriteFile(s.recordPath(l.Name), data)
}

// List returns the names of the labs under the root, sorted.
func (s Store) List() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.Root, "labs"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Remove deletes a lab's state directory.
func (s Store) Remove(lab string) error { return os.RemoveAll(s.Dir(lab)) }

// Lock takes an exclusive lock on a lab, so that two `up`s or an `up` and a `down` of the same lab do
// not interleave. It fails at once, naming the lab, when another mclab holds it.
func (s Store) Lock(lab string) (unlock func(), err error) {
	return lockFile(filepath.Join(s.Root, "locks", lab+".lock"), false,
		fmt.Sprintf("lab %q is busy: another mclab is working on it; wait for it to finish", lab))
}

// LockRoot takes the store-wide lock that serializes allocations across labs (e.g. ports), waiting
// for it.
func (s Store) LockRoot() (unlock func(), err error) {
	return lockFile(filepath.Join(s.Root, "locks", "root.lock"), true, "")
}

func lockFile(path string, wait bool, busy string) (func(), error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errors.New(busy)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return func() { f.Close() }, nil
}

// WriteFile writes data to path with mode 0600 through a temporary file and a rename, so a reader never
// sees half a file.
func WriteFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
