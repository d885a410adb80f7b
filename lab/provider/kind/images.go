package kind

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
)

// MirrorHosts are the registries with a mirror, sorted.
func MirrorHosts(opts scenario.KindOptions) []string {
	var out []string
	for h := range opts.RegistryMirrors {
		out = append(out, h)
	}
	slices.Sort(out)
	return out
}

// mirrors writes containerd's hosts.toml for every mirrored registry on every node of a cluster
// (containerd reads /etc/containerd/certs.d, which ClusterConfig sets as its registry config_path).
func (p *Provider) mirrors(ctx context.Context, cluster string) error {
	opts := kindOptions(p.cfg.Scenario)
	if len(opts.RegistryMirrors) == 0 {
		return nil
	}
	nodes, err := p.cfg.Runtime.ListNodes(cluster)
	if err != nil {
		return err
	}
	for _, n := range nodes {
		for _, h := range MirrorHosts(opts) {
			dir := "/etc/containerd/certs.d/" + h
			toml := HostsTOML(h, opts.RegistryMirrors[h])
			if out, err := p.cfg.Runtime.Docker(ctx, "exec", n, "sh", "-c", fmt.Sprintf("mkdir -p %s && printf '%%s' '%s' > %s/hosts.toml", dir, toml, dir)); err != nil {
				return fmt.Errorf("registry mirror for %s on %s: %w (%s)", h, n, err, firstLine(err, out))
			}
		}
	}
	return nil
}

// HostsTOML is containerd's hosts.toml that sends pulls of registry to mirror first.
func HostsTOML(registry, mirror string) string {
	server := "https://" + registry
	if registry == "docker.io" {
		server = "https://registry-1.docker.io"
	}
	return fmt.Sprintf("server = \"%s\"\n\n[host.\"%s\"]\n  capabilities = [\"pull\", \"resolve\"]\n", server, mirror)
}
func (p *Provider) images(s *scenario.Scenario) ([]string, error) {
	images, err := istio.Images(s)
	if err != nil {
		return nil, err
	}
	manifest, err := fixtures.FS.ReadFile("metallb/metallb-native.yaml")
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(string(manifest), "\n") {
		if img, ok := strings.CutPrefix(strings.TrimSpace(line), "image: "); ok && !slices.Contains(images, img) {
			images = append(images, img)
		}
	}
	return images, nil
}

// preload pulls every image once on the host and loads it into every node of the lab.
func (p *Provider) preload(ctx context.Context) error {
	images, err := p.images(p.cfg.Scenario)
	if err != nil {
		return err
	}
	var clusters []string
	for _, c := range p.cfg.Scenario.Clusters {
		clusters = append(clusters, ClusterName(p.cfg.Lab, c.Name))
	}
	for _, img := range images {
		if err := p.cfg.Runtime.LoadImage(ctx, img, clusters); err != nil {
			return err
		}
	}
	return nil
}

// metallb installs MetalLB (the manifest Istio's CI uses) in every cluster, waits for its controller,
// and gives each cluster its own pool carved from the kind network's subnet.
