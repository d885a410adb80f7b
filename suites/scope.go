package suites

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/onsi/ginkgo/v2/types"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/reports"
)

// Views a user can ask for with --view.
const (
	ViewAll          = "all"
	ViewControlPlane = reports.ControlPlane
	ViewDataPlane    = reports.DataPlane
)

// KnownLabels lists every label a spec can carry, for --label-filter's help and errors.
func KnownLabels() []string {
	return append(append([]string{}, Profiles...), LabelRequired, LabelOptional, LabelControlPlane, LabelDataPlane)
}

// UsageError is a mistake in what the user asked for (a flag, a filter): mclab verify exits 2 with it
// before reaching the lab.
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ResolveScope turns --view and --label-filter into the scope a run judges and the label filter Ginkgo
// runs with. The filter is validated here (Ginkgo's own parser), so Ginkgo never exits the process on a
// bad one. With no view asked for, the scope is every view the target can run, and each view it cannot
// is named with the reason; an explicit view is judged even where it cannot run (its Required specs are
// then skipped, and the run is inconclusive, never conformant).
func ResolveScope(t *Target, view, labelFilter string) (reports.Scope, string, error) {
	// A blank filter selects every spec, as none does (Ginkgo itself refuses " ": "Unexpected EOF").
	labelFilter = strings.TrimSpace(labelFilter)
	var filter func([]string) bool
	if labelFilter != "" {
		f, err := types.ParseLabelFilter(labelFilter)
		if err != nil {
			return reports.Scope{}, "", &UsageError{fmt.Errorf("--label-filter %q is not a valid Ginkgo label filter: %s; labels: %s (combine with &&, ||, !, parentheses)",
				labelFilter, plainFilterError(err), strings.Join(KnownLabels(), ", "))}
		}
		filter = f
	}
	ginkgoFilter := labelFilter
	and := func(label string) {
		if ginkgoFilter == "" {
			ginkgoFilter = label
		} else {
			ginkgoFilter = "(" + ginkgoFilter + ") && " + label
		}
	}
	var notRun []reports.NotRun
	if t.Scenario != nil && !scenario.HasSidecarSamples(t.Scenario) {
		notRun = append(notRun, reports.NotRun{View: SidecarSampleChecks, Reason: noSidecarSamples(t)})
	}
	dataPlaneReason := t.dataPlaneUnavailable()
	switch view {
	case "":
		views := []string{ViewControlPlane}
		if dataPlaneReason == "" {
			views = append(views, ViewDataPlane)
		} else {
			notRun = append(notRun, reports.NotRun{View: ViewDataPlane, Reason: dataPlaneReason})
		}
		return reports.NewScope(views, labelFilter, filter, notRun, false), ginkgoFilter, nil
	case ViewAll:
		return reports.NewScope([]string{ViewControlPlane, ViewDataPlane}, labelFilter, filter, notRun, true), ginkgoFilter, nil
	case ViewControlPlane, ViewDataPlane:
		and(view)
		// The user's filter parses alone but may not once the view is and'ed in (a lone "/" opens a
		// regular expression that swallows the rest): what Ginkgo gets must parse too.
		if _, err := types.ParseLabelFilter(ginkgoFilter); err != nil {
			return reports.Scope{}, "", &UsageError{fmt.Errorf("--label-filter %q cannot be combined with --view %s (%s): %s; labels: %s",
				labelFilter, view, ginkgoFilter, plainFilterError(err), strings.Join(KnownLabels(), ", "))}
		}
		return reports.NewScope([]string{view}, labelFilter, filter, notRun, true), ginkgoFilter, nil
	}
	return reports.Scope{}, "", &UsageError{fmt.Errorf("--view %q: want %s, %s or %s", view, ViewControlPlane, ViewDataPlane, ViewAll)}
}

// SidecarSampleChecks names, in the scope, the specs that need the sidecar samples.
const SidecarSampleChecks = "sidecar-sample checks"

func noSidecarSamples(t *Target) string {
	return fmt.Sprintf("the lab deploys no sidecar samples (istio.samples: %s)", scenario.SampleSet(t.Scenario))
}

// dataPlaneUnavailable says why data-plane checks cannot run against t, or "" when they can.
func (t *Target) dataPlaneUnavailable() string {
	switch {
	case !t.Capabilities.RunsContainers:
		if t.Capabilities.NoContainersReason != "" {
			return t.Capabilities.NoContainersReason
		}
		return fmt.Sprintf("provider %s runs no containers", t.Provider)
	case t.Exec == nil:
		return "no way to run commands in this provider's pods"
	}
	return ""
}

// markup is Ginkgo's formatter markup ({{red}}) and terminal escape codes: an error a user reads in a
// file, a pipe or a CI log carries neither.
var markup = regexp.MustCompile(`\{\{[a-z/-]*\}\}|\x1b\[[0-9;]*m`)

// plainFilterError is Ginkgo's label filter error as plain text: "Syntax Error Parsing Label Filter at
// character 10: <what>", with no colour codes, whatever the output is.
func plainFilterError(err error) string {
	var ge types.GinkgoError
	if !errors.As(err, &ge) {
		return strings.TrimSpace(markup.ReplaceAllString(firstLine(err.Error()), ""))
	}
	lines := strings.Split(ge.Message, "\n")
	out := ge.Heading
	if i := strings.Index(lines[0], "{{red}}"); i >= 0 && len(lines) > 1 {
		out += fmt.Sprintf(" at character %d", len([]rune(markup.ReplaceAllString(lines[0][:i], "")))+1)
	}
	if what := strings.TrimRight(strings.TrimSpace(markup.ReplaceAllString(lines[len(lines)-1], "")), "."); what != "" && len(lines) > 1 {
		out += ": " + what
	}
	return out
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}
