package istio

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/provider"
	"mclab.dev/mclab/lab/scenario"
)

// gatewayAddress is the address cluster's east-west gateway has or will have: the provider's, where the
// lab assigns addresses, else the Service's status.
func (in *Installer) gatewayAddress(cluster string) (string, error) {
	if lb, ok := in.Provider.(provider.LoadBalancerAssigner); ok && in.Provider.Capabilities().LoadBalancer == "lab-assigned" {
		return lb.LoadBalancerAddress(cluster)
	}
	addr, err := readGatewayAddress(context.Background(), in, cluster)
	if err != nil {
		return "", err
	}
	if addr != "" {
		return addr, nil
	}
	return "", fmt.Errorf("%s's east-west gateway has no address yet", cluster)
}

// eastWestGateway installs cluster c's east-west gateway from the gateway chart (Helm release
// istio-eastwestgateway), gives its Service an
// address where the lab assigns them, and applies Istio's expose-services (primaries of multi-network
// meshes) and expose-istiod (primaries serving remotes) samples.
func (in *Installer) eastWestGateway(ctx context.Context, c scenario.Cluster) error {
	kc, err := in.client(ctx, c.Name)
	if err != nil {
		return err
	}
	if _, err := in.helmRelease(ctx, c, EastWestGatewayName, ChartGateway, in.gatewayValues(c), nil); err != nil {
		return err
	}
	if lb, ok := in.Provider.(provider.LoadBalancerAssigner); ok && in.Provider.Capabilities().LoadBalancer == "lab-assigned" {
		addr, err := lb.LoadBalancerAddress(c.Name)
		if err != nil {
			return err
		}
		if err := setLoadBalancerAddress(ctx, kc.Kube.CoreV1().Services(IstioNamespace), EastWestGatewayName, addr); err != nil {
			return err
		}
	} else if err := waitGatewayAddress(ctx, in, c.Name); err != nil {
		return err
	}
	for _, f := range in.exposeFixtures(c) {
		if err := applyFixture(ctx, in, c.Name, f); err != nil {
			return err
		}
	}
	return nil
}

// gatewayManifest renders cluster c's east-west gateway from the gateway chart.
func (in *Installer) gatewayManifest(c scenario.Cluster) (string, error) {
	r, err := in.renderer(c)
	if err != nil {
		return "", err
	}
	out, err := r.Render(ChartGateway, EastWestGatewayName, IstioNamespace, in.gatewayValues(c))
	if err != nil {
		return "", err
	}
	return out.Manifest(), nil
}

// gatewayValues are the gateway chart's values for cluster c's east-west gateway.
func (in *Installer) gatewayValues(c scenario.Cluster) map[string]any {
	values := EastWestGatewayValues(c)
	if scenario.OfflineImages(in.S) {
		// The chart's "image: auto" has no tag, so Kubernetes defaults the pull policy to Always and the
		// node would pull the injected proxyv2 image instead of using the one loaded into it.
		values["imagePullPolicy"] = "IfNotPresent"
	}
	return values
}

// exposeFixtures are Istio's samples applied with cluster c's gateway: expose-services on primaries of
// multi-network meshes, expose-istiod on primaries that serve remotes.
func (in *Installer) exposeFixtures(c scenario.Cluster) []string {
	t := in.topo()
	var out []string
	if c.Role == scenario.Primary && t.MultiNetworkMesh(c.Mesh) {
		out = append(out, "istio/expose-services.yaml")
	}
	if t.ExposesIstiodThroughGateway(c) {
		out = append(out, "istio/expose-istiod.yaml")
	}
	return out
}

// IstiodLBName is the LoadBalancer Service in front of istiod of istio.exposeIstiod: loadBalancer.
const IstiodLBName = "istiod-lb"

// istiodLBFixture is that Service's manifest.
const istiodLBFixture = "istio/expose-istiod-lb.yaml"

