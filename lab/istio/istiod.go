package istio

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/pki"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// processOnly are the istiod chart's templates that describe the istiod pod itself: a process runtime
// runs pilot-discovery configured from them instead of applying them.
var processOnly = []string{"deployment.yaml", "poddisruptionbudget.yaml", "autoscale.yaml"}

// istiodEndpoint is how to reach the istiod of a primary: the provider's addresses or a port-forward.
func (in *Installer) istiodEndpoint(ctx context.Context, cluster string) (provider.IstiodEndpoint, error) {
	in.mu.Lock()
	if in.eps == nil {
		in.eps = &Endpoints{Provider: in.Provider}
	}
	eps := in.eps
	in.mu.Unlock()
	return eps.Endpoint(ctx, cluster)
}

// Close stops what the installer keeps open (port-forwards to istiod pods).
func (in *Installer) Close() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.eps != nil {
		in.eps.Close()
	}
}

func (in *Installer) processes() (provider.IstiodProcesses, bool) {
	if in.Provider.Capabilities().Istiod != provider.IstiodProcess {
		return nil, false
	}
	pp, ok := in.Provider.(provider.IstiodProcesses)
	return pp, ok
}

// renderIstiod renders the istiod chart for cluster c with its role's values.
func (in *Installer) renderIstiod(c scenario.Cluster) (Rendered, error) {
	values, err := in.istiodValues(c)
	if err != nil {
		return nil, err
	}
	r, err := in.renderer(c)
	if err != nil {
		return nil, err
	}
	return r.Render(ChartIstiod, ReleaseIstiod, IstioNamespace, values)
}

// istiodValues are the istiod chart's values for cluster c's role.
func (in *Installer) istiodValues(c scenario.Cluster) (map[string]any, error) {
	t := in.topo()
	serving := t.Serving(c)
	cc, err := pki.ReadCACerts(in.cacertsDir(c.Name))
	if err != nil {
		return nil, fmt.Errorf("mesh CA of %s: %w", c.Name, err)
	}
	webhookHost, err := in.webhookHost(c)
	if err != nil {
		return nil, err
	}
	remotePilot := ""
	if c.Role == scenario.Remote {
		if remotePilot, err = in.remotePilotAddress(serving); err != nil {
			return nil, err
		}
	}
	values := IstiodValues(t, c, webhookHost, cc.RootCert, remotePilot)
	fed, err := in.federationMeshConfig(c)
	if err != nil {
		return nil, err
	}
	for k, v := range fed {
		values["meshConfig"].(map[string]any)[k] = v
	}
	if _, multiRoot := fed["caCertificates"]; multiRoot {
		values["pilot"] = map[string]any{"env": map[string]any{MultiRootEnv: "true"}}
	}
	return values, nil
}

// webhookHost is host:port of the webhook port of the istiod serving c when it runs as a process
// (the API server calls it by URL), or "" when istiod runs in the cluster behind its Service.
func (in *Installer) webhookHost(c scenario.Cluster) (string, error) {
	pp, ok := in.processes()
	if !ok {
		return "", nil
	}
	ep, err := pp.IstiodEndpoint(in.topo().Serving(c).Name)
	if err != nil {
		return "", err
	}
	return ep.Webhook, nil
}

// configureIstiod installs the istiod chart as Helm release istiod, for its cluster objects: RBAC, Services, mesh and injector
// ConfigMaps, webhooks. A remote gets the remote profile's objects (injector webhook pointing at its
// primary's istiod, reader RBAC, the istiod Service of remotePilotAddress).
func (in *Installer) configureIstiod(ctx context.Context, c scenario.Cluster) error {
	values, err := in.istiodValues(c)
	if err != nil {
		return err
	}
	_, err = in.helmRelease(ctx, c, ReleaseIstiod, ChartIstiod, values, in.processOnly(c))
	return err
}

// processOnly are the templates left out of cluster c's istiod release: the istiod pod's own, where
// istiod runs as a process.
func (in *Installer) processOnly(c scenario.Cluster) []string {
	if _, process := in.processes(); process && c.Role == scenario.Primary {
		return processOnly
	}
	return nil
}

// istiodManifest renders what configureIstiod applies to cluster c: the istiod chart for its role, less
// the templates of the istiod pod itself where istiod runs as a process.
func (in *Installer) istiodManifest(c scenario.Cluster) (string, error) {
	r, err := in.renderIstiod(c)
	if err != nil {
		return "", err
	}
	for _, name := range in.processOnly(c) {
		for k := range r {
			if strings.HasSuffix(k, "/"+name) {
				delete(r, k)
			}
		}
	}
	return r.Manifest(), nil
}

func (in *Installer) startDetails(primaries []scenario.Cluster) []string {
	var out []string
	pp, ok := in.processes()
	for _, p := range primaries {
		if !ok {
			out = append(out, fmt.Sprintf("%s: the chart's istiod Deployment (image %s); wait: available within %s, else the pods' reason (ImagePullBackOff, Pending ...)", p.Name, in.imageRef("pilot"), istiodInClusterTimeout))
			continue
		}
		ep, err := pp.IstiodEndpoint(p.Name)
		addr := "ports allocated at up"
		if err == nil {
			addr = fmt.Sprintf("xDS %s, xDS-TLS/CA %s, webhook %s, debug %s", ep.XDS, ep.XDSTLS, ep.Webhook, ep.Debug)
		}
		out = append(out, fmt.Sprintf("%s: pilot-discovery as a local process, configured from the rendered Deployment (env), ConfigMaps istio (mesh, meshNetworks) and istio-sidecar-injector (config, values); ROOT_CA_DIR=%s; ISTIOD_CUSTOM_HOST=localhost; %s",
			p.Name, in.cacertsDir(p.Name), addr))
	}
	if ok {
		out = append(out, "wait: /ready")
	}
	return out
}

