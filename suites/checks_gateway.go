package suites

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"mclab.dev/mclab/lab/istio"
)

// gatewayStat is the east-west gateway's count of connections accepted on its 15443 (AUTO_PASSTHROUGH)
// listener.
const gatewayStat = "listener.0.0.0.0_15443.downstream_cx_total"

var gatewayStatRE = regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(gatewayStat) + `: (\d+)$`)

// gatewayPod is a running east-west gateway pod of a cluster.
func (t *Target) gatewayPod(ctx context.Context, cluster string) (*corev1.Pod, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(istio.IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "istio=eastwestgateway"})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if pods.Items[i].Status.Phase == corev1.PodRunning {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no running east-west gateway pod in %s/%s", cluster, istio.IstioNamespace)
}

// gatewayConnections reads the 15443 connection counter of every east-west gateway, through Envoy's
// admin API in the gateway pod (`pilot-agent request GET stats`, as istioctl does).
func (t *Target) gatewayConnections(ctx context.Context, clusters []string) (map[string]int, error) {
	out := map[string]int{}
	for _, c := range clusters {
		pod, err := t.gatewayPod(ctx, c)
		if err != nil {
			return nil, err
		}
		stdout, stderr, err := t.Exec.Exec(ctx, c, pod.Namespace, pod.Name, "istio-proxy", []string{"pilot-agent", "request", "GET", "stats?filter=" + gatewayStat})
		if err != nil {
			return nil, fmt.Errorf("reading the stats of %s's east-west gateway: %v %s", c, err, strings.TrimSpace(stderr))
		}
		m := gatewayStatRE.FindStringSubmatch(stdout)
		if m == nil {
			out[c] = -1 // no 15443 listener at all
			continue
		}
		out[c], _ = strconv.Atoi(m[1])
	}
	return out, nil
}

// CheckGatewayTraffic proves that cross-network requests go through the east-west gateways: it reads
// every gateway's 15443 connection count, sends requests to helloworld from a client on each network,
// and expects the count of another network's gateway to rise. Requests that reach other networks
// without entering a gateway mean the sidecars send to remote pod IPs (the network is misconfigured).
func CheckGatewayTraffic(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.Inconclusive = fmt.Errorf("no way to run commands in pods")
		return v
	}
	for _, client := range t.Scenario.Clusters {
		var remote []string
		for _, c := range mesh(t, client.Mesh) {
			if c.Network != client.Network && t.topo().NeedsEastWestGateway(c) {
				remote = append(remote, c.Name)
			}
		}
		if len(remote) == 0 {
			continue
		}
		before, err := t.gatewayConnections(ctx, remote)
		if err != nil {
			v.Inconclusive = err
			return v
		}
		pod, err := t.pod(ctx, client.Name, "curl")
		if err != nil {
			v.Inconclusive = err
			return v
		}
		n := 10 * len(mesh(t, client.Mesh))
		cmd := helloRequests(n)
		if _, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "curl", cmd); err != nil {
			v.fail("curl in %s could not run its requests: %v %s", client.Name, err, strings.TrimSpace(stderr))
			continue
		}
		after, err := t.gatewayConnections(ctx, remote)
		if err != nil {
			v.Inconclusive = err
			return v
		}
		rose := false
		for _, c := range remote {
			v.saw("from %s: %s's gateway %s %d -> %d", client.Name, c, gatewayStat, before[c], after[c])
			switch {
			case after[c] < 0:
				v.fail("%s's east-west gateway has no 15443 listener: apply Istio's expose-services (AUTO_PASSTHROUGH Gateway on port 15443)", c)
			case after[c] > before[c]:
				rose = true
			}
		}
		if !rose {
			v.fail("%d requests from %s entered no other network's east-west gateway on 15443 (%s unchanged): its sidecar does not route other networks through the gateways; check the network labels and meshNetworks", n, client.Name, strings.Join(remote, ", "))
		}
	}
	return v
}
