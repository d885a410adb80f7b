package kube

import (
	"context"
	"fmt"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// WaitDeployment waits until a Deployment has an available replica. On timeout the error says why its
// pods (chosen by selector) are not ready — ImagePullBackOff, CrashLoopBackOff, unschedulable — and
// adds hint when an image could not be pulled.
func WaitDeployment(ctx context.Context, kc *Client, namespace, name, selector string, timeout time.Duration, pullHint string) error {
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		d, err := kc.Kube.AppsV1().Deployments(namespace).Get(wctx, name, metav1.GetOptions{})
		if err == nil && d.Status.AvailableReplicas > 0 {
			return nil
		}
		select {
		case <-wctx.Done():
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("deployment %s/%s in %s not available after %s: %s", namespace, name, kc.Name, timeout, deploymentProblem(ctx, kc, namespace, selector, pullHint))
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func deploymentProblem(ctx context.Context, kc *Client, namespace, selector, pullHint string) string {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	pods, err := kc.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return "its pods cannot be listed: " + err.Error()
	}
	if len(pods.Items) == 0 {
		return "it has no pods (see `kubectl describe deployment` and its ReplicaSet's events)"
	}
	var parts []string
	pull := false
	for i := range pods.Items {
		p := PodProblem(&pods.Items[i])
		if strings.Contains(p, "ImagePull") || strings.Contains(p, "ErrImage") {
			pull = true
		}
		parts = append(parts, pods.Items[i].Name+": "+p)
	}
	msg := strings.Join(parts, "; ")
	if pull && pullHint != "" {
		msg += "; " + pullHint
	}
	return msg
}
