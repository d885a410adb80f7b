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

// Detect asks the container runtimes kind supports (docker, then podman) whether their engine answers
// and, for docker, whether the images a kind lab needs (the node image, MetalLB's) are there or can be
// pulled: on a machine where Docker runs but nothing can be pulled, a kind lab cannot start, so auto
// chooses local and says why.
func Detect(ctx context.Context, r exec.Runner, images ...string) Detection {
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
			engine := fmt.Sprintf("%s answered (engine %s)", rt.name, strings.TrimSpace(string(out)))
			if rt.name == "docker" {
				if missing := unavailable(ctx, r, images); missing != "" {
					return Detection{Provider: scenario.ProviderLocal, Reason: engine + ", but " + missing}
				}
			}
			return Detection{Provider: scenario.ProviderKind, Reason: engine}
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

// PullTimeout bounds auto's attempt to pull an image kind needs.
var PullTimeout = 60 * time.Second

// unavailable returns why one of images is neither in docker nor pullable, or "".
func unavailable(ctx context.Context, r exec.Runner, images []string) string {
	for _, img := range images {
		if img == "" {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		_, err := r.Run(cctx, "docker", "image", "inspect", "--format", "{{.Id}}", img)
		cancel()
		if err == nil {
			continue
		}
		cctx, cancel = context.WithTimeout(ctx, PullTimeout)
		_, err = r.Run(cctx, "docker", "pull", img)
		cancel()
		if err != nil {
			return fmt.Sprintf("image %s is not in docker and cannot be pulled (%s): a kind lab could not start; pull or load it (for the node image: set MCLAB_KIND_NODE_IMAGE), or run --provider kind to see the failure", img, shortReason(err))
		}
	}
	return ""
}
