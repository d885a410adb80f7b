package main_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"mclab.dev/mclab/lab/labtest"
)

// A shared lab is a local lab that several tests only read: the first test that asks brings it up (in
// a state root of its own) and checks it as every lab with Istio is checked (labtest.AssertIstioLab);
// the others reuse it. A test that changes it puts it back before it returns (`mclab up` converges, and
// the test proves verify is conformant again). TestMain removes the shared labs at the end.
type sharedLab struct {
	name, stateDir, kubeconfig string
	// upOutput is what the one `up` printed (stdout and stderr).
	upOutput string
	took     time.Duration

	once sync.Once
	err  error
}

var (
	sharedMu   sync.Mutex
	sharedLabs = map[string]*sharedLab{}
)

// useSharedLab returns the shared lab of a built-in scenario, bringing it up on first use.
func useSharedLab(t testing.TB, bin, scenarioName string) *sharedLab {
	t.Helper()
	sharedMu.Lock()
	l := sharedLabs[scenarioName]
	if l == nil {
		l = &sharedLab{name: scenarioName}
		sharedLabs[scenarioName] = l
	}
	sharedMu.Unlock()
	first := false
	l.once.Do(func() {
		first = true
		if l.stateDir, l.err = os.MkdirTemp("", "mclab-shared-state-"); l.err != nil {
			return
		}
		start := time.Now()
		stdout, stderr, code, err := runMclab(10*time.Minute, bin, l.stateDir, "up", "--scenario", scenarioName, "--provider", "local")
		l.took, l.upOutput = time.Since(start), stdout+stderr
		switch {
		case err != nil:
			l.err = err
		case code != 0:
			l.err = fmt.Errorf("up --scenario %s exited %d:\n%s", scenarioName, code, l.upOutput)
		default:
			kc, _, _, err := runMclab(time.Minute, bin, l.stateDir, "kubeconfig", "--path", "--name", scenarioName)
			l.kubeconfig, l.err = string(bytes.TrimSpace([]byte(kc))), err
		}
	})
	if l.err != nil {
		t.Fatalf("shared lab %s: %v", scenarioName, l.err)
	}
	if first {
		t.Logf("shared lab %s: up in %s (first use)", scenarioName, l.took.Round(100*time.Millisecond))
		labtest.AssertIstioLab(t, l.stateDir, l.name, l.upOutput)
	} else {
		t.Logf("shared lab %s: reused", scenarioName)
	}
	return l
}

// stopSharedLabs removes every shared lab (TestMain, after the last test).
func stopSharedLabs() {
	sharedMu.Lock()
	defer sharedMu.Unlock()
	for _, l := range sharedLabs {
		if l.stateDir == "" || binPath == "" {
			continue
		}
		if _, stderr, code, err := runMclab(5*time.Minute, binPath, l.stateDir, "down", "--all"); err != nil || code != 0 {
			fmt.Fprintf(os.Stderr, "shared lab %s: down exited %d: %v %s\n", l.name, code, err, stderr)
		}
		if left := labtest.ProcessesUnder(l.stateDir); len(left) > 0 {
			fmt.Fprintf(os.Stderr, "shared lab %s: processes left after down: %v\n", l.name, left)
		}
		os.RemoveAll(l.stateDir)
	}
}

// runMclab runs mclab with a bound on its time: its outputs and exit code, or an error when it could
// not run at all.
func runMclab(d time.Duration, bin, stateDir string, args ...string) (string, string, int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "MCLAB_STATE_DIR="+stateDir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return stdout.String(), stderr.String(), ee.ExitCode(), nil
	}
	return stdout.String(), stderr.String(), 0, err
}
