package istio

import (
	"bytes"
	"context"
	"fmt"
	"regexp"
	"strings"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage/driver"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// helmClientValidation: Helm's client-side OpenAPI validation (on unless --disable-openapi-validation)
// downloads and parses the API server's whole OpenAPI document for every release it installs or
// upgrades: about 2 s of CPU each on 2 cores, 3 releases per cluster. mclab turns it off; the API server
// still validates every object it is sent, and the charts' own values.schema.json is still checked.
const helmClientValidation = false

// Helm release names, as Istio's Helm install docs name them.
const (
	ReleaseBase   = "istio-base"
	ReleaseIstiod = "istiod"
	// The east-west gateway's release is EastWestGatewayName (istio-eastwestgateway).
)

// helmConfig is Helm's action configuration for cluster c, namespace istio-system, release records in
// Secrets (Helm's default driver): what `helm --kube-context ... -n istio-system` uses.
func (in *Installer) helmConfig(ctx context.Context, cluster string) (*action.Configuration, *kube.Client, error) {
	kc, err := in.client(ctx, cluster)
	if err != nil {
		return nil, nil, err
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(kc.RESTClientGetter(), IstioNamespace, "secret", func(string, ...any) {}); err != nil {
		return nil, nil, fmt.Errorf("helm in %s: %w", cluster, err)
	}
	return cfg, kc, nil
}

// helmRelease installs chart as release name in istio-system of cluster c with values, or upgrades the
// release when it exists (`helm upgrade --install`). drop names templates left out of the release (the
// istiod pod's own, where istiod runs as a process). A release left pending by an interrupted `up` is
// marked failed first, so the next `up` resumes rather than stalls on "another operation is in
// progress". Objects an older mclab applied without Helm are adopted (Helm's --take-ownership).
func (in *Installer) helmRelease(ctx context.Context, c scenario.Cluster, name, chartName string, values map[string]any, drop []string) (*release.Release, error) {
	rel, err := in.releaseFor(ctx, c)
	if err != nil {
		return nil, err
	}
	ch, err := rel.charts.Load(chartName)
	if err != nil {
		return nil, err
	}
	cfg, _, err := in.helmConfig(ctx, c.Name)
	if err != nil {
		return nil, err
	}
	var post *dropTemplates
	if len(drop) > 0 {
		post = &dropTemplates{chart: ch, names: drop}
	}
	last, err := cfg.Releases.Last(name)
	switch {
	case err == driver.ErrReleaseNotFound || (err == nil && last.Info.Status == release.StatusUninstalled):
		i := action.NewInstall(cfg)
		i.ReleaseName, i.Namespace, i.TakeOwnership = name, IstioNamespace, true
		i.DisableOpenAPIValidation = true // see helmClientValidation
		if post != nil {
			i.PostRenderer = post
		}
		r, err := i.RunWithContext(ctx, ch, values)
		if err != nil {
			return nil, fmt.Errorf("helm install %s (chart %s %s) in %s: %w", name, chartName, chartVersion(ch), c.Name, err)
		}
		return r, nil
	case err != nil:
		return nil, fmt.Errorf("helm release %s in %s: %w", name, c.Name, err)
	}
	if last.Info.Status.IsPending() {
		last.SetStatus(release.StatusFailed, "interrupted; mclab up resumes it")
		if err := cfg.Releases.Update(last); err != nil {
			return nil, fmt.Errorf("helm release %s in %s is %s and cannot be reset: %w", name, c.Name, last.Info.Status, err)
		}
	}
	u := action.NewUpgrade(cfg)
	u.Namespace, u.TakeOwnership, u.MaxHistory = IstioNamespace, true, 10
	u.DisableOpenAPIValidation = true // see helmClientValidation
	if post != nil {
		u.PostRenderer = post
	}
	r, err := u.RunWithContext(ctx, name, ch, values)
	if err != nil {
		return nil, fmt.Errorf("helm upgrade %s (chart %s %s) in %s: %w", name, chartName, chartVersion(ch), c.Name, err)
	}
	return r, nil
}

func chartVersion(ch *chart.Chart) string {
	if ch.Metadata == nil {
		return ""
	}
	return ch.Metadata.Version
}

// dropTemplates is a Helm post-renderer that leaves out the documents of the named templates.
type dropTemplates struct {
	chart *chart.Chart
	names []string
}

var sourceLine = regexp.MustCompile(`(?m)^# Source: (\S+)`)

// Run implements postrender.PostRenderer: Helm's rendered manifest is "---"-separated documents, each
// headed by "# Source: <chart>/templates/<file>".
func (d *dropTemplates) Run(in *bytes.Buffer) (*bytes.Buffer, error) {
	out := new(bytes.Buffer)
	source := ""
	for _, doc := range strings.Split(in.String(), "\n---") {
		// A template of several documents heads only the first with its source.
		if m := sourceLine.FindStringSubmatch(doc); m != nil {
			source = m[1]
		}
		skip := false
		for _, n := range d.names {
			if strings.HasSuffix(source, "/templates/"+n) {
				skip = true
			}
		}
		if skip || strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(doc), "---")) == "" {
			continue
		}
		out.WriteString("\n---")
		out.WriteString(strings.TrimPrefix(doc, "---"))
	}
	return out, nil
}

// HelmReleases lists the Helm releases in istio-system of cluster (what `helm list -n istio-system`
// shows): name, chart and version, status.
func (in *Installer) HelmReleases(ctx context.Context, cluster string) ([]*release.Release, error) {
	cfg, _, err := in.helmConfig(ctx, cluster)
	if err != nil {
		return nil, err
	}
	l := action.NewList(cfg)
	l.All = true
	return l.Run()
}
