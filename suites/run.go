package suites

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL
	"github.com/onsi/ginkgo/v2/types"
)

// Options configure a run.
type Options struct {
	// ReportDir receives junit.xml and ginkgo.json.
	ReportDir string
	// LabelFilter is Ginkgo's label filter (e.g. "MC-MTLS && Required"), already validated and combined
	// with the view (ResolveScope).
	LabelFilter string
	// Timeout bounds the whole run.
	Timeout time.Duration
	// Verbose prints every spec.
	Verbose bool
	// Timing judges the checks over time; zero: DefaultTiming of the target's provider.
	Timing Timing
}

// captured is the suite's report, taken in ReportAfterSuite.
var captured types.Report

var _ = ReportAfterSuite("mclab capture", func(r Report) { captured = r })

// failer satisfies Ginkgo's GinkgoTestingT outside `go test`.
type failer struct{ failed bool }

func (f *failer) Fail() { f.failed = true }

// Run runs the suites against t, once per process (Ginkgo's rule), writing JUnit XML and Ginkgo JSON
// into opts.ReportDir, and returns Ginkgo's report.
func Run(t *Target, opts Options) (types.Report, error) {
	current = t
	timing := opts.Timing
	if timing == (Timing{}) {
		timing = DefaultTiming(t.Provider)
	}
	if err := timing.Validate(); err != nil {
		return types.Report{}, &UsageError{err}
	}
	Settle, Window, Poll = timing.Settle, timing.Window, timing.Poll
	settleFrom = time.Now()
	defer func() { settleFrom = time.Time{} }()
	if err := os.MkdirAll(opts.ReportDir, 0o700); err != nil {
		return types.Report{}, err
	}
	// Ginkgo exits the process on a filter it cannot parse: never let it.
	if _, err := types.ParseLabelFilter(opts.LabelFilter); err != nil {
		return types.Report{}, &UsageError{fmt.Errorf("--label-filter %q: %s", opts.LabelFilter, plainFilterError(err))}
	}
	suiteConfig, reporterConfig := GinkgoConfiguration()
	suiteConfig.LabelFilter = opts.LabelFilter
	suiteConfig.Timeout = opts.Timeout
	if suiteConfig.Timeout == 0 {
		suiteConfig.Timeout = 10 * time.Minute
	}
	reporterConfig.JUnitReport = filepath.Join(opts.ReportDir, "junit.xml")
	reporterConfig.JSONReport = filepath.Join(opts.ReportDir, "ginkgo.json")
	reporterConfig.NoColor = true
	reporterConfig.Succinct = !opts.Verbose
	reporterConfig.Verbose = opts.Verbose
	RunSpecs(&failer{}, fmt.Sprintf("mclab conformance: %s", t.Lab), suiteConfig, reporterConfig)
	return captured, nil
}
