// Package istio installs Istio across a lab's clusters the way Istio's docs and CI do: manifests are
// rendered with the Helm SDK from Istio's own charts, values follow each cluster's role, the mesh CA is
// plugged in, remote secrets are made natively, and east-west gateways expose what crosses networks.
package istio

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"istio.io/istio/manifests"
)

// The charts mclab installs, as Istio's chart repository names them.
const (
	ChartBase    = "base"
	ChartIstiod  = "istiod"
	ChartGateway = "gateway"
)

// embeddedChartPaths are those charts' paths inside Istio's manifests tree (istio.io/istio manifests).
var embeddedChartPaths = map[string]string{
	ChartBase:    "charts/base",
	ChartIstiod:  "charts/istio-control/istio-discovery",
	ChartGateway: "charts/gateway",
}

// Charts yields Istio's charts by name (ChartBase, ChartIstiod, ChartGateway).
type Charts interface {
	Load(name string) (*chart.Chart, error)
}

// EmbeddedCharts are the charts of the pinned istio.io/istio module, for offline use.
func EmbeddedCharts() Charts { return TreeCharts{FS: manifests.FS} }

// TreeCharts reads the charts from a tree laid out as Istio's manifests directory.
type TreeCharts struct{ FS fs.FS }

// Load implements Charts.
func (t TreeCharts) Load(name string) (*chart.Chart, error) {
	p, ok := embeddedChartPaths[name]
	if !ok {
		return nil, fmt.Errorf("no chart %q", name)
	}
	return loadTree(t.FS, p)
}

// LoadedCharts are charts already loaded (a release's, fetched from its chart repository).
type LoadedCharts map[string]*chart.Chart

// Load implements Charts.
func (l LoadedCharts) Load(name string) (*chart.Chart, error) {
	ch, ok := l[name]
	if !ok {
		return nil, fmt.Errorf("no chart %q in the release", name)
	}
	return ch, nil
}

// Renderer renders Istio's charts as `helm template` does.
type Renderer struct {
	// Charts yields Istio's charts (EmbeddedCharts, or a release's).
	Charts Charts
	// KubeVersion is the cluster version the charts are rendered for (default v1.37.0).
	KubeVersion string
}

// Rendered is a rendered chart: each template's output by template path, empty ones dropped.
type Rendered map[string]string

// Manifest joins every document, sorted by template path, as one multi-document YAML.
func (r Rendered) Manifest() string {
	names := make([]string, 0, len(r))
	for n := range r {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", n, strings.TrimSpace(r[n]))
	}
	return b.String()
}

// Template returns the output of the template whose path ends in name.
func (r Rendered) Template(name string) (string, bool) {
	for k, v := range r {
		if strings.HasSuffix(k, "/"+name) {
			return v, true
		}
	}
	return "", false
}

// Render renders the chart at chartPath as release name in namespace with values.
func (r *Renderer) Render(chartPath, name, namespace string, values map[string]any) (Rendered, error) {
	ch, err := r.Charts.Load(chartPath)
	if err != nil {
		return nil, err
	}
	caps := chartutil.DefaultCapabilities.Copy()
	kv := r.KubeVersion
	if kv == "" {
		kv = "v1.37.0"
	}
	parsed, err := chartutil.ParseKubeVersion(kv)
	if err != nil {
		return nil, err
	}
	caps.KubeVersion = *parsed
	vals, err := chartutil.ToRenderValues(ch, values, chartutil.ReleaseOptions{Name: name, Namespace: namespace, IsInstall: true, Revision: 1}, caps)
	if err != nil {
		return nil, fmt.Errorf("values for chart %s: %w", chartPath, err)
	}
	out, err := engine.Render(ch, vals)
	if err != nil {
		return nil, fmt.Errorf("rendering chart %s: %w", chartPath, err)
	}
	res := Rendered{}
	for k, v := range out {
		if strings.HasSuffix(k, "NOTES.txt") || strings.TrimSpace(v) == "" {
			continue
		}
		res[k] = v
	}
	return res, nil
}

func loadTree(fsys fs.FS, chartPath string) (*chart.Chart, error) {
	var files []*loader.BufferedFile
	err := fs.WalkDir(fsys, chartPath, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, chartPath+"/")
		files = append(files, &loader.BufferedFile{Name: path.Clean(rel), Data: data})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("reading chart %s: %w", chartPath, err)
	}
	return loader.LoadFiles(files)
}
