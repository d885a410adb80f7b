package kube

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/tools/remotecommand"
	"k8s.io/client-go/transport/spdy"
)

// Tunnel is port-forward and exec through each cluster's API server (what kubectl does), over SPDY.
// It needs pods that run containers behind a kubelet.
type Tunnel struct {
	// Client returns the client of a cluster.
	Client func(ctx context.Context, cluster string) (*Client, error)
}

// ReadyPod returns a running pod matching selector whose containers are all ready.
func ReadyPod(ctx context.Context, kc *Client, namespace, selector string) (*corev1.Pod, error) {
	pods, err := kc.Kube.CoreV1().Pods(namespace).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		return nil, err
	}
	var seen []string
	for i := range pods.Items {
		p := &pods.Items[i]
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && podReady(p) {
			return p, nil
		}
		seen = append(seen, p.Name+" ("+PodProblem(p)+")")
	}
	if len(seen) == 0 {
		return nil, fmt.Errorf("no pod matches %s in %s/%s", selector, kc.Name, namespace)
	}
	return nil, fmt.Errorf("no ready pod matches %s in %s/%s: %s", selector, kc.Name, namespace, strings.Join(seen, ", "))
}

func podReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// PodProblem says in a few words why a pod is not ready: a waiting container's reason and message
// (ImagePullBackOff, CrashLoopBackOff ...) or its phase.
func PodProblem(p *corev1.Pod) string {
	for _, cs := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
		if w := cs.State.Waiting; w != nil && w.Reason != "" && w.Reason != "PodInitializing" && w.Reason != "ContainerCreating" {
			msg := cs.Name + ": " + w.Reason
			if w.Message != "" {
				msg += ": " + firstLineOf(w.Message)
			}
			return msg
		}
		if t := cs.State.Terminated; t != nil && t.ExitCode != 0 {
			return fmt.Sprintf("%s: exited %d (%s)", cs.Name, t.ExitCode, t.Reason)
		}
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodScheduled && c.Status != corev1.ConditionTrue && c.Message != "" {
			return "unschedulable: " + firstLineOf(c.Message)
		}
	}
	return string(p.Status.Phase)
}

func firstLineOf(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

// PortForward forwards ephemeral loopback ports to a ready pod matching selector.
func (t *Tunnel) PortForward(ctx context.Context, cluster, namespace, selector string, ports []int) (map[int]string, func(), error) {
	kc, err := t.Client(ctx, cluster)
	if err != nil {
		return nil, nil, err
	}
	pod, err := ReadyPod(ctx, kc, namespace, selector)
	if err != nil {
		return nil, nil, err
	}
	rt, upgrader, err := spdy.RoundTripperFor(kc.Config)
	if err != nil {
		return nil, nil, err
	}
	url := kc.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod.Name).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, url)
	var specs []string
	for _, p := range ports {
		specs = append(specs, "0:"+strconv.Itoa(p))
	}
	stopCh, readyCh := make(chan struct{}), make(chan struct{})
	var errOut bytes.Buffer
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, specs, stopCh, readyCh, io.Discard, &errOut)
	if err != nil {
		return nil, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	var once sync.Once
	stop := func() { once.Do(func() { close(stopCh) }) }
	select {
	case <-readyCh:
	case err := <-done:
		if err == nil {
			err = errors.New(strings.TrimSpace(errOut.String()))
		}
		return nil, nil, fmt.Errorf("port-forward to %s/%s in %s: %w", namespace, pod.Name, cluster, err)
	case <-ctx.Done():
		stop()
		return nil, nil, ctx.Err()
	}
	got, err := fw.GetPorts()
	if err != nil {
		stop()
		return nil, nil, err
	}
	out := map[int]string{}
	for _, p := range got {
		out[int(p.Remote)] = "127.0.0.1:" + strconv.Itoa(int(p.Local))
	}
	return out, stop, nil
}

// Exec runs cmd in a container of a pod and returns its output.
func (t *Tunnel) Exec(ctx context.Context, cluster, namespace, pod, container string, cmd []string) (string, string, error) {
	kc, err := t.Client(ctx, cluster)
	if err != nil {
		return "", "", err
	}
	req := kc.Kube.CoreV1().RESTClient().Post().Resource("pods").Namespace(namespace).Name(pod).SubResource("exec").
		VersionedParams(&corev1.PodExecOptions{Container: container, Command: cmd, Stdout: true, Stderr: true}, scheme.ParameterCodec)
	ex, err := remotecommand.NewSPDYExecutor(kc.Config, "POST", req.URL())
	if err != nil {
		return "", "", err
	}
	var out, errOut bytes.Buffer
	err = ex.StreamWithContext(ctx, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	return out.String(), errOut.String(), err
}
