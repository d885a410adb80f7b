package istio

import (
	"fmt"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/scenario"
)

// Manifests renders everything the install applies to cluster c, by name: base (CRDs, reader account,
// validation webhook), istiod (the chart for the cluster's role), eastwest-gateway and Istio's expose
// samples where the model needs them, and the sample workloads. It is what `up` applies, for golden
// tests and dry runs.
func (in *Installer) Manifests(c scenario.Cluster) (map[string]string, error) {
	out := map[string]string{}
	var err error
	if out["base"], err = in.baseManifest(c); err != nil {
		return nil, err
	}
	if out["istiod"], err = in.istiodManifest(c); err != nil {
		return nil, err
	}
	if in.topo().NeedsEastWestGateway(c) {
		if out["eastwest-gateway"], err = in.gatewayManifest(c); err != nil {
			return nil, err
		}
		for _, f := range in.exposeFixtures(c) {
			data, err := fixtures.FS.ReadFile(f)
			if err != nil {
				return nil, err
			}
			out[f[len("istio/"):len(f)-len(".yaml")]] = string(data)
		}
	}
	if in.topo().ExposesIstiodThroughLoadBalancer(c) {
		data, err := fixtures.FS.ReadFile(istiodLBFixture)
		if err != nil {
			return nil, err
		}
		out["expose-istiod-lb"] = string(data)
	}
	idx := -1
	for i, cl := range in.S.Clusters {
		if cl.Name == c.Name {
			idx = i
		}
	}
	if idx < 0 {
		return nil, fmt.Errorf("no cluster %s", c.Name)
	}
	objs, err := in.clusterSamples(idx)
	if err != nil {
		return nil, err
	}
	samples := ""
	for _, o := range objs {
		data, err := o.MarshalJSON()
		if err != nil {
			return nil, err
		}
		samples += "---\n" + string(data) + "\n"
	}
	out["samples"] = samples
	return out, nil
}
