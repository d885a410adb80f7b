package provider

import (
	"context"
	"errors"
	"fmt"
	osexec "os/exec"
	"strings"
	"time"

	"mclab.dev/mclab/lab/exec"
	"mclab.dev/mclab/lab/scenario"
)

// Detection is what `--provider auto` chose and why.
type Detection struct {
	// Provider is kind when a container runtime answered, local otherwise.
	Provider scenario.ProviderName
	// Reason says, for the user, what was found.
	Reason string
}

// Detect asks the container runtimes kind supports (docker, then podman) whether their engine answers.
func Detect(ctx context.Context, r exec.Runner) Detection {
	var why []string
	for _, rt := range []struct {
		name string
		args []string
	}{
		{"docker", []string{"version", "--format", "{{.Server.Version}}"}},
		{"podman", []string{"version", "--format", "{{.Server.Version}}"}},
	} {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		out, err := r.Run(cctx, rt.name, rt.args...)
		cancel()
		if err == nil {
			return Detection{Provider: scenario.ProviderKind, Reason: fmt.Sprintf("%s answered (engine %s)", rt.name, strings.TrimSpace(string(out)))}
		}
		why = append(why, rt.name+": "+shortReason(err))
	}
	return Detection{Provider: scenario.ProviderLocal, Reason: "no container runtime answered (" + strings.Join(why, "; ") + ")"}
}

func shortReason(err error) string {
	var re *exec.RunError
	if errors.As(err, &re) {
		if errors.Is(re.Err, osexec.ErrNotFound) {
			return "not installed"
		}
		out := strings.TrimSpace(string(re.Output))
		if i := strings.IndexByte(out, '\n'); i >= 0 {
			out = out[:i]
		}
		if out != "" {
			return out
		}
		return re.Err.Error()
	}
	return err.Error()
}
