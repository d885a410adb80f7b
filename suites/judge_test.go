package suites

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"mclab.dev/mclab/lab/scenario"
)

// sequence returns a check that gives the verdicts in order, then repeats the last.
func sequence(vs ...Verdict) func(context.Context, *Target) Verdict {
	i := 0
	return func(context.Context, *Target) Verdict {
		v := vs[min(i, len(vs)-1)]
		i++
		return v
	}
}

var (
	pass   = Verdict{}
	broken = Verdict{Failures: []string{"plaintext accepted"}}
	infra  = Verdict{Inconclusive: errors.New("port-forward to istiod: connection refused")}
)

func fastTiming(t *testing.T) {
	t.Helper()
	s, w, p := Settle, Window, Poll
	Settle, Window, Poll = 300*time.Millisecond, 300*time.Millisecond, 50*time.Millisecond
	t.Cleanup(func() { Settle, Window, Poll = s, w, p })
}

func TestConvergencePassesAfterFailuresAndSaysSo(t *testing.T) {
	fastTiming(t)
	attempts, final := runAttempts(context.Background(), &Target{}, converges, sequence(broken, broken, pass))
	if !final.Passed() || len(attempts) != 3 {
		t.Fatalf("final %+v after %d attempts", final, len(attempts))
	}
	if got := summarizeAttempts(converges, attempts); !strings.HasPrefix(got, "passed after 2 failures in ") {
		t.Errorf("summary %q", got)
	}
}

func TestConvergenceThatNeverPassesFails(t *testing.T) {
	fastTiming(t)
	attempts, final := runAttempts(context.Background(), &Target{}, converges, sequence(broken))
	if msg, verdict := outcome(final); verdict != "non-conformant" || msg != "plaintext accepted" {
		t.Errorf("outcome %q %q", verdict, msg)
	}
	if got := summarizeAttempts(converges, attempts); !strings.HasPrefix(got, "failed ") {
		t.Errorf("summary %q", got)
	}
}

// A safety property that is violated once in five attempts is violated: the first success must not
// hide it (the old retry passed on the first success).
func TestSafetyFlappingPropertyFails(t *testing.T) {
	fastTiming(t)
	attempts, final := runAttempts(context.Background(), &Target{}, holds, sequence(pass, pass, broken, pass, pass))
	if len(final.Failures) == 0 {
		t.Fatalf("a flapping safety property passed after %d attempts", len(attempts))
	}
	if got := summarizeAttempts(holds, attempts); !strings.HasPrefix(got, "violated at attempt 3 of 3") {
		t.Errorf("summary %q", got)
	}
}

func TestSafetyHoldsOverTheWindow(t *testing.T) {
	fastTiming(t)
	attempts, final := runAttempts(context.Background(), &Target{}, holds, sequence(pass))
	if !final.Passed() || len(attempts) < 3 {
		t.Fatalf("final %+v, %d attempts", final, len(attempts))
	}
	if got := summarizeAttempts(holds, attempts); !strings.HasPrefix(got, "held over ") {
		t.Errorf("summary %q", got)
	}
}

// A violation found in one part of a check stands beside a part that could not be judged.
func TestViolationBesideInconclusive(t *testing.T) {
	both := Verdict{Failures: []string{"istiod of c1 runs mesh ID \"x\""}}
	both.cannot("istiod of c2 /debug/mesh: connection refused")
	msg, verdict := outcome(both)
	if verdict != "non-conformant" || !strings.Contains(msg, `mesh ID "x"`) || !strings.Contains(msg, "also not judged: istiod of c2") {
		t.Errorf("outcome %q %q", verdict, msg)
	}
	if _, verdict := outcome(infra); verdict != "inconclusive" {
		t.Errorf("infra alone must be inconclusive, got %s", verdict)
	}
}

func TestRecordSortsFindingsFromInfrastructure(t *testing.T) {
	var v Verdict
	v.record(finding(errors.New("x509: certificate signed by unknown authority")), "reading the endpoints of c1")
	v.record(errors.New("dial tcp 127.0.0.1:15012: connect: connection refused"), "reading the endpoints of c2")
	if len(v.Failures) != 1 || !strings.Contains(v.Failures[0], "c1: x509") {
		t.Errorf("failures %q", v.Failures)
	}
	if v.Inconclusive == nil || !strings.Contains(v.Inconclusive.Error(), "c2: dial tcp") {
		t.Errorf("inconclusive %v", v.Inconclusive)
	}
}

