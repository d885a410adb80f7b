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

// Image is an image a kind lab needs; Pulled says the nodes pull it from its registry themselves (so
// being in the host's Docker is not enough: it must be pullable).
type Image struct {
	Ref    string
	Pulled bool
}

// Detect asks the container runtimes kind supports (docker, then podman) whether their engine answers
// and, for docker, whether the images a kind lab needs (the node image, MetalLB's) are there or can be
// pulled: on a machine where Docker runs but nothing can be pulled, a kind lab cannot start, so auto
// chooses local and says why.
func Detect(ctx context.Context, r exec.Runner, images ...Image) Detection {
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

// unavailable returns why one of images cannot reach the nodes (not in docker and not pullable, or,
// for an image the nodes pull, not pullable), or "".
func unavailable(ctx context.Context, r exec.Runner, images []Image) string {
	for _, im := range images {
		img := im.Ref
		if img == "" {
			continue
		}
		if !im.Pulled {
			cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := r.Run(cctx, "docker", "image", "inspect", "--format", "{{.Id}}", img)
			cancel()
			if err == nil {
				continue
			}
		}
		cctx, cancel := context.WithTimeout(ctx, PullTimeout)
		_, err := r.Run(cctx, "docker", "pull", img)
		cancel()
		if err != nil {
			where := "is not in docker and cannot be pulled"
			if im.Pulled {
				where = "cannot be pulled (the nodes pull it themselves)"
			}
			return fmt.Sprintf("image %s %s (%s): a kind lab could not start; make it pullable, use --offline-images, or set MCLAB_KIND_NODE_IMAGE for the node image", img, where, shortReason(err))
		}
	}
	return ""
}
