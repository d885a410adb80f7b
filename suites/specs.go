package suites

import (
	"context"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2" //nolint:revive // Ginkgo's DSL
	"github.com/onsi/gomega"
	"github.com/onsi/gomega/gcustom"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/reports"
)

// Labels. Every spec has one profile, one level and one view (README table).
const (
	LabelRequired     = "Required"
	LabelOptional     = "Optional"
	LabelControlPlane = "control-plane"
	LabelDataPlane    = "data-plane"
)

// Profiles are the conformance profiles, in report order.
var Profiles = []string{"MC-DISCOVERY", "MC-MTLS", "MC-CROSS-NETWORK", "MC-PRIMARY-REMOTE", "MC-FEDERATION"}

// current is the target of the running suite (RunSpecs runs once per process).
var current *Target

// Settle is how long a convergence property (one that holds once istiod has pushed) may take: a
// failing check is retried (every Poll) until it passes or Settle ends. Window is how long a safety
// property (plaintext refused, cluster-local stays local, meshes apart) must hold: it is checked every
// Poll over the whole window, and a single violation fails it.
var (
	Settle = 5 * time.Second
	Window = 3 * time.Second
	Poll   = time.Second
)

// settleFrom is when the run began. Settle is the lab's, not each spec's: no spec changes the mesh, so
// a change made just before verify has had Settle to land once that much of the run has passed. A
// failing convergence check is retried until Settle has passed since settleFrom, and for at least
// minRetry, so one failing spec waits the settle time and the ones after it do not wait it again. Zero
// (a unit test calling runAttempts): every check gets the whole Settle.
var settleFrom time.Time

// settleLeft is how long a convergence check failing now is still retried.
func settleLeft() time.Duration {
	if settleFrom.IsZero() {
		return Settle
	}
	return max(time.Until(settleFrom.Add(Settle)), minRetry())
}

// minRetry is the least a failing convergence check is retried for: a fifth of Settle, at least two
// polls (a read that failed once is read again).
func minRetry() time.Duration { return max(Settle/5, 2*Poll) }

// Timing is how a run judges its checks over time (Settle, Window, Poll above).
type Timing struct {
	Settle, Window, Poll time.Duration
}

// DefaultTiming is the timing for a lab of a provider. A safety window must outlast a push in flight,
// so that a change made just before verify is seen: on the local provider istiod's leg of a change is
// 0.10-0.14 s (p50-p99) and the whole change, the Kubernetes leg included, 0.17-0.40 s p99 up to 1,000
// endpoints (`mclab bench --scenario propagation`), so a 1 s window polled every 250 ms holds 2.5 times
// the slowest figure measured. Where pods and proxies are real (kind, existing clusters) pushes cross
// real networks and nodes and nothing here measures them: the window stays 3 s, polled every second.
// Settle, the bound for a failing convergence check, is 5 s everywhere.
func DefaultTiming(p scenario.ProviderName) Timing {
	if p == scenario.ProviderLocal {
		return Timing{Settle: 5 * time.Second, Window: time.Second, Poll: 250 * time.Millisecond}
	}
	return Timing{Settle: 5 * time.Second, Window: 3 * time.Second, Poll: time.Second}
}

// Validate says what is wrong with a timing, naming the flag and the fix.
func (t Timing) Validate() error {
	switch {
	case t.Settle <= 0:
		return fmt.Errorf("--settle %s: give a positive duration, e.g. 5s (how long a failing check is retried)", t.Settle)
	case t.Window <= 0:
		return fmt.Errorf("--window %s: give a positive duration, e.g. 3s (how long a safety property must hold)", t.Window)
	case t.Poll <= 0 || t.Poll > t.Window:
		return fmt.Errorf("poll interval %s must be positive and at most --window %s", t.Poll, t.Window)
	}
	return nil
}

// property says how a check is judged over time.
type property int

const (
	// converges: Eventually passes within Settle.
	converges property = iota
	// holds: no violation over Window, from the first attempt (Consistently); what must appear after
	// a push (Unconverged) may take up to Settle (Eventually).
	holds
)

// attempt is one run of a check.
type attempt struct {
	at      time.Duration
	verdict Verdict
}