func TestResolveScope(t *testing.T) {
	local := &Target{Provider: "local"}
	local.Capabilities.NoContainersReason = "provider local runs no containers"
	s, filter, err := ResolveScope(local, "", "")
	if err != nil || s.String() != "control plane; data plane not run: provider local runs no containers" || filter != "" {
		t.Errorf("default on local: %q %q %v", s.String(), filter, err)
	}
	s, filter, err = ResolveScope(local, "control-plane", "MC-MTLS")
	if err != nil || filter != "(MC-MTLS) && control-plane" || !s.Explicit {
		t.Errorf("explicit view: %q %v", filter, err)
	}
	if _, _, err := ResolveScope(local, "all", ""); err != nil {
		t.Errorf("all: %v", err)
	}
	var ue *UsageError
	if _, _, err := ResolveScope(local, "everything", ""); !errors.As(err, &ue) || !strings.Contains(err.Error(), "--view") {
		t.Errorf("bad view: %v", err)
	}
	if _, _, err := ResolveScope(local, "", "MC-MTLS &&"); !errors.As(err, &ue) || !strings.Contains(err.Error(), "labels: MC-DISCOVERY") {
		t.Errorf("bad filter: %v", err)
	}
}

// A safety check waits for what must appear after a push (an import, an endpoint), but never lets a
// violation pass.
func TestSafetyWaitsForConvergenceNotForViolations(t *testing.T) {
	fastTiming(t)
	pending := Verdict{Unconverged: []string{"a client in c2 gets no endpoint for httpbin"}}
	attempts, final := runAttempts(context.Background(), &Target{}, holds, sequence(pending, pending, pass))
	if !final.Passed() {
		t.Errorf("a property that converged failed: %+v", final)
	}
	if got := summarizeAttempts(holds, attempts); !strings.Contains(got, "converged after 2") {
		t.Errorf("summary %q", got)
	}
	_, final = runAttempts(context.Background(), &Target{}, holds, sequence(pending))
	if msg, verdict := outcome(final); verdict != "non-conformant" || !strings.Contains(msg, "no endpoint for httpbin") {
		t.Errorf("never converged: %q %q", verdict, msg)
	}
	_, final = runAttempts(context.Background(), &Target{}, holds, sequence(pending, broken, pass))
	if !final.violated() {
		t.Errorf("a violation while converging must stand: %+v", final)
	}
}

// The local provider's window (1 s, polled every 250 ms) still catches a violation that a push in
// flight makes visible after 0.4 s, the slowest propagation measured there (p99 at 1,000 endpoints);
// kind and existing clusters keep the 3 s window.
func TestLocalWindowCatchesAPushInFlight(t *testing.T) {
	local := DefaultTiming("local")
	if local.Window != time.Second || local.Poll != 250*time.Millisecond || local.Settle != 5*time.Second {
		t.Fatalf("local timing %+v", local)
	}
	for _, p := range []string{"kind", "existing"} {
		if got := DefaultTiming(scenario.ProviderName(p)); got.Window != 3*time.Second || got.Poll != time.Second {
			t.Errorf("%s timing %+v", p, got)
		}
	}
	s, w, p := Settle, Window, Poll
	Settle, Window, Poll = local.Settle, local.Window, local.Poll
	t.Cleanup(func() { Settle, Window, Poll = s, w, p })
	start := time.Now()
	lateViolation := func(context.Context, *Target) Verdict {
		if time.Since(start) > 400*time.Millisecond {
			return broken
		}
		return pass
	}
	if _, final := runAttempts(context.Background(), &Target{}, holds, lateViolation); len(final.Failures) == 0 {
		t.Errorf("a violation visible after 0.4 s passed the local window")
	}
}

func TestTimingValidateNamesTheFlag(t *testing.T) {
	for _, tc := range []struct {
		t    Timing
		want string
	}{
		{Timing{Settle: -time.Second, Window: time.Second, Poll: time.Millisecond}, "--settle -1s: give a positive duration"},
		{Timing{Settle: time.Second, Window: -time.Second, Poll: time.Millisecond}, "--window -1s: give a positive duration"},
		{Timing{Settle: time.Second, Window: time.Second, Poll: 2 * time.Second}, "at most --window 1s"},
	} {
		if err := tc.t.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Validate(%+v) = %v, want %q", tc.t, err, tc.want)
		}
	}
	if err := DefaultTiming("local").Validate(); err != nil {
		t.Error(err)
	}
}

