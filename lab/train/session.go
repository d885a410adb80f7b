package train

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/dynamic"
)

// Modes of a session: guided shows the verdict's diagnosis with every check; challenge shows only
// which specs fail until the solution is asked for; exam also withholds hints.
const (
	ModeGuided    = "guided"
	ModeChallenge = "challenge"
	ModeExam      = "exam"
)

// Modes lists the modes.
var Modes = []string{ModeGuided, ModeChallenge, ModeExam}

// Session is an exercise in progress on a lab, kept in the lab's state (0600: the pre-images can hold
// remote secrets' tokens). Every object is recorded before a fault changes it (write-ahead), so an
// interrupted start can always be reset.
type Session struct {
	Exercise string    `json:"exercise"`
	Seed     uint64    `json:"seed"`
	Mode     string    `json:"mode"`
	Targets  Targets   `json:"targets"`
	Started  time.Time `json:"started"`
	Deadline time.Time `json:"deadline"`
	// Baseline are the specs that passed before the faults (the invariants of check).
	Baseline []string `json:"baseline"`
	// Touched are the objects the faults change, in order, with their pre-images.
	Touched []Touched `json:"touched"`
	// Injected is true once every fault is in.
	Injected bool `json:"injected"`
	// HintsUsed counts the hints given.
	HintsUsed int `json:"hintsUsed"`
	// SolutionShown is set when the learner asked for the solution (the score ends there).
	SolutionShown bool `json:"solutionShown,omitempty"`
	// SolutionAt is when the solution was first shown.
	SolutionAt *time.Time `json:"solutionAt,omitempty"`
	// Checks are the learner's checks, in order.
	Checks []CheckRecord `json:"checks,omitempty"`
	// Solved is when a check first passed.
	Solved *time.Time `json:"solved,omitempty"`
}

// Touched is one object a fault changes.
type Touched struct {
	Cluster string `json:"cluster"`
	Ref     string `json:"ref"`
	// Pre is the object before the fault (null when it did not exist).
	Pre json.RawMessage `json:"pre"`
	// RedHerring marks a harmless change.
	RedHerring bool `json:"redHerring,omitempty"`
}

// CheckRecord is one `train check`.
type CheckRecord struct {
	At time.Time `json:"at"`
	// Passed is true when every baseline spec passed again.
	Passed bool `json:"passed"`
	// StillFailing are the exercise's specs that still fail; Collateral the other baseline specs that
	// fail (damage a fix did elsewhere).
	StillFailing []string `json:"stillFailing,omitempty"`
	Collateral   []string `json:"collateral,omitempty"`
}

// SessionFile is where a lab's session is kept, under the lab's state directory.
func SessionFile(labDir string) string { return filepath.Join(labDir, "train", "session.json") }

// LoadSession reads a lab's session; os.ErrNotExist when none is running.
func LoadSession(labDir string) (*Session, error) {
	data, err := os.ReadFile(SessionFile(labDir))
	if err != nil {
		return nil, err
	}
	s := &Session{}
	if err := json.Unmarshal(data, s); err != nil {
		return nil, fmt.Errorf("%s: %w", SessionFile(labDir), err)
	}
	return s, nil
}

