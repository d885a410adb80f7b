package suites

import (
	"context"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"mclab.dev/mclab/lab/istio"
	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/suites/probe/xds"
)

// hostStatRE reads a per-host counter of Envoy's admin /clusters text output, one line per host and
// stat: "<cluster>::<host>:<port>::<stat>::<value>" (Envoy's docs, operations/admin "GET /clusters";
// source/server/admin/clusters_handler.cc). The host is an IP, or [IPv6].
var hostStatRE = regexp.MustCompile(`(?m)^outbound\|5000\|\|helloworld\.sample\.svc\.cluster\.local::(\[[^\]]+\]|[^:]+):(\d+)::rq_total::(\d+)$`)

// helloHostRequests reads, in a client's sidecar, how many requests it sent to each helloworld host
// (pod IP or east-west gateway) with `pilot-agent request GET clusters`, as istioctl reads the admin
// API. Per-host counters are kept whatever the stats inclusion says (Istio's pkg/bootstrap/config.go
// filters the /stats names, not /clusters).
func (t *Target) helloHostRequests(ctx context.Context, client scenario.Cluster) (map[string]int, error) {
	pod, err := t.pod(ctx, client.Name, "curl")
	if err != nil {
		return nil, err
	}
	stdout, stderr, err := t.Exec.Exec(ctx, client.Name, pod.Namespace, pod.Name, "istio-proxy", []string{"pilot-agent", "request", "GET", "clusters"})
	if err != nil {
		return nil, fmt.Errorf("reading the admin /clusters of %s's curl sidecar: %v %s", client.Name, err, strings.TrimSpace(stderr))
	}
	out := map[string]int{}
	for _, m := range hostStatRE.FindAllStringSubmatch(stdout, -1) {
		n, _ := strconv.Atoi(m[3])
		out[strings.Trim(m[1], "[]")+":"+m[2]] = n
	}
	return out, nil
}

// CheckGatewayTraffic proves that cross-network requests go through the east-west gateways: a client
// on each network sends requests to helloworld; the replies say which cluster answered, and the
// client's sidecar counts the requests it sent to each host (per-host rq_total). Every request answered
// by another network must have been sent to that network's gateway on 15443: requests answered there
// with no rise at its gateways went to pod IPs directly, and requests that entered a gateway with no
// answer from its network mean the gateway does not pass them. Per-request counters at the client are
// used because gateway connection counts do not rise per request (sidecars pool connections).
func CheckGatewayTraffic(ctx context.Context, t *Target) Verdict {
	var v Verdict
	if t.Exec == nil {
		v.cannot("no way to run commands in pods")
		return v
	}
	owners, err := t.helloOwners(ctx)
	if err != nil {
		v.cannot("%v", err)
		return v
	}
	for _, client := range t.Scenario.Clusters {
		remote := map[string][]string{} // network -> its clusters
		for _, c := range mesh(t, client.Mesh) {
			if c.Network != client.Network {
				remote[c.Network] = append(remote[c.Network], c.Name)
			}
		}
		if len(remote) == 0 {
			continue
		}
		gws, _ := t.meshGateways(ctx, client.Mesh)
		before, err := t.helloHostRequests(ctx, client)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		n := 10 * len(mesh(t, client.Mesh))
		replies, err := t.sendHello(ctx, client, n)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		after, err := t.helloHostRequests(ctx, client)
		if err != nil {
			v.cannot("%v", err)
			continue
		}
		reached := reachedBy(replies, owners)
		for _, network := range sortedNetworks(remote) {
			answered := 0
			for _, c := range remote[network] {
				answered += reached[c]
			}
			sent := 0
			var at []string
			for _, g := range gws {
				if g.network != network {
					continue
				}
				for _, ip := range g.ips {
					host := ip + ":15443"
					sent += after[host] - before[host]
					at = append(at, host)
				}
			}
			v.saw("from %s: %d requests answered by %s; the sidecar sent %d to its gateways %v", client.Name, answered, network, sent, at)
			switch {
			case len(at) == 0:
				v.fail("network %s has no east-west gateway with an address, so requests from %s cannot reach it", network, client.Name)
			case answered > 0 && sent == 0:
				v.fail("%d requests from %s were answered by %s without passing its east-west gateway %v: the sidecar reaches that network's pods directly; check the network labels (%s) and meshNetworks", answered, client.Name, network, at, istio.NetworkLabel)
			case answered == 0 && sent > 0:
				v.fail("%d requests from %s entered %s's east-west gateway %v but none was answered by %s: the gateway does not pass helloworld (expose-services on 15443) or the pods behind it refuse it", sent, client.Name, network, at, network)
			case answered == 0:
				v.fail("no request from %s reached network %s or its gateway %v (reached %s)", client.Name, network, at, describe(reached))
			}
		}
	}
	return v
}

