package istio

import (
	"sort"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	releasepkg "mclab.dev/mclab/lab/istio/release"
	"mclab.dev/mclab/lab/scenario"
)

// Chart defaults for Istio's images (the istiod chart's values.yaml of the built-in charts).
const (
	DefaultHub = "registry.istio.io/testing"
	DefaultTag = "latest"
)

// ImageRef is the reference of one of Istio's images (pilot, proxyv2) for a scenario: istio.hub and
// istio.tag, else the built-in charts' defaults, or for a release docker.io/istio and its version.
func ImageRef(s *scenario.Scenario, name string) string {
	return imageRefVersion(s, name, s.Istio.Version)
}

// imageRefVersion is ImageRef for a cluster running version.
func imageRefVersion(s *scenario.Scenario, name, version string) string {
	release := version != "" && version != scenario.DefaultIstioVersion
	hub, tag := s.Istio.Hub, s.Istio.Tag
	if hub == "" {
		hub = DefaultHub
		if release {
			hub = releasepkg.DefaultHub
		}
	}
	if tag == "" || version != s.Istio.Version {
		tag = DefaultTag
		if release {
			tag = version
		}
	}
	return hub + "/" + name + ":" + tag
}

func (in *Installer) imageRef(name string) string { return ImageRef(in.S, name) }

// imageHint says what to do when Istio's images cannot be pulled.
func (in *Installer) imageHint() string {
	return "check that " + in.imageRef("pilot") + " exists and can be pulled from the nodes: set istio.hub and istio.tag to a release " +
		"(docker.io/istio, 1.x.y) or a mirror, or preload images (provider.kind.preloadImages: true)"
}

// Images lists every image a lab of the scenario runs: Istio's (istiod and the proxy of sidecars and
// gateways) and the samples'.
func Images(s *scenario.Scenario) ([]string, error) {
	set := map[string]bool{ImageRef(s, "pilot"): true, ImageRef(s, "proxyv2"): true}
	objs, err := sampleObjects(0)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		cs, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for _, c := range cs {
			if m, ok := c.(map[string]any); ok {
				if img, ok := m["image"].(string); ok && img != "" {
					set[img] = true
				}
			}
		}
	}
	var out []string
	for img := range set {
		out = append(out, img)
	}
	sort.Strings(out)
	return out, nil
}
