// Package reports renders what the suites recorded: a conformance report shaped like Gateway API's
// ConformanceReport (a typed, versioned API), a JUnit file for setups that fail before any spec runs,
// and a single-file HTML summary. Reports never talk to clusters.
package reports

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// APIVersion of the conformance report.
const APIVersion = "mclab.dev/v1alpha1"

// Verdicts and exit codes: conformant 0, non-conformant 1 (the mesh violates a property), inconclusive 2
// (the harness or the infrastructure failed).
const (
	Conformant    = "conformant"
	NonConformant = "non-conformant"
	Inconclusive  = "inconclusive"
)

// ExitCode maps a verdict to mclab verify's exit code.
func ExitCode(verdict string) int {
	switch verdict {
	case Conformant:
		return 0
	case NonConformant:
		return 1
	}
	return 2
}

// ConformanceReport is the gate's verdict.
type ConformanceReport struct {
	APIVersion     string          `json:"apiVersion"`
	Kind           string          `json:"kind"`
	Date           string          `json:"date"`
	Verdict        string          `json:"verdict"`
	Implementation Implementation  `json:"implementation"`
	Environment    Environment     `json:"environment"`
	Profiles       []ProfileReport `json:"profiles"`
}

// Implementation is what was tested.
type Implementation struct {
	Project string `json:"project"`
	Version string `json:"version"`
	Model   string `json:"model"`
}

// Environment is where it was tested.
type Environment struct {
	Lab               string   `json:"lab"`
	Provider          string   `json:"provider"`
	Topology          string   `json:"topology"`
	KubernetesVersion string   `json:"kubernetesVersion"`
	IstioVersion      string   `json:"istioVersion"`
	Clusters          []string `json:"clusters"`
}

// ProfileReport is one profile's results: core (Required) and extended (Optional) tests.
type ProfileReport struct {
	Name     string   `json:"name"`
	Summary  string   `json:"summary"`
	Core     Results  `json:"core"`
	Extended *Results `json:"extended,omitempty"`
}

// Results of a level.
type Results struct {
	Result       string       `json:"result"`
	Statistics   Statistics   `json:"statistics"`
	FailedTests  []TestResult `json:"failedTests,omitempty"`
	SkippedTests []TestResult `json:"skippedTests,omitempty"`
}

// Statistics counts tests.
type Statistics struct {
	Passed  int `json:"passed"`
	Failed  int `json:"failed"`
	Skipped int `json:"skipped"`
}

// TestResult names a test and why it failed or was skipped.
type TestResult struct {
	Name    string `json:"name"`
	View    string `json:"view"`
	Verdict string `json:"verdict,omitempty"`
	Reason  string `json:"reason"`
}

// Build turns Ginkgo's report into a conformance report.
func Build(r types.Report, profiles []string, impl Implementation, env Environment) *ConformanceReport {
	cr := &ConformanceReport{APIVersion: APIVersion, Kind: "ConformanceReport", Date: time.Now().UTC().Format(time.RFC3339), Implementation: impl, Environment: env}
	byProfile := map[string]map[bool]*Results{}
	inconclusive, failed := false, false
	for _, s := range r.SpecReports {
		if s.LeafNodeType != types.NodeTypeIt {
			if s.State.Is(types.SpecStateFailureStates) {
				inconclusive = true // a setup node failed
			}
			continue
		}
		labels := s.Labels()
		profile := ""
		for _, p := range profiles {
			if slices.Contains(labels, p) {
				profile = p
			}
		}
		if profile == "" {
			continue
		}
		core := !slices.Contains(labels, "Optional")
		if byProfile[profile] == nil {
			byProfile[profile] = map[bool]*Results{}
		}
		res := byProfile[profile][core]
		if res == nil {
			res = &Results{}
			byProfile[profile][core] = res
		}
		view := "control-plane"
		if slices.Contains(labels, "data-plane") {
			view = "data-plane"
		}
		tr := TestResult{Name: s.LeafNodeText, View: view}
		switch {
		case s.State == types.SpecStatePassed:
			res.Statistics.Passed++
		case s.State == types.SpecStateSkipped || s.State == types.SpecStatePending:
			res.Statistics.Skipped++
			tr.Reason = s.Failure.Message
			res.SkippedTests = append(res.SkippedTests, tr)
		default:
			res.Statistics.Failed++
			tr.Reason = s.Failure.Message
			// A spec fails as non-conformant only when its check said so; a panic, a timeout or an
			// unexpected error is the harness's or the infrastructure's, not the mesh's.
			tr.Verdict = Inconclusive
			for _, e := range s.ReportEntries {
				if e.Name == "verdict" && e.StringRepresentation() == NonConformant {
					tr.Verdict = NonConformant
				}
			}
			if tr.Verdict == NonConformant {
				failed = true
			} else {
				inconclusive = true
			}
			res.FailedTests = append(res.FailedTests, tr)
		}
	}
	for _, p := range profiles {
		levels := byProfile[p]
		if levels == nil {
			continue
		}
		pr := ProfileReport{Name: p}
		if c := levels[true]; c != nil {
			c.Result = result(c)
			pr.Core = *c
		}
		if e := levels[false]; e != nil {
			e.Result = result(e)
			pr.Extended = e
		}
		pr.Summary = summary(pr)
		cr.Profiles = append(cr.Profiles, pr)
	}
	sort.SliceStable(cr.Profiles, func(i, j int) bool {
		return slices.Index(profiles, cr.Profiles[i].Name) < slices.Index(profiles, cr.Profiles[j].Name)
	})
	switch {
	case failed:
		cr.Verdict = NonConformant
	case inconclusive || !r.SuiteSucceeded:
		cr.Verdict = Inconclusive
	default:
		cr.Verdict = Conformant
	}
	return cr
}

func result(r *Results) string {
	switch {
	case r.Statistics.Failed > 0:
		return "failure"
	case r.Statistics.Skipped > 0:
		return "partial"
	}
	return "success"
}

func summary(p ProfileReport) string {
	s := p.Core.Statistics
	return strings.TrimSpace(strings.Join([]string{
		itoa(s.Passed) + " passed", itoa(s.Failed) + " failed", itoa(s.Skipped) + " skipped",
	}, ", "))
}

func itoa(n int) string { return strconv.Itoa(n) }
