package local

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	osexec "os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"mclab.dev/mclab/lab/state"
)

// procRecord is what the lab keeps of a process it started: enough to find it again from a new shell
// and to be sure the PID still names the same process (its start time) before signalling it.
type procRecord struct {
	Name      string   `json:"name"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"startTime"`
	Args      []string `json:"args"`
	Log       string   `json:"log"`
}

// startProcess starts a supervised program in its own session (so a Ctrl-C in the user's terminal does
// not reach it and it outlives `mclab up`), with its output in logPath, and records it in recPath. A
// goroutine reaps it, so an early exit is seen as dead rather than as a zombie.
func startProcess(name, bin string, args, env []string, dir, logPath, recPath string) (*procRecord, error) {
	if err := os.MkdirAll(filepath.Dir(logPath), 0o700); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	fmt.Fprintf(logf, "\n=== %s: starting %s\n", time.Now().UTC().Format(time.RFC3339), name)
	cmd := osexec.Command(bin, args...)
	cmd.Env, cmd.Dir = env, dir
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() { _ = cmd.Wait() }()
	st, _ := procStartTime(cmd.Process.Pid)
	rec := &procRecord{Name: name, PID: cmd.Process.Pid, StartTime: st, Args: append([]string{bin}, args...), Log: logPath}
	data, _ := json.MarshalIndent(rec, "", "  ")
	if err := state.WriteFile(recPath, data); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	return rec, nil
}

func loadRecord(path string) (*procRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	rec := &procRecord{}
	if err := json.Unmarshal(data, rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rec, nil
}

// alive reports whether the recorded process still runs: its PID exists, is not a zombie, and has the
// recorded start time (so a reused PID is not mistaken for it).
func (r *procRecord) alive() bool {
	if r == nil || r.PID <= 0 {
		return false
	}
	st, state := procStat(r.PID)
	return st != 0 && st == r.StartTime && state != "Z" && state != "X"
}

// procStartTime returns the process's start time in clock ticks since boot (/proc/PID/stat field 22).
func procStartTime(pid int) (uint64, error) {
	st, _ := procStat(pid)
	if st == 0 {
		return 0, fmt.Errorf("process %d not found", pid)
	}
	return st, nil
}

func procStat(pid int) (startTime uint64, state string) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, ""
	}
	// The command name (field 2) is in parentheses and may contain spaces: parse after the last ')'.
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, ""
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 20 {
		return 0, ""
	}
	v, err := strconv.ParseUint(fields[19], 10, 64)
	if err != nil {
		return 0, ""
	}
	return v, fields[0]
}

// stopAll sends SIGTERM to every live process, waits up to grace for them to exit, then sends SIGKILL
// to those left and waits for them to be gone. It signals only processes whose identity is confirmed.
func stopAll(recs []*procRecord, grace time.Duration) error {
	var live []*procRecord
	for _, r := range recs {
		if r.alive() {
			if err := syscall.Kill(r.PID, syscall.SIGTERM); err == nil {
				live = append(live, r)
			}
		}
	}
	if waitGone(live, grace) {
		return nil
	}
	for _, r := range live {
		if r.alive() {
			_ = syscall.Kill(r.PID, syscall.SIGKILL)
		}
	}
	if waitGone(live, 10*time.Second) {
		return nil
	}
	var errs []error
	for _, r := range live {
		if r.alive() {
			errs = append(errs, fmt.Errorf("%s (pid %d) survived SIGKILL", r.Name, r.PID))
		}
	}
	return errors.Join(errs...)
}

func waitGone(recs []*procRecord, d time.Duration) bool {
	deadline := time.Now().Add(d)
	for {
		allGone := true
		for _, r := range recs {
			if r.alive() {
				allGone = false
				break
			}
		}
		if allGone {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stopTiers stops tiers in order, the processes of one tier in parallel.
func stopTiers(tiers [][]*procRecord, grace []time.Duration) error {
	var errs []error
	for i, tier := range tiers {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for _, r := range tier {
			wg.Go(func() {
				if err := stopAll([]*procRecord{r}, grace[i]); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			})
		}
		wg.Wait()
	}
	return errors.Join(errs...)
}

// logTail returns the last lines of a log, for error messages.
func logTail(path string, lines int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	all := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}