func sortedNetworks(m map[string][]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// gatewayListener is the east-west gateway's AUTO_PASSTHROUGH listener (expose-services' port 15443).
const gatewayListener = "0.0.0.0_15443"

// sniFor is the SNI a sidecar sends to reach host:port through an east-west gateway, which the
// gateway's AUTO_PASSTHROUGH filter chains match (model.BuildDNSSrvSubsetKey, used by
// builtAutoPassthroughFilterChains in pilot/pkg/networking/core/gateway.go).
func sniFor(host string, port int) string { return fmt.Sprintf("outbound_.%d_._.%s", port, host) }

// exposedBy lists the hosts (with their port) that cluster c's east-west gateway must pass through:
// every sample service of a multi-network mesh (expose-services: *.local), or, in a federated
// scenario, only the hosts its mesh exports; and the hosts it must not pass.
func (t *Target) exposedBy(c scenario.Cluster) (want, never map[string]int) {
	want, never = map[string]int{}, map[string]int{}
	samples := map[string]int{}
	if scenario.HasSidecarSamples(t.Scenario) {
		samples["helloworld.sample.svc.cluster.local"], samples["httpbin.sample.svc.cluster.local"] = 5000, 8000
	}
	if scenario.HasProxylessSamples(t.Scenario) {
		samples["echo."+istio.ProxylessNamespace+".svc.cluster.local"] = 7071
	}
	if f := t.Scenario.Istio.Federation; f != nil && t.Scenario.Istio.Model == scenario.Federated {
		exported := map[string]bool{}
		for _, e := range f.Exports {
			if e.Mesh == c.Mesh {
				for _, h := range e.Hosts {
					exported[h] = true
				}
			}
		}
		for h, p := range samples {
			if exported[h] {
				want[h] = p
			} else if !t.topo().MultiNetworkMesh(c.Mesh) {
				never[h] = p
			}
		}
		return want, never
	}
	if t.topo().MultiNetworkMesh(c.Mesh) {
		return samples, never
	}
	return want, never
}

// CheckGatewayConfig reads the configuration istiod sends each east-west gateway, as the gateway pod's
// own proxy (a router node): the 15443 AUTO_PASSTHROUGH listener must exist and pass the services the
// mesh exposes (by their SNI), and nothing a federated mesh does not export. This catches a missing
// expose-services Gateway without sending any traffic, on every provider.
func CheckGatewayConfig(ctx context.Context, t *Target) Verdict {
	var v Verdict
	for _, c := range t.Scenario.Clusters {
		if !t.topo().NeedsEastWestGateway(c) {
			continue
		}
		want, never := t.exposedBy(c)
		if len(want) == 0 && len(never) == 0 {
			continue
		}
		pod, err := t.gatewayPodAny(ctx, c.Name)
		if err != nil {
			v.record(err, "finding %s's east-west gateway pod", c.Name)
			continue
		}
		snap, err := t.proxyFetch(ctx, c, pod, xds.RouterProxy, xds.Request{Listeners: true})
		if err != nil {
			v.record(err, "reading the configuration of %s's east-west gateway", c.Name)
			continue
		}
		var names []string
		for n := range snap.Listeners {
			names = append(names, n)
		}
		sort.Strings(names)
		v.saw("%s's east-west gateway listeners: %v", c.Name, names)
		l := snap.Listeners[gatewayListener]
		if l == nil {
			if len(want) > 0 {
				v.failWhy(func() string { return t.whyNoPassthrough(ctx, c.Name) }, "%s's east-west gateway has no 15443 AUTO_PASSTHROUGH listener (it has %v)", c.Name, names)
			}
			continue
		}
		snis := map[string]bool{}
		for _, fc := range l.GetFilterChains() {
			for _, sn := range fc.GetFilterChainMatch().GetServerNames() {
				snis[sn] = true
			}
		}
		for _, h := range sortedKeys(want) {
			if !snis[sniFor(h, want[h])] {
				v.fail("%s's east-west gateway does not pass %s (no filter chain for SNI %s on 15443): the Gateway on 15443 does not select it (its hosts), so requests from other networks to it fail", c.Name, h, sniFor(h, want[h]))
			}
		}
		for _, h := range sortedKeys(never) {
			if snis[sniFor(h, never[h])] {
				v.fail("%s's east-west gateway passes %s, which mesh %s does not export: other meshes can reach it; narrow the 15443 Gateway's hosts to the exported ones", c.Name, h, c.Mesh)
			}
		}
	}
	return v
}

// gatewayPodAny is an east-west gateway pod of a cluster that has an IP (Running, or on kwok nodes).
func (t *Target) gatewayPodAny(ctx context.Context, cluster string) (*corev1.Pod, error) {
	pods, err := t.Clients[cluster].Kube.CoreV1().Pods(istio.IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "istio=eastwestgateway"})
	if err != nil {
		return nil, err
	}
	for i := range pods.Items {
		if pods.Items[i].Status.PodIP != "" && pods.Items[i].DeletionTimestamp == nil {
			return &pods.Items[i], nil
		}
	}
	return nil, fmt.Errorf("no east-west gateway pod with an IP in %s/%s", cluster, istio.IstioNamespace)
}

