package bench

import (
	"context"
	"math"
	"os"
	"strings"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	var s []float64
	for i := 100; i >= 1; i-- { // 1..100, unsorted on purpose
		s = append(s, float64(i))
	}
	got := Summarize(s)
	want := Summary{Count: 100, P50: 50, P90: 90, P99: 99, Max: 100, Min: 1, Mean: 50.5}
	if got != want {
		t.Errorf("Summarize(1..100) = %+v, want %+v", got, want)
	}
	if s[0] != 100 {
		t.Error("Summarize sorted its input in place")
	}
	// Few samples: nearest rank never interpolates, p99 of 5 samples is the max.
	if got := Summarize([]float64{0.3, 0.1, 0.2, 0.5, 0.4}); got.P50 != 0.3 || got.P90 != 0.5 || got.P99 != 0.5 || got.Count != 5 {
		t.Errorf("5 samples: %+v", got)
	}
	if got := Summarize([]float64{7}); got.P50 != 7 || got.P99 != 7 || got.Max != 7 {
		t.Errorf("1 sample: %+v", got)
	}
	if got := Summarize(nil); got.Count != 0 {
		t.Errorf("no samples: %+v", got)
	}
}

func TestFitPowerLaw(t *testing.T) {
	for _, tc := range []struct {
		k, a float64
		grow string
	}{{1, 3, "grows linearly"}, {2, 0.5, "grows quadratically or faster"}, {0.5, 10, "grows sub-linearly"}, {0, 42, "stays flat"}} {
		var x, y []float64
		for _, xi := range []float64{2, 5, 10, 20} {
			x = append(x, xi)
			y = append(y, tc.a*math.Pow(xi, tc.k))
		}
		f, err := FitPowerLaw(x, y)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(f.Exponent-tc.k) > 1e-9 || math.Abs(f.A-tc.a) > 1e-9 || math.Abs(f.R2-1) > 1e-9 || f.Points != 4 {
			t.Errorf("fit of %g x^%g: %+v", tc.a, tc.k, f)
		}
		if f.Growth() != tc.grow {
			t.Errorf("k=%g: %q, want %q", tc.k, f.Growth(), tc.grow)
		}
	}
	// Noisy linear data still fits near 1, with R2 below 1.
	f, err := FitPowerLaw([]float64{2, 5, 10, 20}, []float64{210, 480, 1050, 1950})
	if err != nil || math.Abs(f.Exponent-1) > 0.05 || f.R2 >= 1 || f.R2 < 0.99 {
		t.Errorf("noisy linear: %+v %v", f, err)
	}
	if _, err := FitPowerLaw([]float64{5, 5}, []float64{1, 2}); err == nil {
		t.Error("one distinct x fitted")
	}
	if _, err := FitPowerLaw([]float64{5}, []float64{1}); err == nil {
		t.Error("one point fitted")
	}
	// Non-positive values cannot be on a log scale and are left out.
	if f, err := FitPowerLaw([]float64{0, 2, 4}, []float64{1, 2, 4}); err != nil || f.Points != 2 || math.Abs(f.Exponent-1) > 1e-9 {
		t.Errorf("with x=0: %+v %v", f, err)
	}
}

// TestParseIstiodMetrics reads istiod's own /metrics, recorded from the pilot-discovery this repository
// builds (1.31-dev) after `mclab bench --scenario propagation` had one sidecar watching it
// (testdata/istiod-metrics.txt).
func TestParseIstiodMetrics(t *testing.T) {
	f, err := os.Open("testdata/istiod-metrics.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m, err := ParseIstiodMetrics(f)
	if err != nil {
		t.Fatal(err)
	}
	// pilot_xds_pushes{type="cds"} 2 + {type="eds"} 5; push time count 2 + 5, sum 0.00336 + 0.00123.
	if m.Pushes != 7 || m.PushTimeCount != 7 || math.Abs(m.PushTimeSum-0.004594859) > 1e-9 || m.ConvergenceCount != 4 || math.Abs(m.ConvergenceSum-0.002399103) > 1e-12 {
		t.Errorf("parsed %+v", m)
	}
	if m.Goroutines == 0 || !m.Connected {
		t.Errorf("go_goroutines or the push families missing: %+v", m)
	}
	// An istiod no proxy ever connected to has no push families at all: not zero, absent.
	idle, err := ParseIstiodMetrics(strings.NewReader("# TYPE pilot_services gauge\npilot_services 12\n"))
	if err != nil || idle.Connected {
		t.Errorf("idle istiod: %+v %v", idle, err)
	}
}

// TestLevelWaitFor: waitFor returns when a count first reaches a value at or after a moment, counting a
// value that was reached before the moment and still holds, and not one that has since changed.
func TestLevelWaitFor(t *testing.T) {
	l := newLevel()
	t0 := time.Now()
	l.set(0, t0)
	l.set(5, t0.Add(1*time.Second))
	l.set(0, t0.Add(2*time.Second))
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	// 5 held from 1 s to 2 s: asked from 1.5 s it counts, at 1.5 s.
	if at, err := l.waitFor(ctx, 5, t0.Add(1500*time.Millisecond)); err != nil || !at.Equal(t0.Add(1500*time.Millisecond)) {
		t.Errorf("held value: %v %v", at, err)
	}
	// Asked from 3 s, 5 no longer holds: it must wait, and time out.
	if _, err := l.waitFor(ctx, 5, t0.Add(3*time.Second)); err == nil || !strings.Contains(err.Error(), "count stayed 0, never 5") {
		t.Errorf("stale value counted: %v", err)
	}
	// A later change wakes the waiter with the change's time.
	done := make(chan time.Time)
	go func() {
		at, _ := l.waitFor(context.Background(), 7, t0.Add(3*time.Second))
		done <- at
	}()
	time.Sleep(20 * time.Millisecond)
	l.set(7, t0.Add(4*time.Second))
	if at := <-done; !at.Equal(t0.Add(4 * time.Second)) {
		t.Errorf("woken at %v", at)
	}
}
