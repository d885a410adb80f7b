package train

import (
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/onsi/ginkgo/v2/types"
)

// Specs are the outcome of one verify run, by spec text (as verify prints it).
type Specs map[string]types.SpecState

// ReadSpecs reads verify's ginkgo.json.
func ReadSpecs(path string) (Specs, error) {
	out := Specs{}
	err := eachSpec(path, func(s types.SpecReport) { out[s.LeafNodeText] = s.State })
	return out, err
}

// ReadFailures reads the failure message of every spec that failed, from verify's ginkgo.json.
func ReadFailures(path string) (map[string]string, error) {
	out := map[string]string{}
	err := eachSpec(path, func(s types.SpecReport) {
		if s.State.Is(types.SpecStateFailureStates) {
			out[s.LeafNodeText] = s.Failure.Message
		}
	})
	return out, err
}

func eachSpec(path string, f func(types.SpecReport)) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var reports []types.Report
	if err := json.Unmarshal(data, &reports); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType == types.NodeTypeIt {
				f(s)
			}
		}
	}
	return nil
}

// VerdictHint is guided mode's first hint: what verify's own diagnosis says about the first of the
// exercise's specs that fails ("" when none fails).
func VerdictHint(e *Exercise, failures map[string]string) string {
	for _, spec := range append(append([]string{}, e.Expect.Failing...), e.Expect.MayFail...) {
		msg, ok := failures[spec]
		if !ok {
			continue
		}
		// The first line of the diagnosis, without Ginkgo's location lines.
		line := strings.TrimSpace(strings.SplitN(strings.TrimSpace(msg), "\n", 2)[0])
		return fmt.Sprintf("mclab verify says that %q fails: %s", spec, line)
	}
	return ""
}

// Passed lists the specs that passed, sorted.
func (s Specs) Passed() []string {
	var out []string
	for k, v := range s {
		if v == types.SpecStatePassed {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Failed lists the specs that ran and did not pass, sorted.
func (s Specs) Failed() []string {
	var out []string
	for k, v := range s {
		if v.Is(types.SpecStateFailureStates) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// Judge compares a run with the session's baseline: solved when every spec that passed before the
// faults passes again. The exercise's specs that still fail are named apart from the collateral
// damage (other baseline specs that fail now, e.g. mTLS turned off to "fix" a trust problem).
func Judge(e *Exercise, baseline []string, now Specs) CheckRecord {
	rec := CheckRecord{Passed: true}
	for _, b := range baseline {
		if now[b] == types.SpecStatePassed {
			continue
		}
		rec.Passed = false
		if slices.Contains(e.Expect.Failing, b) || slices.Contains(e.Expect.MayFail, b) {
			rec.StillFailing = append(rec.StillFailing, b)
		} else {
			rec.Collateral = append(rec.Collateral, b)
		}
	}
	return rec
}

// Unexpected compares a run right after injection with the exercise's expectation: the expected specs
// that did not fail, and the specs that failed without being expected (selftest's "exactly these").
func Unexpected(e *Exercise, baseline []string, now Specs) (missed, extra []string) {
	failed := now.Failed()
	for _, x := range e.Expect.Failing {
		if !slices.Contains(failed, x) {
			missed = append(missed, x)
		}
	}
	for _, f := range failed {
		if !slices.Contains(e.Expect.Failing, f) && !slices.Contains(e.Expect.MayFail, f) && slices.Contains(baseline, f) {
			extra = append(extra, f)
		}
	}
	return missed, extra
}