var gatewaysGVR = schema.GroupVersionResource{Group: "networking.istio.io", Version: "v1", Resource: "gateways"}

// whyNoPassthrough names what is missing: no Gateway with an AUTO_PASSTHROUGH server on 15443 selects
// the east-west gateway.
func (t *Target) whyNoPassthrough(ctx context.Context, cluster string) string {
	primary := t.topo().Serving(*t.Scenario.Cluster(cluster)).Name
	list, err := t.Clients[primary].Dynamic.Resource(gatewaysGVR).Namespace(istio.IstioNamespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Sprintf("listing Gateways in %s: %v", primary, err)
	}
	for _, gw := range list.Items {
		servers, _, _ := unstructured.NestedSlice(gw.Object, "spec", "servers")
		for _, s := range servers {
			m, _ := s.(map[string]any)
			port, _, _ := unstructured.NestedInt64(m, "port", "number")
			mode, _, _ := unstructured.NestedString(m, "tls", "mode")
			if port == 15443 && mode == "AUTO_PASSTHROUGH" {
				return fmt.Sprintf("Gateway %s/%s in %s has an AUTO_PASSTHROUGH server on 15443, but it does not select the gateway pod (selector istio=eastwestgateway?)", istio.IstioNamespace, gw.GetName(), primary)
			}
		}
	}
	if t.Scenario.Istio.Federation != nil {
		// expose-services.yaml would pass every *.local host: federation exports only named hosts.
		return fmt.Sprintf("no Gateway with an AUTO_PASSTHROUGH server on port 15443 in %s's %s: re-create Gateway federation-export with a 15443 AUTO_PASSTHROUGH server for the exported hosts only (not expose-services.yaml, which passes every *.local host); `mclab up` restores it", primary, istio.IstioNamespace)
	}
	return fmt.Sprintf("no Gateway with an AUTO_PASSTHROUGH server on port 15443 in %s's %s: apply Istio's samples/multicluster/expose-services.yaml", primary, istio.IstioNamespace)
}

func sortedKeys(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// CheckGatewaysRunning: every east-west gateway has a Ready pod, or nothing crosses into its network (or
// out of its mesh). A gateway that does not run is named with its pod's state and its last error
// line. On offline images (provider.kind.offlineImages) the gateway cannot run at all, as their proxyv2
// holds pilot-agent but no Envoy: that is not judged, and says so.
func CheckGatewaysRunning(ctx context.Context, t *Target) Verdict {
	var v Verdict
	for _, c := range t.Scenario.Clusters {
		if !t.carriesTraffic(c) {
			continue
		}
		pods, err := t.Clients[c.Name].Kube.CoreV1().Pods(istio.IstioNamespace).List(ctx, metav1.ListOptions{LabelSelector: "istio=eastwestgateway"})
		if err != nil {
			v.cannot("listing %s's east-west gateway pods: %v", c.Name, err)
			continue
		}
		var states []string
		ready := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil {
				continue
			}
			if podIsReady(p) {
				ready++
				continue
			}
			states = append(states, t.podTrouble(ctx, c.Name, p))
		}
		switch {
		case ready > 0:
			v.saw("%s: east-west gateway has %d ready pod(s)", c.Name, ready)
		case scenario.OfflineImages(t.Scenario):
			v.cannot("the east-west gateway of %s cannot run on offline images: their proxyv2 holds pilot-agent but no Envoy (Envoy cannot be built here), so traffic through gateways is not judged; %s", c.Name, strings.Join(states, "; "))
		case len(states) == 0:
			v.fail("%s has no east-west gateway pod (Deployment %s/%s): nothing from outside reaches network %s", c.Name, istio.IstioNamespace, istio.EastWestGatewayName, c.Network)
		default:
			v.fail("the east-west gateway of %s has no Ready pod, so nothing from outside reaches network %s through it: %s", c.Name, c.Network, strings.Join(states, "; "))
		}
	}
	return v
}