// remotePilotAddress is where the remotes of primary reach its istiod: its istiod-lb Service's address
// (istio.exposeIstiod: loadBalancer), else its east-west gateway's.
func (in *Installer) remotePilotAddress(primary scenario.Cluster) (string, error) {
	if !in.topo().ExposesIstiodThroughLoadBalancer(primary) {
		return in.gatewayAddress(primary.Name)
	}
	addr, err := readServiceAddress(context.Background(), in, primary.Name, IstiodLBName)
	if err != nil {
		return "", err
	}
	if addr == "" {
		return "", fmt.Errorf("%s's Service %s has no LoadBalancer address yet", primary.Name, IstiodLBName)
	}
	return addr, nil
}

// exposeIstiodLB puts a LoadBalancer Service in front of primary c's istiod and waits for its address.
func (in *Installer) exposeIstiodLB(ctx context.Context, c scenario.Cluster) error {
	if err := applyFixture(ctx, in, c.Name, istiodLBFixture); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, gatewayAddressTimeout)
	defer cancel()
	for {
		if _, err := in.remotePilotAddress(c); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("Service %s/%s of %s got no LoadBalancer address in %s (EXTERNAL-IP <pending>): %s", IstioNamespace, IstiodLBName, c.Name, gatewayAddressTimeout, in.loadBalancerFix())
		case <-time.After(time.Second):
		}
	}
}

type serviceStatusClient interface {
	Get(ctx context.Context, name string, opts metav1.GetOptions) (*corev1.Service, error)
	UpdateStatus(ctx context.Context, svc *corev1.Service, opts metav1.UpdateOptions) (*corev1.Service, error)
}

// setLoadBalancerAddress writes the Service's status as a load-balancer controller would.
func setLoadBalancerAddress(ctx context.Context, svcs serviceStatusClient, name, addr string) error {
	svc, err := svcs.Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return err
	}
	if len(svc.Status.LoadBalancer.Ingress) == 1 && svc.Status.LoadBalancer.Ingress[0].IP == addr {
		return nil
	}
	svc.Status.LoadBalancer.Ingress = []corev1.LoadBalancerIngress{{IP: addr}}
	_, err = svcs.UpdateStatus(ctx, svc, metav1.UpdateOptions{FieldManager: "mclab"})
	return err
}

// gatewayAddressTimeout bounds the wait for an east-west gateway's LoadBalancer address.
const gatewayAddressTimeout = 3 * time.Minute

func waitGatewayAddress(ctx context.Context, in *Installer, cluster string) error {
	ctx, cancel := context.WithTimeout(ctx, gatewayAddressTimeout)
	defer cancel()
	for {
		if _, err := in.gatewayAddress(cluster); err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the east-west gateway of %s got no LoadBalancer address in %s (EXTERNAL-IP <pending>): %s", cluster, gatewayAddressTimeout, in.loadBalancerFix())
		case <-time.After(time.Second):
		}
	}
}

func applyFixture(ctx context.Context, in *Installer, cluster, path string) error {
	data, err := fixtures.FS.ReadFile(path)
	if err != nil {
		return err
	}
	kc, err := in.client(ctx, cluster)
	if err != nil {
		return err
	}
	return kc.ApplyManifest(ctx, string(data), IstioNamespace)
}

// gatewayWaitDetail says, for the plan, how gateways get their addresses and how long the wait is.
func (in *Installer) gatewayWaitDetail() string {
	if in.Provider.Capabilities().LoadBalancer == "lab-assigned" {
		return "addresses: assigned by the lab (198.18.0.0/15), written to each Service's status"
	}
	return "wait: every gateway Service has a LoadBalancer address within " + gatewayAddressTimeout.String() + " (" + in.Provider.Capabilities().LoadBalancer + ")"
}

// loadBalancerFix says how to get LoadBalancer addresses on the provider's clusters.
func (in *Installer) loadBalancerFix() string {
	switch in.Provider.Capabilities().LoadBalancer {
	case "cloud-provider-kind":
		return "cloud-provider-kind gives them: is it running on the host (`sudo cloud-provider-kind`)?"
	case "metallb":
		return "MetalLB gives them on kind: check `kubectl -n metallb-system get pods,ipaddresspools` (its pool is carved from the kind network), or run cloud-provider-kind instead"
	default:
		return "the cluster needs a load-balancer controller (a cloud's, MetalLB, cloud-provider-kind); check `kubectl -n istio-system describe svc " + EastWestGatewayName + "`"
	}
}