func (a attempt) outcome() string {
	switch {
	case len(a.verdict.Failures) > 0 || len(a.verdict.Unconverged) > 0:
		return reports.NonConformant
	case a.verdict.Inconclusive != nil:
		return reports.Inconclusive
	}
	return "passed"
}

// check judges a convergence property.
func check(ctx context.Context, f func(context.Context, *Target) Verdict) { judge(ctx, converges, f) }

// safety judges a safety property.
func safety(ctx context.Context, f func(context.Context, *Target) Verdict) { judge(ctx, holds, f) }

// judge runs f with Gomega's Eventually (converges) or Consistently (holds), records every attempt in
// the spec's report, and turns the final verdict into the spec's outcome: a violation fails the spec as
// non-conformant (naming anything that could not be judged too), a harness or infrastructure error
// alone fails it as inconclusive.
func judge(ctx context.Context, p property, f func(context.Context, *Target) Verdict) {
	attempts, final := runAttempts(ctx, current, p, f)
	AddReportEntry(reports.AttemptsEntry, summarizeAttempts(p, attempts), ReportEntryVisibilityFailureOrVerbose)
	for _, a := range attempts {
		AddReportEntry("attempt", fmt.Sprintf("+%s %s %s", a.at.Round(time.Millisecond), a.outcome(), oneLine(a.verdict)), ReportEntryVisibilityNever)
	}
	for _, e := range final.Evidence {
		AddReportEntry("evidence", e, ReportEntryVisibilityNever)
	}
	if final.diagnosed > 0 {
		AddReportEntry(reports.DiagnosisEntry, final.diagnosed.Round(time.Millisecond).String(), ReportEntryVisibilityNever)
	}
	if msg, verdict := outcome(final); verdict != "" {
		AddReportEntry(reports.VerdictEntry, verdict)
		Fail(msg)
	}
}

// outcome is the message and verdict of a final verdict ("" when it passed).
func outcome(v Verdict) (string, string) {
	switch {
	case len(v.Failures) > 0 || len(v.Unconverged) > 0:
		msg := strings.Join(append(append([]string{}, v.Failures...), v.Unconverged...), "\n")
		if v.Inconclusive != nil {
			msg += "\n(also not judged: " + v.Inconclusive.Error() + ")"
		}
		return msg, reports.NonConformant
	case v.Inconclusive != nil:
		return "inconclusive: " + v.Inconclusive.Error(), reports.Inconclusive
	}
	return "", ""
}

// runAttempts runs f until the property's rule is decided and returns every attempt and the verdict
// that stands: the first violation of a safety property, the last attempt of a convergence property.
func runAttempts(ctx context.Context, t *Target, p property, f func(context.Context, *Target) Verdict) ([]attempt, Verdict) {
	start := time.Now()
	var attempts []attempt
	probe := func() Verdict {
		v := f(ctx, t)
		attempts = append(attempts, attempt{time.Since(start), v})
		return v
	}
	passes := gcustom.MakeMatcher(func(v Verdict) (bool, error) { return v.Passed(), nil })
	g := gomega.NewGomega(func(string, ...int) {})
	switch p {
	case holds:
		safe := gcustom.MakeMatcher(func(v Verdict) (bool, error) { return !v.violated(), nil })
		g.Consistently(ctx, probe).WithTimeout(Window).WithPolling(Poll).Should(safe)
		if n := len(attempts); n > 0 && !attempts[n-1].verdict.violated() && !attempts[n-1].verdict.Passed() {
			// No violation, but not everything is there yet: wait for it, still watching for violations.
			g.Eventually(ctx, probe).WithTimeout(settleLeft()).WithPolling(Poll).Should(gcustom.MakeMatcher(func(v Verdict) (bool, error) {
				return v.Passed() || v.violated(), nil
			}))
		}
		for i, a := range attempts {
			if a.verdict.violated() {
				return stands(attempts, i)
			}
		}
	default:
		g.Eventually(ctx, probe).WithTimeout(settleLeft()).WithPolling(Poll).Should(passes)
	}
	if len(attempts) == 0 {
		return attempts, Verdict{Inconclusive: fmt.Errorf("the check never ran: %v", context.Cause(ctx))}
	}
	return stands(attempts, len(attempts)-1)
}

// stands makes attempt i the verdict that stands, with its causes derived: only this attempt pays for
// the diagnosis chain, not every poll before it.
func stands(attempts []attempt, i int) ([]attempt, Verdict) {
	attempts[i].verdict = attempts[i].verdict.explained()
	return attempts, attempts[i].verdict
}

