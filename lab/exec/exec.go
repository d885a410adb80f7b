// Package exec runs external programs behind an interface, so that every path that runs one (docker,
// ip, go) can be tested with a fake that records the commands and answers like the real program.
// Commands are argument vectors, never shell strings.
package exec

import (
	"bytes"
	"context"
	"fmt"
	osexec "os/exec"
	"strings"
)

// Runner runs a program to completion.
type Runner interface {
	// Run runs name with args and returns its combined output. A failure is a *RunError.
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// RunError is a command that could not start or exited non-zero; it carries the command and its output.
type RunError struct {
	// Command is the argument vector.
	Command []string
	// Output is what the command printed (stdout and stderr).
	Output []byte
	// Err is the underlying error.
	Err error
}

func (e *RunError) Error() string {
	out := strings.TrimSpace(string(e.Output))
	if len(out) > 400 {
		out = "..." + out[len(out)-400:]
	}
	if out == "" {
		return fmt.Sprintf("%s: %v", strings.Join(e.Command, " "), e.Err)
	}
	return fmt.Sprintf("%s: %v: %s", strings.Join(e.Command, " "), e.Err, out)
}

func (e *RunError) Unwrap() error { return e.Err }

// OS runs programs on the host.
type OS struct {
	// Env, when set, replaces the environment of every command.
	Env []string
	// Dir is the working directory of every command.
	Dir string
}

// Run implements Runner.
func (o OS) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := osexec.CommandContext(ctx, name, args...)
	cmd.Env, cmd.Dir = o.Env, o.Dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return out.Bytes(), &RunError{Command: append([]string{name}, args...), Output: out.Bytes(), Err: err}
	}
	return out.Bytes(), nil
}
