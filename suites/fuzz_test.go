package suites

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
)

// filterBound is how long resolving one --label-filter may take: a crash, a hang past it, or an error in
// terminal markup is a failure (issue 29).
const filterBound = time.Second

// FuzzLabelFilter: whatever a user passes as --label-filter (with or without --view), ResolveScope never
// crashes or hangs; a bad filter is a UsageError in plain text that quotes the filter, and an accepted
// one gives Ginkgo a filter it parses too (the view's label and'ed in), so Ginkgo never exits the
// process on it. make test runs the seed corpus; make test-long fuzzes.
func FuzzLabelFilter(f *testing.F) {
	for _, l := range KnownLabels() {
		f.Add(l, "")
	}
	for _, s := range []string{
		"", "Required", "MC-MTLS && (Required", "a,b/c", "MC-MTLS &&", "!(Optional || data-plane)",
		"/MC-.*/", "/[/", "((((((((((((a))))))))))))", "a && !b || c", "{{red}}x", "\x1b[31mx",
		"Required: {x}", "Required: isEmpty", "key: consistsOf {a, b}", "&&", "||", "!", "(", ")",
	} {
		f.Add(s, "")
		f.Add(s, ViewControlPlane)
	}
	f.Add("Required", ViewAll)
	f.Add("Required", ViewDataPlane)
	f.Add("", "no-such-view")
	f.Fuzz(func(t *testing.T, filter, view string) {
		start := time.Now()
		scope, ginkgoFilter, err := ResolveScope(&Target{Provider: "local"}, view, filter)
		if took := time.Since(start); took > filterBound {
			t.Fatalf("ResolveScope took %s (bound %s) on a %d-byte filter", took, filterBound, len(filter))
		}
		if err != nil {
			var ue *UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("filter %q view %q: %v is not a UsageError (exit 2)", filter, view, err)
			}
			msg := err.Error()
			if strings.Contains(msg, "{{") && !strings.Contains(filter, "{{") && !strings.Contains(view, "{{") {
				t.Fatalf("the error carries Ginkgo's formatter markup: %q", msg)
			}
			if strings.Contains(msg, "\x1b[") && !strings.Contains(filter, "\x1b[") && !strings.Contains(view, "\x1b[") {
				t.Fatalf("the error carries terminal escape codes: %q", msg)
			}
			return
		}
		if _, err := types.ParseLabelFilter(ginkgoFilter); err != nil {
			t.Fatalf("accepted filter %q (view %q), but Ginkgo's filter %q does not parse: %v", filter, view, ginkgoFilter, err)
		}
		if len(scope.Views) == 0 {
			t.Fatalf("accepted filter %q (view %q) with no view to judge", filter, view)
		}
	})
}