// carriesTraffic reports whether cluster c's east-west gateway carries anything: into a network of a
// multi-network mesh, istiod for remotes, or the services its mesh exports to federated meshes.
func (t *Target) carriesTraffic(c scenario.Cluster) bool {
	topo := t.topo()
	if topo.MultiNetworkMesh(c.Mesh) || topo.ExposesIstiodThroughGateway(c) {
		return true
	}
	return t.Scenario.Istio.Model == scenario.Federated && len(meshExports(t.Scenario, c.Mesh)) > 0
}

// meshExports are the hosts a mesh exports to the other meshes of a federated scenario.
func meshExports(s *scenario.Scenario, mesh string) []string {
	var out []string
	if f := s.Istio.Federation; f != nil {
		for _, e := range f.Exports {
			if e.Mesh == mesh {
				out = append(out, e.Hosts...)
			}
		}
	}
	return out
}

func podIsReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// podTrouble describes why a pod is not Ready: its containers' waiting or terminated reasons and the
// last error line of the failing container's log (pilot-agent's own error, e.g. "failed to initialize
// envoy agent: ... envoy_bootstrap_tmpl.json: no such file or directory" where Envoy is missing).
func (t *Target) podTrouble(ctx context.Context, cluster string, p corev1.Pod) string {
	var parts []string
	for _, cs := range p.Status.ContainerStatuses {
		state := ""
		switch {
		case cs.State.Waiting != nil:
			state = cs.State.Waiting.Reason
		case cs.State.Terminated != nil:
			state = fmt.Sprintf("%s (exit %d)", cs.State.Terminated.Reason, cs.State.Terminated.ExitCode)
		case cs.State.Running != nil:
			state = "Running, not ready"
		}
		if cs.RestartCount > 0 {
			state += fmt.Sprintf(", %d restarts", cs.RestartCount)
		}
		// A container that just exited still holds its log; one waiting to restart (CrashLoopBackOff)
		// has it in the previous run's.
		line := t.lastErrorLine(ctx, cluster, p, cs.Name, cs.State.Terminated == nil && cs.RestartCount > 0)
		if line == "" && cs.RestartCount > 0 {
			line = t.lastErrorLine(ctx, cluster, p, cs.Name, cs.State.Terminated != nil)
		}
		if line != "" {
			state += ": " + line
		}
		parts = append(parts, fmt.Sprintf("pod %s container %s %s", p.Name, cs.Name, state))
	}
	if len(parts) == 0 {
		return fmt.Sprintf("pod %s is %s", p.Name, p.Status.Phase)
	}
	return strings.Join(parts, ", ")
}

// lastErrorLine is the last line of a container's log (its previous run's when it restarted) that
// reports an error, "" when there is none or the log cannot be read.
func (t *Target) lastErrorLine(ctx context.Context, cluster string, p corev1.Pod, container string, previous bool) string {
	tail := int64(40)
	data, err := t.Clients[cluster].Kube.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{Container: container, Previous: previous, TailLines: &tail}).DoRaw(ctx)
	if err != nil {
		return ""
	}
	return errorLine(string(data))
}

// errorLine is the last error a log reports: cobra's "Error: ..." line, or a zap line whose level is
// "error" (pilot-agent's format: "<time>\terror\t<message>").
func errorLine(log string) string {
	last := ""
	for _, l := range strings.Split(log, "\n") {
		if strings.HasPrefix(l, "Error: ") || strings.Contains(l, "\terror\t") {
			last = strings.TrimSpace(strings.TrimPrefix(l, "Error: "))
			if i := strings.Index(last, "\terror\t"); i >= 0 {
				last = strings.TrimSpace(last[i+len("\terror\t"):])
			}
		}
	}
	if len(last) > 240 {
		last = last[:240] + "..."
	}
	return last
}
