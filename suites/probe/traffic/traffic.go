// Package traffic is the data-plane probe: it runs commands in pods (what `kubectl exec` does) so the
// checks can send requests from the sample clients. It needs pods that run containers (kind, existing
// clusters); everything that uses it goes through Exec, so checks are tested with a fake.
package traffic

import (
	"bytes"
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/remotecommand"
)

// Exec runs a command in a pod's container and returns its output.
type Exec interface {
	Exec(ctx context.Context, cluster, namespace, pod, container string, cmd []string) (stdout, stderr string, err error)
}

// Kube is Exec over the API server's exec subresource (SPDY or WebSocket, as kubectl).
type Kube struct {
	// Configs and Clients are per cluster.
	Configs map[string]*rest.Config
	Clients map[string]kubernetes.Interface
}

// Exec implements Exec.
func (k *Kube) Exec(ctx context.Context, cluster, namespace, pod, container string, cmd []string) (string, string, error) {
	cs, cfg := k.Clients[cluster], k.Configs[cluster]
	if cs == nil || cfg == nil {
		return "", "", fmt.Errorf("no client for cluster %s", cluster)
	}
	req := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(cfg, "POST", req.URL())
	if err != nil {
		return "", "", err
	}
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String(), errOut.String(), err
}