// istiodInClusterTimeout bounds the wait for the chart's istiod Deployment (image pulls included).
const istiodInClusterTimeout = 5 * time.Minute

// startIstiod runs istiod for a primary: a process where the provider runs them, else it waits for the
// chart's Deployment (applied by configureIstiod) to be available.
func (in *Installer) startIstiod(ctx context.Context, c scenario.Cluster) error {
	pp, ok := in.processes()
	if !ok {
		kc, err := in.client(ctx, c.Name)
		if err != nil {
			return err
		}
		return kube.WaitDeployment(ctx, kc, IstioNamespace, "istiod", IstiodSelector, istiodInClusterTimeout, in.imageHint())
	}
	r, err := in.renderIstiod(c)
	if err != nil {
		return err
	}
	spec, err := processSpec(r, c)
	if err != nil {
		return err
	}
	spec.CACertsDir = in.cacertsDir(c.Name)
	rel, err := in.releaseFor(ctx, c)
	if err != nil {
		return err
	}
	spec.Binary = rel.PilotDiscovery
	return pp.StartIstiod(ctx, c.Name, spec)
}

// processSpec turns the rendered chart into what a local pilot-discovery needs: the Deployment's
// environment (pod field references resolved as the kubelet would). The mesh config and the injector's
// config istiod reads live from the chart's ConfigMaps in the cluster.
func processSpec(r Rendered, c scenario.Cluster) (provider.IstiodSpec, error) {
	objs, err := kube.Decode(r.Manifest())
	if err != nil {
		return provider.IstiodSpec{}, err
	}
	var spec provider.IstiodSpec
	spec.Files = map[string][]byte{}
	chart := map[string]string{}
	for _, o := range objs {
		switch {
		// The mesh config and the injector's config are not written as files: without them istiod
		// watches the ConfigMaps istio (mesh, meshNetworks) and istio-sidecar-injector (config, values)
		// that the chart applied (pilot/pkg/bootstrap/mesh.go getConfigurationSources,
		// sidecarinjector.go), so a user's edit reaches it within seconds, as a kubelet-mounted
		// ConfigMap would. The chart must still hold them.
		case o.GetKind() == "ConfigMap" && o.GetName() == "istio":
			mesh, _, _ := unstructured.NestedString(o.Object, "data", "mesh")
			chart["mesh"] = mesh
		case o.GetKind() == "ConfigMap" && o.GetName() == "istio-sidecar-injector":
			cfg, _, _ := unstructured.NestedString(o.Object, "data", "config")
			chart["injector config"] = cfg
		case o.GetKind() == "Deployment" && o.GetName() == "istiod":
			env, err := deploymentEnv(o, c)
			if err != nil {
				return spec, err
			}
			spec.Env = env
		}
	}
	for _, need := range []string{"mesh", "injector config"} {
		if chart[need] == "" {
			return spec, fmt.Errorf("the rendered istiod chart has no %s (ConfigMaps istio, istio-sidecar-injector)", need)
		}
	}
	if spec.Env == nil {
		return spec, errors.New("the rendered istiod chart has no Deployment istiod")
	}
	spec.Env = append(spec.Env, "ISTIOD_CUSTOM_HOST=localhost")
	return spec, nil
}

func deploymentEnv(d *unstructured.Unstructured, c scenario.Cluster) ([]string, error) {
	containers, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	for _, ct := range containers {
		m, _ := ct.(map[string]any)
		if m["name"] != "discovery" {
			continue
		}
		envs, _ := m["env"].([]any)
		var out []string
		for _, e := range envs {
			em, _ := e.(map[string]any)
			name, _ := em["name"].(string)
			if v, ok := em["value"].(string); ok {
				if name == "KUBECONFIG" {
					continue // the runtime passes the cluster's kubeconfig
				}
				out = append(out, name+"="+v)
				continue
			}
			path, _, _ := unstructured.NestedString(em, "valueFrom", "fieldRef", "fieldPath")
			switch path {
			case "metadata.name":
				out = append(out, name+"=istiod-"+c.Name)
			case "metadata.namespace":
				out = append(out, name+"="+IstioNamespace)
			case "spec.serviceAccountName":
				out = append(out, name+"=istiod")
			}
			// resourceFieldRef (GOMAXPROCS, GOMEMLIMIT) is the runtime's to set.
		}
		return out, nil
	}
	return nil, errors.New("the istiod Deployment has no discovery container")
}

// readRoot returns the mesh root of a cluster's cacerts.
func (in *Installer) readRoot(cluster string) ([]byte, error) {
	return os.ReadFile(filepath.Join(in.cacertsDir(cluster), pki.RootCertFile))
}
