// Package traffic is the data-plane probe: it runs commands in pods (what `kubectl exec` does) so the
// checks can send requests from the sample clients. It needs pods that run containers (kind, existing
// clusters); everything that uses it goes through Exec, so checks are tested with a fake. The real Exec
// is the provider's tunnel (kube.Tunnel: the API server's exec subresource over SPDY).
package traffic

import "context"

// Exec runs a command in a pod's container and returns its output. provider.PodTunnel implements it.
type Exec interface {
	Exec(ctx context.Context, cluster, namespace, pod, container string, cmd []string) (stdout, stderr string, err error)
}
