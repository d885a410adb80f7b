package istio

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"mclab.dev/mclab/fixtures"
	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/lab/scenario"
)

// SampleNamespace is where the sample workloads run, with injection on.
const SampleNamespace = "sample"

// HelloworldVersion is the helloworld version cluster index i (0-based) runs: v1 in the first cluster,
// v2 in the second, and so on, as Istio's verify docs deploy it.
func HelloworldVersion(i int) string { return fmt.Sprintf("v%d", i+1) }

func (in *Installer) sampleDetails() []string {
	var out []string
	for i, c := range in.S.Clusters {
		out = append(out, fmt.Sprintf("%s: namespace %s (istio-injection=enabled); helloworld Service + helloworld-%s; curl; httpbin (samples/helloworld, curl, httpbin); httpbin STRICT mTLS and curl-plain without a sidecar (fixtures/istio/mtls-strict.yaml)", c.Name, SampleNamespace, HelloworldVersion(i)))
	}
	return append(out, "wait: every sample pod Running (and Ready where pods run containers) and injected by istiod (annotation sidecar.istio.io/status)")
}

// sampleObjects returns the sample objects for cluster index i: Istio's samples, with helloworld's v1
// Deployment renamed to the cluster's version (what samples/helloworld/gen-helloworld.sh does).
func sampleObjects(i int) ([]*unstructured.Unstructured, error) {
	return sampleObjectsFor(i, func(string) bool { return true })
}

// clusterSamples are cluster c's samples: in a federated scenario, a service that a mesh exports runs
// only in that mesh, so the other meshes can reach it only through the export.
func (in *Installer) clusterSamples(idx int) ([]*unstructured.Unstructured, error) {
	c := in.S.Clusters[idx]
	return sampleObjectsFor(idx, func(app string) bool {
		exporter := in.exportedBy(app + "." + SampleNamespace + ".svc.cluster.local")
		return exporter == "" || exporter == c.Mesh
	})
}

func sampleObjectsFor(i int, keep func(app string) bool) ([]*unstructured.Unstructured, error) {
	var out []*unstructured.Unstructured
	for _, f := range []string{"istio/helloworld.yaml", "istio/curl.yaml", "istio/httpbin.yaml", "istio/mtls-strict.yaml"} {
		data, err := fixtures.FS.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := kube.Decode(string(data))
		if err != nil {
			return nil, err
		}
		for _, o := range objs {
			app := o.GetName()
			if l := o.GetLabels()["app"]; l != "" {
				app = l
			}
			if !keep(app) {
				continue
			}
			if o.GetKind() == "Deployment" && strings.HasPrefix(o.GetName(), "helloworld-") {
				if o.GetName() != "helloworld-v1" {
					continue
				}
				v := HelloworldVersion(i)
				o.SetName("helloworld-" + v)
				o.SetLabels(map[string]string{"app": "helloworld", "version": v})
				_ = unstructured.SetNestedStringMap(o.Object, map[string]string{"app": "helloworld", "version": v}, "spec", "selector", "matchLabels")
				_ = unstructured.SetNestedStringMap(o.Object, map[string]string{"app": "helloworld", "version": v}, "spec", "template", "metadata", "labels")
				// The sample prints SERVICE_VERSION: set it as gen-helloworld.sh does, or every
				// cluster's pods would answer "Hello version: v1".
				if err := setEnv(o, "SERVICE_VERSION", v); err != nil {
					return nil, err
				}
			}
			out = append(out, o)
		}
	}
	return out, nil
}

// samples deploys the sample workloads into cluster c and waits until they run, injected.
func (in *Installer) samples(ctx context.Context, c scenario.Cluster) error {
	return in.deploySamples(ctx, c, SampleNamespace, in.clusterSamples)
}

// deploySamples applies the objects objsFor gives cluster c's index into namespace ns (injection on)
// and waits until each Deployment's pod runs, injected.
func (in *Installer) deploySamples(ctx context.Context, c scenario.Cluster, ns string, objsFor func(int) ([]*unstructured.Unstructured, error)) error {
	idx := 0
	for i, cl := range in.S.Clusters {
		if cl.Name == c.Name {
			idx = i
		}
	}
	kc, err := in.client(ctx, c.Name)
	if err != nil {
		return err
	}
	namespace := &corev1.Namespace{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"},
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"istio-injection": "enabled"}},
	}
	if err := kc.ApplyTyped(ctx, namespace); err != nil {
		return err
	}
	objs, err := objsFor(idx)
	if err != nil {
		return err
	}
	if err := kc.Apply(ctx, ns, objs...); err != nil {
		return err
	}
	pods := 0
	for _, o := range objs {
		if o.GetKind() == "Deployment" {
			pods++
		}
	}
	return waitInjected(ctx, kc, ns, pods, in.Provider.Capabilities().RunsContainers)
}

// ProxylessNamespace holds the proxyless gRPC samples.
const ProxylessNamespace = "proxyless"

