package kind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
)

func gib(b uint64) string { return fmt.Sprintf("%.1f GiB", float64(b)/(1<<30)) }

// Resources are what a lab needs from Docker.
type Resources struct {
	CPUs   int
	Memory uint64
	Disk   uint64
}

// Needs is what n kind clusters with Istio, MetalLB and the samples need: measured by Istio's docs as
// about 2 GiB of memory per cluster (a kind node with its control plane ~1 GiB, istiod, gateways and
// sidecars ~1 GiB), a node image (~1 GiB) plus images per cluster on disk, and 2 CPUs at least.
func Needs(n int) Resources {
	return Resources{CPUs: max(2, (n+1)/2*2), Memory: uint64(n) * 2 << 30, Disk: uint64(n)*2<<30 + 1<<30}
}

// dockerInfo is what preflight reads from `docker info`.
type dockerInfo struct {
	NCPU          int    `json:"NCPU"`
	MemTotal      uint64 `json:"MemTotal"`
	DockerRootDir string `json:"DockerRootDir"`
	OSType        string `json:"OSType"`
	Name          string `json:"Name"`
}

// preflight checks what kind needs and says how to fix each failure.
func (p *Provider) preflight(ctx context.Context) error {
	var problems []string
	s := p.cfg.Scenario
	rt := p.cfg.Runtime
	if out, err := rt.Docker(ctx, "version", "--format", "{{.Server.Version}}"); err != nil {
		return fmt.Errorf("preflight:\n  docker does not answer (%s): start Docker (or use --provider local, which needs no containers)", firstLine(err, out))
	}
	need := Needs(len(s.Clusters))
	if out, err := rt.Docker(ctx, "info", "--format", "{{json .}}"); err != nil {
		problems = append(problems, "docker info failed ("+firstLine(err, out)+")")
	} else {
		var info dockerInfo
		if err := json.Unmarshal(out, &info); err != nil {
			problems = append(problems, "docker info is not JSON: "+err.Error())
		} else {
			if info.NCPU < need.CPUs {
				problems = append(problems, fmt.Sprintf("Docker has %d CPUs, %d clusters need %d: give Docker more CPUs (Docker Desktop: Settings > Resources), or use fewer clusters", info.NCPU, len(s.Clusters), need.CPUs))
			}
			if info.MemTotal < need.Memory {
				problems = append(problems, fmt.Sprintf("Docker has %s of memory, %d clusters need %s: give Docker more memory (Docker Desktop: Settings > Resources), use fewer clusters, or use --provider local (about 0.6 GiB per cluster, no data plane)", gib(info.MemTotal), len(s.Clusters), gib(need.Memory)))
			}
			if free, ok := freeDisk(info.DockerRootDir); ok && free < need.Disk {
				problems = append(problems, fmt.Sprintf("%s has %s free, %d clusters need about %s (node image and Istio's images per node): free space (docker system prune) or use fewer clusters", info.DockerRootDir, gib(free), len(s.Clusters), gib(need.Disk)))
			}
		}
	}
	if p.cfg.GOOS == "linux" {
		for _, l := range []struct {
			key string
			min int
		}{{"fs.inotify.max_user_watches", 524288}, {"fs.inotify.max_user_instances", 512}} {
			if v, err := rt.Sysctl(l.key); err == nil && v < l.min {
				problems = append(problems, fmt.Sprintf("%s is %d, several kind clusters need %d (\"too many open files\" in kube-proxy or kubelet): sudo sysctl %s=%d", l.key, v, l.min, l.key, l.min))
			}
		}
	}
	if subnet, err := p.NetworkSubnet(ctx); err == nil {
		for _, c := range s.Clusters {
			for _, sub := range []string{c.PodSubnet, c.ServiceSubnet} {
				if pre, err := netip.ParsePrefix(sub); err == nil && pre.Overlaps(subnet) {
					problems = append(problems, fmt.Sprintf("the %s network's subnet %s overlaps %s's subnet %s: routes would send node traffic into pods; set other clusters[].podSubnet/serviceSubnet, or recreate the network (docker network rm %s)", DefaultNetwork, subnet, c.Name, sub, DefaultNetwork))
				}
			}
		}
	} else if !errors.Is(err, errNoNetwork) {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return fmt.Errorf("preflight:\n  %s", strings.Join(problems, "\n  "))
	}
	if p.cfg.GOOS != "linux" {
		fmt.Fprintf(p.cfg.Out, "note: on %s, Docker runs in a VM: the host cannot reach container IPs or MetalLB addresses. mclab talks to the clusters through kind's published API ports; the clusters reach each other on the kind network as on Linux. To reach a gateway from the host, port-forward it or run cloud-provider-kind.\n", p.cfg.GOOS)
	}
	return nil
}
func firstLine(err error, out []byte) string {
	s := strings.TrimSpace(string(out))
	if s == "" {
		s = err.Error()
	}
	return firstLineOf(s)
}

// create makes the clusters in parallel with kind's Go API, then points containerd at the registry
// mirrors.