// summarizeAttempts says how a check went over time: "passed after 2 failures in 3s", "held over 4
// attempts in 3s", "violated at attempt 3 of 4 (passed 2 before)".
func summarizeAttempts(p property, attempts []attempt) string {
	if len(attempts) == 0 {
		return "no attempt"
	}
	last := attempts[len(attempts)-1]
	bad := 0
	for _, a := range attempts {
		if !a.verdict.Passed() {
			bad++
		}
	}
	span := last.at.Round(100 * time.Millisecond)
	if p == holds {
		for i, a := range attempts {
			if a.verdict.violated() {
				return fmt.Sprintf("violated at attempt %d of %d over %s (held %d times before)", i+1, len(attempts), span, i)
			}
		}
		if bad == 0 {
			return fmt.Sprintf("held over %d attempts in %s", len(attempts), span)
		}
		if last.verdict.Passed() {
			return fmt.Sprintf("held over %d attempts in %s (converged after %d)", len(attempts), span, bad)
		}
		return fmt.Sprintf("not judged in %d of %d attempts over %s", bad, len(attempts), span)
	}
	switch {
	case last.verdict.Passed() && bad == 0:
		return "passed at the first attempt"
	case last.verdict.Passed():
		return fmt.Sprintf("passed after %d failures in %s", bad, span)
	}
	return fmt.Sprintf("failed %d of %d attempts over %s", bad, len(attempts), span)
}

func oneLine(v Verdict) string {
	msg, _ := outcome(v)
	msg = strings.ReplaceAll(msg, "\n", "; ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}

// notApplicable skips a spec that does not apply to the scenario (another model's profile): it is
// reported as not applicable, neither a pass nor a gap in the scope.
func notApplicable(reason string) {
	AddReportEntry(reports.ApplicabilityEntry, reports.NotApplicable)
	Skip(reason)
}

// needsSidecarSamples leaves a spec out of the scope when the lab deploys no sidecar samples (the
// scope names it, so a conformant verdict never claims it).
func needsSidecarSamples() {
	if !scenario.HasSidecarSamples(current.Scenario) {
		AddReportEntry(reports.ScopeEntry, reports.OutOfScope)
		Skip(SidecarSampleChecks + ": " + noSidecarSamples(current))
	}
}

// needsDiscoverySample leaves a spec out of the scope when the lab deploys neither helloworld (sidecar
// samples) nor the echo app (proxyless samples) for the discovery checks to read.
func needsDiscoverySample() {
	if !scenario.HasSidecarSamples(current.Scenario) && !scenario.HasProxylessSamples(current.Scenario) {
		AddReportEntry(reports.ScopeEntry, reports.OutOfScope)
		Skip(SidecarSampleChecks + ": " + noSidecarSamples(current))
	}
}

// dataPlane judges a data-plane check, or skips it where pods run no containers, saying why. A skip
// inside the run's scope makes the run inconclusive (reports.Build).
func dataPlane(ctx context.Context, what string, p property, f func(context.Context, *Target) Verdict) {
	if why := current.dataPlaneUnavailable(); why != "" {
		Skip(fmt.Sprintf("data-plane check (%s): %s", what, why))
	}
	judge(ctx, p, f)
}

func multiNetwork() bool {
	for _, m := range current.Scenario.Meshes {
		if current.topo().MultiNetworkMesh(m.ID) {
			return true
		}
	}
	return false
}

var _ = Describe("MC-DISCOVERY", Label("MC-DISCOVERY"), func() {
	It("every primary's istiod has each cluster of its mesh synced", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRemoteClustersSynced)
	})
	It("a client in every cluster gets a sample's endpoints from every cluster of its mesh", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsDiscoverySample()
		check(ctx, CheckEndpoints)
	})
	It("a cluster-local service stays in its cluster", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		safety(ctx, CheckClusterLocal)
	})
	It("proxyless gRPC clients reach echo in every cluster of the mesh", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		if !scenario.HasProxylessSamples(current.Scenario) {
			notApplicable("the lab deploys no proxyless samples (istio.samples: " + scenario.SampleSet(current.Scenario) + ")")
		}
		dataPlane(ctx, "echo client xds:///echo.proxyless:7070 from every cluster", converges, CheckProxylessReached)
	})
	It("every remote secret's API server answers its credentials now and grants what istiod needs", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRemoteAPIServers)
	})
	It("every cluster of a mesh runs the mesh's ID and trust domain", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckMeshIdentity)
	})
	It("requests from curl reach helloworld in every cluster", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		dataPlane(ctx, "curl helloworld.sample:5000 from every cluster, ReachedClusters semantics", converges, CheckReachedClusters)
	})
})