// EchoImage is Istio's echo app image for the scenario's hub and tag (Istio's tests name it "app").
func (in *Installer) EchoImage() string {
	hub, tag := in.S.Istio.Hub, in.S.Istio.Tag
	if hub == "" {
		hub = "registry.istio.io/testing"
	}
	if tag == "" {
		tag = "latest"
	}
	return hub + "/app:" + tag
}

// proxylessObjects are cluster index i's proxyless samples: Istio's echo app injected with the
// grpc-agent template, as echo-vN reporting its cluster.
func (in *Installer) proxylessObjects(i int) ([]*unstructured.Unstructured, error) {
	data, err := fixtures.FS.ReadFile("istio/echo-proxyless.yaml")
	if err != nil {
		return nil, err
	}
	objs, err := kube.Decode(string(data))
	if err != nil {
		return nil, err
	}
	c := in.S.Clusters[i]
	v := HelloworldVersion(i)
	for _, o := range objs {
		if o.GetKind() != "Deployment" {
			continue
		}
		o.SetName("echo-" + v)
		labels := map[string]string{"app": "echo", "version": v}
		o.SetLabels(labels)
		_ = unstructured.SetNestedStringMap(o.Object, labels, "spec", "selector", "matchLabels")
		_ = unstructured.SetNestedStringMap(o.Object, labels, "spec", "template", "metadata", "labels")
		containers, _, _ := unstructured.NestedSlice(o.Object, "spec", "template", "spec", "containers")
		for j, ct := range containers {
			m := ct.(map[string]any)
			m["image"] = in.EchoImage()
			args, _, _ := unstructured.NestedStringSlice(m, "args")
			for k, a := range args {
				switch {
				case strings.HasPrefix(a, "--cluster="):
					args[k] = "--cluster=" + c.Name
				case strings.HasPrefix(a, "--version="):
					args[k] = "--version=" + v
				}
			}
			_ = unstructured.SetNestedStringSlice(m, args, "args")
			containers[j] = m
		}
		_ = unstructured.SetNestedSlice(o.Object, containers, "spec", "template", "spec", "containers")
	}
	return objs, nil
}

// proxylessSamples deploys cluster c's proxyless samples and waits until they run, injected.
func (in *Installer) proxylessSamples(ctx context.Context, c scenario.Cluster) error {
	return in.deploySamples(ctx, c, ProxylessNamespace, in.proxylessObjects)
}

func podReady(p corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// NoInjectAnnotation opts a pod out of injection (curl-plain, the client without a sidecar).
const NoInjectAnnotation = "sidecar.istio.io/inject"

// waitInjected waits until want pods of the sample namespace are Running and Ready and carry istiod's injection
// status annotation (except those that opt out of injection).
func waitInjected(ctx context.Context, kc *kube.Client, namespace string, want int, needReady bool) error {
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	var problem string
	for {
		pods, err := kc.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{})
		if err == nil {
			ok := 0
			problem = ""
			for _, p := range pods.Items {
				plain, injected := p.Annotations[NoInjectAnnotation] == "false", p.Annotations["sidecar.istio.io/status"] != ""
				switch {
				case plain && injected:
					problem = fmt.Sprintf("pod %s was injected although it opts out", p.Name)
				case !plain && !injected:
					problem = fmt.Sprintf("pod %s was not injected", p.Name)
				case p.Status.Phase != corev1.PodRunning:
					problem = fmt.Sprintf("pod %s is %s", p.Name, p.Status.Phase)
				case needReady && !podReady(p):
					// Not Ready keeps the pod out of its Service's endpoints, so istiod sends no
					// client its address yet. Only where pods run: kwok's Ready is simulated, and a
					// pod whose node lapsed while an API server was down stays NotReady there.
					problem = fmt.Sprintf("pod %s is Running but not Ready", p.Name)
				default:
					ok++
				}
			}
			if ok >= want && problem == "" {
				return nil
			}
			if problem == "" {
				problem = fmt.Sprintf("%d of %d sample pods exist", len(pods.Items), want)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("sample workloads in %s/%s not ready after 90s: %s (is the injection webhook reaching istiod?)", kc.Name, namespace, problem)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// setEnv sets an environment variable on every container of a Deployment.
func setEnv(d *unstructured.Unstructured, name, value string) error {
	containers, _, err := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if err != nil {
		return err
	}
	for i, ct := range containers {
		m, _ := ct.(map[string]any)
		env, _, _ := unstructured.NestedSlice(m, "env")
		var kept []any
		for _, e := range env {
			if em, _ := e.(map[string]any); em["name"] != name {
				kept = append(kept, e)
			}
		}
		m["env"] = append(kept, map[string]any{"name": name, "value": value})
		containers[i] = m
	}
	return unstructured.SetNestedSlice(d.Object, containers, "spec", "template", "spec", "containers")
}