// A failing check derives its cause once, for the verdict that stands, not on every poll of the settle
// window (the diagnosis chain reads istiod's debug state and asks the API servers each time).
func TestCauseIsDerivedOnlyForTheVerdictThatStands(t *testing.T) {
	fastTiming(t)
	derived := 0
	failing := func(context.Context, *Target) Verdict {
		var v Verdict
		v.failWhy(func() string {
			derived++
			time.Sleep(20 * time.Millisecond) // the diagnosis chain's reads
			return "Sidecar sample/default: egress.hosts [./*]"
		}, "a client in c1 misses helloworld endpoints of c2")
		v.notYetWhy(func() string { derived++; return "ServiceEntry gone" }, "a client in c1 gets no cluster x")
		return v
	}
	attempts, final := runAttempts(context.Background(), &Target{}, converges, failing)
	if len(attempts) < 3 {
		t.Fatalf("only %d attempts: the check was not polled", len(attempts))
	}
	if derived != 2 {
		t.Errorf("causes derived %d times over %d attempts, want 2 (once each, on the final attempt)", derived, len(attempts))
	}
	msg, verdict := outcome(final)
	want := "a client in c1 misses helloworld endpoints of c2: Sidecar sample/default: egress.hosts [./*]\na client in c1 gets no cluster x: ServiceEntry gone"
	if verdict != "non-conformant" || msg != want {
		t.Errorf("outcome %q\n%q, want\n%q", verdict, msg, want)
	}
	if last := attempts[len(attempts)-1].verdict; !strings.Contains(oneLine(last), "Sidecar sample/default") {
		t.Errorf("the last attempt's record lacks the cause: %q", oneLine(last))
	}
	// The time the derivation took is what the report's diagnosis entry carries.
	if final.diagnosed < 20*time.Millisecond || final.diagnosed > 5*time.Second {
		t.Errorf("diagnosed in %s, want the derivation's own time (>= 20ms)", final.diagnosed)
	}
	var healthy Verdict
	if healthy.explained().diagnosed != 0 {
		t.Error("a verdict with no cause to derive records a diagnosis time")
	}

	// A safety violation stands at its attempt: that attempt's cause is derived, once.
	derived = 0
	n := 0
	flapping := func(context.Context, *Target) Verdict {
		n++
		var v Verdict
		if n == 2 {
			v.failWhy(func() string { derived++; return "PeerAuthentication sample/default: mtls.mode DISABLE" }, "plaintext accepted")
		}
		return v
	}
	_, final = runAttempts(context.Background(), &Target{}, holds, flapping)
	if msg, _ := outcome(final); derived != 1 || msg != "plaintext accepted: PeerAuthentication sample/default: mtls.mode DISABLE" {
		t.Errorf("safety: derived %d times, outcome %q", derived, msg)
	}
}

// A bad --label-filter is a usage error in plain text: where it broke and why, with no Ginkgo markup or
// terminal colour codes (it goes to files, pipes and CI logs; issue 29).
func TestLabelFilterErrorIsPlainText(t *testing.T) {
	for filter, want := range map[string]string{
		"MC-MTLS && (Required": "Syntax Error Parsing Label Filter at character 12: Mismatched '(' - could not find matching ')';",
		"a,b/c":                "Syntax Error Parsing Label Filter at character 4: Found two adjacent labels.  You need an operator between them;",
		"MC-MTLS &&":           "Syntax Error Parsing Label Filter",
	} {
		_, _, err := ResolveScope(&Target{}, "", filter)
		var ue *UsageError
		if !errors.As(err, &ue) {
			t.Fatalf("%q: %v, want a usage error", filter, err)
		}
		msg := err.Error()
		if !strings.Contains(msg, want) || strings.ContainsAny(msg, "\x1b") || strings.Contains(msg, "{{") {
			t.Errorf("%q:\n  %q\nwant plain text containing %q", filter, msg, want)
		}
	}
}

// The settle time is the run's: a convergence check failing early in the run is retried until Settle has
// passed since the run began; one failing later is retried only for minRetry, not a whole Settle again;
// a check that converges within its retries still passes.
func TestSettleIsTheRunsNotEachSpecs(t *testing.T) {
	fastTiming(t) // Settle 300 ms, Poll 50 ms: minRetry 100 ms
	failing := func(context.Context, *Target) Verdict {
		var v Verdict
		v.fail("a client in c1 misses helloworld endpoints of c2")
		return v
	}
	settleFrom = time.Now()
	t.Cleanup(func() { settleFrom = time.Time{} })
	start := time.Now()
	if _, final := runAttempts(context.Background(), &Target{}, converges, failing); final.Passed() {
		t.Fatal("a failing check passed")
	}
	if took := time.Since(start); took < Settle-Poll || took > Settle+4*Poll {
		t.Errorf("the first failing check took %s, want about the settle time %s", took, Settle)
	}
	start = time.Now()
	attempts, _ := runAttempts(context.Background(), &Target{}, converges, failing)
	if took := time.Since(start); took < minRetry()-Poll || took > minRetry()+4*Poll || len(attempts) < 2 {
		t.Errorf("the second failing check took %s over %d attempts, want about minRetry %s and at least 2 attempts", took, len(attempts), minRetry())
	}
	if _, final := runAttempts(context.Background(), &Target{}, converges, sequence(broken, pass)); !final.Passed() {
		t.Error("a check that passes on its retry after the settle time failed")
	}
	// A safety property's settle part follows the same rule; its window is its own.
	start = time.Now()
	runAttempts(context.Background(), &Target{}, holds, func(context.Context, *Target) Verdict {
		var v Verdict
		v.notYet("not there yet")
		return v
	})
	if took := time.Since(start); took < Window+minRetry()-Poll || took > Window+minRetry()+4*Poll {
		t.Errorf("a safety check took %s, want its window %s and minRetry %s", took, Window, minRetry())
	}
}
