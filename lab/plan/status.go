package plan

import (
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"golang.org/x/term"
)

// Status prints kind-style progress: a bullet when a step starts, then a check or a cross with the
// elapsed time. On a terminal the running step has a spinner with its elapsed time (colours unless
// NO_COLOR is set); elsewhere (CI logs) every line carries the time of day and a running step prints a
// heartbeat line every Heartbeat, so a log never goes quiet for long.
type Status struct {
	w         io.Writer
	now       func() time.Time
	tty       bool
	color     bool
	heartbeat time.Duration
	// ticker makes the ticks of the spinner and the heartbeat (tests give a fake one).
	ticker func(time.Duration) (<-chan time.Time, func())

	mu    sync.Mutex
	title string
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

// Heartbeat is how often a running step says so outside a terminal.
const Heartbeat = 30 * time.Second

// NewStatus writes progress to w.
func NewStatus(w io.Writer) *Status {
	s := &Status{w: w, now: time.Now, heartbeat: Heartbeat, ticker: realTicker}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		s.tty = true
		s.color = os.Getenv("NO_COLOR") == ""
	}
	return s
}

var spinner = []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}

// Start announces a step.
func (s *Status) Start(title string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.title, s.start = title, s.now()
	s.stop, s.done = make(chan struct{}), make(chan struct{})
	if s.tty {
		fmt.Fprintf(s.w, " %s %s ...", spinner[0], title)
	} else {
		fmt.Fprintf(s.w, "%s • %s ...\n", s.clock(), title)
	}
	every := s.heartbeat
	if s.tty {
		every = 100 * time.Millisecond
	}
	go s.tick(every, s.stop, s.done)
}

func realTicker(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

func (s *Status) tick(every time.Duration, stop, done chan struct{}) {
	defer close(done)
	ticker := s.ticker
	if ticker == nil {
		ticker = realTicker
	}
	c, stopTicker := ticker(every)
	defer stopTicker()
	for i := 1; ; i++ {
		select {
		case <-stop:
			return
		case at := <-c:
			s.mu.Lock()
			elapsed := at.Sub(s.start).Round(time.Second)
			if s.tty {
				fmt.Fprintf(s.w, "\r\x1b[K %s %s ... %s", spinner[i%len(spinner)], s.title, elapsed)
			} else {
				fmt.Fprintf(s.w, "%s   %s: still running (%s)\n", at.Format("15:04:05"), s.title, elapsed)
			}
			s.mu.Unlock()
		}
	}
}

// End closes the step announced last.
func (s *Status) End(ok bool) {
	if s.stop != nil {
		close(s.stop)
		<-s.done
		s.stop = nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mark := "✓"
	if !ok {
		mark = "✗"
	}
	if s.color {
		mark = map[bool]string{true: "\x1b[32m✓\x1b[0m", false: "\x1b[31m✗\x1b[0m"}[ok]
	}
	took := s.now().Sub(s.start).Round(10 * time.Millisecond)
	if s.tty {
		fmt.Fprintf(s.w, "\r\x1b[K %s %s (%s)\n", mark, s.title, took)
		return
	}
	fmt.Fprintf(s.w, "%s %s %s (%s)\n", s.clock(), mark, s.title, took)
}

func (s *Status) clock() string { return s.now().Format("15:04:05") }