// Save writes the session atomically, 0600.
func (s *Session) Save(labDir string) error {
	path := SessionFile(labDir)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Clear removes a lab's session.
func Clear(labDir string) error {
	err := os.Remove(SessionFile(labDir))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

// Clients are the lab's dynamic clients, by cluster.
type Clients map[string]dynamic.Interface

// Inject applies the exercise's faults and red herrings, recording each object in the session (and
// saving it) before changing it.
func Inject(ctx context.Context, e *Exercise, s *Session, labDir string, clients Clients) error {
	type step struct {
		f   Fault
		red bool
	}
	var steps []step
	for _, f := range e.Faults {
		steps = append(steps, step{f, false})
	}
	for _, f := range e.RedHerrings {
		steps = append(steps, step{f, true})
	}
	for i, st := range steps {
		// Stop between changes when interrupted: what is in the session so far is what reset reverts.
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("interrupted after %d of %d changes: %w", i, len(steps), err)
		}
		cluster, err := render(st.f.Cluster, s.Targets)
		if err != nil {
			return err
		}
		refText, err := render(st.f.Ref, s.Targets)
		if err != nil {
			return err
		}
		ref, err := ParseRef(refText)
		if err != nil {
			return err
		}
		d, ok := clients[cluster]
		if !ok {
			return fmt.Errorf("fault on cluster %q, which the lab does not have", cluster)
		}
		obj, err := get(ctx, d, ref)
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after %d of %d changes: %w", i, len(steps), ctx.Err())
			}
			return fmt.Errorf("reading %s in %s: %w", ref, cluster, err)
		}
		pre := json.RawMessage("null")
		if obj != nil {
			if pre, err = obj.MarshalJSON(); err != nil {
				return err
			}
		}
		if !s.touched(cluster, ref.String()) {
			s.Touched = append(s.Touched, Touched{Cluster: cluster, Ref: ref.String(), Pre: pre, RedHerring: st.red})
			if err := s.Save(labDir); err != nil {
				return err
			}
		}
		if err := st.f.apply(ctx, d, ref, obj, s.Targets); err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("interrupted after %d of %d changes: %w", i, len(steps), ctx.Err())
			}
			return fmt.Errorf("%s %s in %s: %w", st.f.Type, ref, cluster, err)
		}
	}
	s.Injected = true
	return s.Save(labDir)
}

func (s *Session) touched(cluster, ref string) bool {
	return slices.ContainsFunc(s.Touched, func(t Touched) bool { return t.Cluster == cluster && t.Ref == ref })
}

// Revert puts every touched object back as it was, last first.
func Revert(ctx context.Context, s *Session, clients Clients) error {
	var errs []error
	for i := len(s.Touched) - 1; i >= 0; i-- {
		t := s.Touched[i]
		ref, err := ParseRef(t.Ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		d, ok := clients[t.Cluster]
		if !ok {
			errs = append(errs, fmt.Errorf("cluster %s is gone", t.Cluster))
			continue
		}
		if err := restore(ctx, d, ref, t.Pre); err != nil {
			errs = append(errs, fmt.Errorf("restoring %s in %s: %w", ref, t.Cluster, err))
		}
	}
	return errors.Join(errs...)
}

// SnapshotDiff compares every touched object with its pre-image and names what differs ("" each when
// equal): the proof that a reset is complete.
func SnapshotDiff(ctx context.Context, s *Session, clients Clients) ([]string, error) {
	var out []string
	for _, t := range s.Touched {
		ref, err := ParseRef(t.Ref)
		if err != nil {
			return nil, err
		}
		cur, err := get(ctx, clients[t.Cluster], ref)
		if err != nil {
			return nil, err
		}
		var pre *unstructured.Unstructured
		if len(t.Pre) > 0 && string(t.Pre) != "null" {
			pre = &unstructured.Unstructured{}
			if err := pre.UnmarshalJSON(t.Pre); err != nil {
				return nil, err
			}
		}
		switch {
		case pre == nil && cur == nil:
		case pre == nil:
			out = append(out, fmt.Sprintf("%s in %s exists, and did not before", ref, t.Cluster))
		case cur == nil:
			out = append(out, fmt.Sprintf("%s in %s is missing", ref, t.Cluster))
		case !sameContent(cur, pre):
			out = append(out, fmt.Sprintf("%s in %s differs in %v", ref, t.Cluster, diffContent(cur, pre)))
		}
	}
	return out, nil
}

func decodeB64(s string) ([]byte, error) { return base64.StdEncoding.DecodeString(s) }
func encodeB64(b []byte) string          { return base64.StdEncoding.EncodeToString(b) }
