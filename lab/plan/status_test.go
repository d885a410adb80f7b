package plan

import (
	"strings"
	"sync"
	"testing"
	"time"
)

type syncBuf struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStatusInLogs: outside a terminal every line has the time of day, and a long step prints a
// heartbeat every 30 s, so a CI log never goes quiet. The clock and the ticker are fakes: a 6-minute
// build in a millisecond.
func TestStatusInLogs(t *testing.T) {
	var out syncBuf
	s := NewStatus(&out)
	var mu sync.Mutex
	clock := time.Date(2026, 11, 26, 9, 0, 0, 0, time.UTC)
	s.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return clock }
	ticks := make(chan time.Time)
	var asked time.Duration
	s.ticker = func(d time.Duration) (<-chan time.Time, func()) { asked = d; return ticks, func() {} }
	s.Start("Building kube-apiserver")
	for i := 0; i < 12; i++ {
		mu.Lock()
		clock = clock.Add(30 * time.Second)
		mu.Unlock()
		ticks <- clock
	}
	mu.Lock()
	clock = clock.Add(14 * time.Second)
	mu.Unlock()
	s.End(true)
	if asked != Heartbeat || Heartbeat > 30*time.Second {
		t.Errorf("heartbeat every %s", asked)
	}
	for _, want := range []string{"09:00:30   Building kube-apiserver: still running (30s)\n", "09:06:00   Building kube-apiserver: still running (6m0s)\n", "09:06:14 ✓ Building kube-apiserver (6m14s)\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("want %q in:\n%s", want, out.String())
		}
	}
	s.now = time.Now
	s.Start("Starting clusters")
	s.End(false)
	got := out.String()
	for _, want := range []string{" • Building kube-apiserver ...\n", "   Building kube-apiserver: still running (", " ✓ Building kube-apiserver (", " ✗ Starting clusters ("} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\r") || strings.Contains(got, "\x1b[") {
		t.Errorf("no terminal codes in a log:\n%q", got)
	}
	for _, line := range strings.Split(strings.TrimSpace(got), "\n") {
		if _, err := time.Parse("15:04:05", strings.Fields(line)[0]); err != nil {
			t.Errorf("line without the time of day: %q", line)
		}
	}
}

// TestStatusOnTerminal: a spinner with the elapsed time redraws the step's line, then the result
// replaces it; colours only when allowed.
func TestStatusOnTerminal(t *testing.T) {
	for _, color := range []bool{true, false} {
		var out syncBuf
		s := &Status{w: &out, now: time.Now, tty: true, color: color}
		s.Start("Installing Istio base")
		time.Sleep(250 * time.Millisecond)
		s.End(true)
		got := out.String()
		if !strings.Contains(got, "\r\x1b[K ⠙ Installing Istio base ... ") || !strings.HasSuffix(got, " Installing Istio base ("+strings.Split(strings.SplitAfter(got, "base (")[len(strings.SplitAfter(got, "base ("))-1], ")")[0]+")\n") {
			t.Errorf("spinner:\n%q", got)
		}
		if color != strings.Contains(got, "\x1b[32m✓\x1b[0m") {
			t.Errorf("colour %t:\n%q", color, got)
		}
	}
}
