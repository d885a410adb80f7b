package kube

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// TestWaitDeploymentSaysWhy: a Deployment that never becomes available is reported with its pods'
// reasons, and an image that cannot be pulled gets the caller's fix.
func TestWaitDeploymentSaysWhy(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "istiod", Namespace: "istio-system"}}
	pull := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod-7d9f-abcde", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: "discovery",
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: `Back-off pulling image "docker.io/istio/pilot:9.9.9"`}}}}},
	}
	pending := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "istiod-7d9f-fghij", Namespace: "istio-system", Labels: map[string]string{"app": "istiod"}},
		Status: corev1.PodStatus{Phase: corev1.PodPending, Conditions: []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
			Message: "0/1 nodes are available: 1 Insufficient memory."}}},
	}
	kc := &Client{Name: "c1", Kube: fake.NewClientset(dep, pull, pending)}
	err := WaitDeployment(context.Background(), kc, "istio-system", "istiod", "app=istiod", 50*time.Millisecond, "set istio.hub and istio.tag")
	for _, want := range []string{"deployment istio-system/istiod in c1 not available", `istiod-7d9f-abcde: discovery: ImagePullBackOff: Back-off pulling image "docker.io/istio/pilot:9.9.9"`,
		"istiod-7d9f-fghij: unschedulable: 0/1 nodes are available: 1 Insufficient memory.", "set istio.hub and istio.tag"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}

	dep.Status.AvailableReplicas = 1
	kc = &Client{Name: "c1", Kube: fake.NewClientset(dep)}
	if err := WaitDeployment(context.Background(), kc, "istio-system", "istiod", "app=istiod", time.Second, ""); err != nil {
		t.Errorf("available deployment: %v", err)
	}
}

func TestWebhookTimeout(t *testing.T) {
	for msg, want := range map[string]bool{
		`Internal error occurred: failed calling webhook "validation.istio.io": failed to call webhook: Post "https://localhost:20009/validate?timeout=10s": context deadline exceeded`:                          true,
		`Internal error occurred: failed calling webhook "namespace.sidecar-injector.istio.io": failed to call webhook: Post "https://istiod.istio-system.svc:443/inject": dial tcp 10.96.0.10:443: i/o timeout`: true,
		`admission webhook "validation.istio.io" denied the request: configuration is invalid`:                                                                                                                   false,
		`Internal error occurred: failed calling webhook "validation.istio.io": failed to call webhook: x509: certificate signed by unknown authority`:                                                           false,
	} {
		if got := webhookTimeout(errors.New(msg)); got != want {
			t.Errorf("%q: %v", msg, got)
		}
	}
}
