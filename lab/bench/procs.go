package bench

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// ProcStat is a process's resident memory and CPU time, from /proc.
type ProcStat struct {
	RSSMiB     float64
	CPUSeconds float64
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/<pid>/stat (100 on Linux).
const clockTicks = 100

// ReadProc reads pid's VmRSS (/proc/<pid>/status) and utime+stime (/proc/<pid>/stat).
func ReadProc(pid int) (ProcStat, error) {
	var ps ProcStat
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return ps, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			ps.RSSMiB = kb / 1024
		}
	}
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return ps, err
	}
	// The command name is in parentheses and may hold spaces: fields count from after the last ')'.
	s := string(stat)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return ps, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f))
	}
	ut, _ := strconv.ParseFloat(f[11], 64) // field 14 of stat(5): utime
	st, _ := strconv.ParseFloat(f[12], 64) // field 15: stime
	ps.CPUSeconds = (ut + st) / clockTicks
	return ps, nil
}

// IstiodMetrics are istiod's own push figures, from its monitoring port (/metrics).
type IstiodMetrics struct {
	// Pushes is pilot_xds_pushes summed over its types.
	Pushes float64
	// PushTimeCount and PushTimeSum are pilot_xds_push_time's count and sum (seconds).
	PushTimeCount, PushTimeSum float64
	// ConvergenceCount and ConvergenceSum are pilot_proxy_convergence_time's (seconds).
	ConvergenceCount, ConvergenceSum float64
	// Goroutines is go_goroutines.
	Goroutines float64
	// Connected says istiod has pushed to a proxy: its push families (pilot_xds_pushes, ...) exist only
	// after one connected.
	Connected bool
}

// ReadIstiodMetrics scrapes istiod's Prometheus endpoint at addr (host:port).
func ReadIstiodMetrics(addr string) (IstiodMetrics, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get("http://" + addr + "/metrics")
	if err != nil {
		return IstiodMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return IstiodMetrics{}, fmt.Errorf("istiod metrics at %s: %s", addr, resp.Status)
	}
	return ParseIstiodMetrics(resp.Body)
}

// ParseIstiodMetrics reads the push figures out of istiod's Prometheus text exposition.
func ParseIstiodMetrics(r io.Reader) (IstiodMetrics, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(r)
	if err != nil {
		return IstiodMetrics{}, fmt.Errorf("istiod metrics: %w", err)
	}
	var m IstiodMetrics
	sum := func(name string) float64 {
		total := 0.0
		if f := fams[name]; f != nil {
			for _, mt := range f.Metric {
				total += value(mt)
			}
		}
		return total
	}
	hist := func(name string) (float64, float64) {
		var n, s float64
		if f := fams[name]; f != nil {
			for _, mt := range f.Metric {
				if h := mt.GetHistogram(); h != nil {
					n += float64(h.GetSampleCount())
					s += h.GetSampleSum()
				}
			}
		}
		return n, s
	}
	_, m.Connected = fams["pilot_xds_pushes"]
	m.Pushes = sum("pilot_xds_pushes")
	m.PushTimeCount, m.PushTimeSum = hist("pilot_xds_push_time")
	m.ConvergenceCount, m.ConvergenceSum = hist("pilot_proxy_convergence_time")
	m.Goroutines = sum("go_goroutines")
	return m, nil
}

func value(m *dto.Metric) float64 {
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Untyped != nil:
		return m.Untyped.GetValue()
	}
	return 0
}
