package kind

import (
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	kindlog "sigs.k8s.io/kind/pkg/log"
)

// stepLogger is the logger mclab gives kind's Go API: kind's own sub-steps (" • Ensuring node image
// ...", " ✓ Writing configuration", ...) come out as indented lines naming the cluster, since mclab
// creates clusters side by side; warnings and errors too; kind's debug levels are dropped.
type stepLogger struct {
	mu      *sync.Mutex
	w       io.Writer
	cluster string
	// tty: clear the line first (mclab's own spinner may be drawn there).
	tty bool
}

var _ kindlog.Logger = stepLogger{}

func (l stepLogger) line(msg string) {
	msg = strings.TrimSpace(msg)
	if msg == "" {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	clear := ""
	if l.tty {
		clear = "\r\x1b[K"
	}
	fmt.Fprintf(l.w, "%s%s     kind %s: %s\n", clear, time.Now().Format("15:04:05"), l.cluster, msg)
}

func (l stepLogger) Warn(m string)                     { l.line("WARNING: " + m) }
func (l stepLogger) Warnf(f string, a ...interface{})  { l.line("WARNING: " + fmt.Sprintf(f, a...)) }
func (l stepLogger) Error(m string)                    { l.line("ERROR: " + m) }
func (l stepLogger) Errorf(f string, a ...interface{}) { l.line("ERROR: " + fmt.Sprintf(f, a...)) }
func (l stepLogger) V(v kindlog.Level) kindlog.InfoLogger {
	if v > 0 {
		return kindlog.NoopLogger{}.V(v)
	}
	return stepInfo{l}
}

type stepInfo struct{ l stepLogger }

func (i stepInfo) Info(m string)                    { i.l.line(m) }
func (i stepInfo) Infof(f string, a ...interface{}) { i.l.line(fmt.Sprintf(f, a...)) }
func (i stepInfo) Enabled() bool                    { return true }