var _ = Describe("MC-MTLS", Label("MC-MTLS"), func() {
	It("every cluster of a mesh plugs in the same root", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRootsEqual)
	})
	It("workload certificates chain to the mesh root, carry SPIFFE identities and verify across clusters", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckWorkloadCertificates)
	})
	It("clients in every cluster reach the mesh's services over Istio mTLS", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		safety(ctx, CheckClientMTLS)
	})
	It("X-Forwarded-Client-Cert shows the caller's identity", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		dataPlane(ctx, "XFCC from httpbin", converges, CheckXFCC)
	})
	It("plaintext is refused under STRICT PeerAuthentication", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		dataPlane(ctx, "plaintext from a client without a sidecar under STRICT", holds, CheckPlaintextRefused)
	})
})

var _ = Describe("MC-CROSS-NETWORK", Label("MC-CROSS-NETWORK"), func() {
	BeforeEach(func() {
		if !multiNetwork() {
			notApplicable("the scenario has no mesh that spans networks")
		}
	})
	It("every cluster's istio-system carries its network", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckNetworkLabels)
	})
	It("other networks' endpoints appear only as their east-west gateway on 15443, weighted by their endpoints", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		// Needs mTLS servers: istiod sends another network's endpoints through its gateway only for
		// them, and the proxyless echo app serves plaintext.
		needsSidecarSamples()
		check(ctx, CheckEndpoints)
	})
	It("every east-west gateway passes the mesh's services on its 15443 AUTO_PASSTHROUGH listener", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsDiscoverySample()
		check(ctx, CheckGatewayConfig)
	})
	It("every east-west gateway runs a Ready pod", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		dataPlane(ctx, "east-west gateway pods", converges, CheckGatewaysRunning)
	})
	It("requests cross networks through the east-west gateways", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		dataPlane(ctx, "requests across networks", converges, CheckReachedClusters)
	})
	It("the east-west gateways' 15443 traffic rises", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		dataPlane(ctx, "gateway stats on 15443", converges, CheckGatewayTraffic)
	})
})

var _ = Describe("MC-PRIMARY-REMOTE", Label("MC-PRIMARY-REMOTE"), func() {
	BeforeEach(func() {
		if current.Scenario.Istio.Model != scenario.PrimaryRemote {
			notApplicable("the scenario's model is " + string(current.Scenario.Istio.Model))
		}
	})
	It("remote pods are injected by their primary, discovered through it and certified by its CA", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckRemotesServed)
	})
})

var _ = Describe("MC-FEDERATION", Label("MC-FEDERATION"), func() {
	BeforeEach(func() {
		if current.Scenario.Istio.Model != scenario.Federated {
			notApplicable("the scenario's model is " + string(current.Scenario.Istio.Model))
		}
	})
	It("exported services are reachable from other meshes only through the exporting gateway", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		safety(ctx, CheckFederation)
	})
	It("each mesh's east-west gateways pass exactly the services it exports", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		needsSidecarSamples()
		check(ctx, CheckGatewayConfig)
	})
	It("every exporting mesh's east-west gateway runs a Ready pod", Label(LabelRequired, LabelDataPlane), func(ctx SpecContext) {
		exports := 0
		for _, m := range current.Scenario.Meshes {
			exports += len(meshExports(current.Scenario, m.ID))
		}
		if exports == 0 {
			notApplicable("no mesh exports a service (istio.federation.exports)")
		}
		dataPlane(ctx, "east-west gateway pods", converges, CheckGatewaysRunning)
	})
	It("each mesh's sidecars trust the other meshes' workload certificates", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckTrustBundle)
	})
	It("workload identities carry each mesh's own trust domain", Label(LabelRequired, LabelControlPlane), func(ctx SpecContext) {
		check(ctx, CheckWorkloadCertificates)
	})
})
