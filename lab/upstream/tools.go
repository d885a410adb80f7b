//go:build tools

// Package upstream pins the upstream programs that the local provider runs: Kubernetes' control plane,
// etcd, kwok and Istio's pilot-discovery. It is its own Go module so that their dependency graphs never
// reach mclab's main module; mclab builds these packages from this module into a shared binary cache.
package upstream

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "istio.io/istio/pilot/cmd/pilot-discovery"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "sigs.k8s.io/kwok/cmd/kwok"
)
