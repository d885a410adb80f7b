package bench

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"

	"mclab.dev/mclab/lab/kube"
	"mclab.dev/mclab/suites/probe/xds"
)

// The bench workload: a Deployment whose pods are endpoints of a Service, in its own namespace.
const (
	Namespace = "mclab-bench"
	Workload  = "bench"
	// EDSCluster is the Service's EDS cluster as a sidecar asks for it.
	EDSCluster = "outbound|80||" + Workload + "." + Namespace + ".svc.cluster.local"
)

// PropagationLab is what the propagation bench needs of a lab: a client per cluster and an EDS watch
// as a real sidecar of a cluster (suites.Target provides both).
type PropagationLab interface {
	Client(cluster string) *kube.Client
	WatchEDS(ctx context.Context, cluster, edsCluster string) (<-chan xds.Update, <-chan error, error)
	// ServingCluster is the primary whose istiod serves cluster's proxies.
	ServingCluster(cluster string) string
}

// PropagationOptions say what to measure.
type PropagationOptions struct {
	// Source is the cluster whose workload is scaled; Clients the clusters whose sidecars watch it.
	Source  string
	Clients []string
	// Endpoints are the sizes measured (e.g. 1, 10, 100, 1000).
	Endpoints []int
	// Trials per size and change.
	Trials int
	// Image of the workload's pods (kwok never runs it; kind and existing clusters do).
	Image string
	// View is "direct" (clients see pod endpoints) or "gateway" (clients on another network see the
	// source's east-west gateway, weighted by the endpoints behind it).
	View string
	// Out gets a line per trial.
	Out io.Writer
	// Churn, when set, flaps other endpoints in every cluster while the changes are measured.
	Churn *ChurnOptions
}

// ChurnOptions: in every cluster of the lab, a second workload flaps between 0 and Endpoints at Rate
// changes per second, for as long as the measurement runs (bounded by it).
type ChurnOptions struct {
	Endpoints int
	Rate      float64
}

// churnWorkload is the flapping workload.
const churnWorkload = "churn"

// Change kinds measured at each size.
const (
	// BurstUp scales 0 -> N at once; BurstDown N -> 0.
	BurstUp, BurstDown = "burst-up", "burst-down"
	// StepUp adds one endpoint where N exist (N -> N+1); StepDown removes it.
	StepUp, StepDown = "step-up", "step-down"
)

// level tracks a count over time and wakes waiters when it reaches a value.
type level struct {
	mu      sync.Mutex
	history []point
	changed chan struct{}
}

type point struct {
	n  int
	at time.Time
}

func newLevel() *level { return &level{changed: make(chan struct{})} }

func (l *level) set(n int, at time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.history) > 0 && l.history[len(l.history)-1].n == n {
		return
	}
	l.history = append(l.history, point{n, at})
	close(l.changed)
	l.changed = make(chan struct{})
}

// waitFor returns when the count was first n at or after since (n's time if it is n already since).
func (l *level) waitFor(ctx context.Context, n int, since time.Time) (time.Time, error) {
	for {
		l.mu.Lock()
		ch := l.changed
		for i, p := range l.history {
			if p.n != n {
				continue
			}
			// The count became n at p.at and stayed until the next point: count it if that span
			// reaches past since.
			if p.at.After(since) || i == len(l.history)-1 || l.history[i+1].at.After(since) {
				at := p.at
				if at.Before(since) {
					at = since
				}
				l.mu.Unlock()
				return at, nil
			}
		}
		last := -1
		if len(l.history) > 0 {
			last = l.history[len(l.history)-1].n
		}
		l.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return time.Time{}, fmt.Errorf("count stayed %d, never %d: %w", last, n, ctx.Err())
		}
	}
}

// Propagation measures how long a change of the source's endpoints takes to reach each client's sidecar.
// For each size N and trial it times, from the API server's acknowledgement of the scale write: the
// Kubernetes leg (until the source's EndpointSlices hold the new count of ready endpoints), the Istio leg
// (from there until the client's EDS holds it), and the total. It creates the bench namespace in the
// source and removes it at the end, whatever happens.
func Propagation(ctx context.Context, l PropagationLab, o PropagationOptions, r *Result) (err error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	src := l.Client(o.Source)
	if err := setup(ctx, src, o.Image); err != nil {
		return err
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if cerr := teardown(cctx, src); cerr != nil && err == nil {
			err = cerr
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if o.Churn != nil {
		var flappers sync.WaitGroup
		defer flappers.Wait()
		defer cancel()
		for _, name := range append([]string{o.Source}, o.Clients...) {
			c := l.Client(name)
			if name != o.Source {
				if err := setup(ctx, c, o.Image); err != nil {
					return err
				}
				defer func() {
					cctx, ccancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
					defer ccancel()
					if cerr := teardown(cctx, c); cerr != nil && err == nil {
						err = cerr
					}
				}()
			}
			if err := setupWorkload(ctx, c, churnWorkload, o.Image); err != nil {
				return err
			}
			flappers.Add(1)
			go func() {
				defer flappers.Done()
				flap(ctx, c, o.Churn)
			}()
		}
		fmt.Fprintf(out, "  churn: %d endpoints flapping at %.1f changes/s in %d clusters\n", o.Churn.Endpoints, o.Churn.Rate, 1+len(o.Clients))
	}

	slices := newLevel()
	f := informers.NewSharedInformerFactoryWithOptions(src.Kube, 0, informers.WithNamespace(Namespace),
		informers.WithTweakListOptions(func(lo *metav1.ListOptions) { lo.LabelSelector = discoveryv1.LabelServiceName + "=" + Workload }))
	inf := f.Discovery().V1().EndpointSlices().Informer()
	count := func(any) {
		n := 0
		for _, obj := range inf.GetStore().List() {
			for _, e := range obj.(*discoveryv1.EndpointSlice).Endpoints {
				if e.Conditions.Ready == nil || *e.Conditions.Ready {
					n++
				}
			}
		}
		slices.set(n, time.Now())
	}
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: count, UpdateFunc: func(_, o any) { count(o) }, DeleteFunc: count}); err != nil {
		return err
	}
	f.Start(ctx.Done())
	f.WaitForCacheSync(ctx.Done())
	count(nil)

	eds := map[string]*level{}
	watchErr := make(chan error, len(o.Clients))
	for _, c := range o.Clients {
		updates, errs, err := l.WatchEDS(ctx, c, EDSCluster)
		if err != nil {
			return fmt.Errorf("watching %s's endpoints as a sidecar of %s: %w", EDSCluster, c, err)
		}
		lv := newLevel()
		eds[c] = lv
		go func() {
			for u := range updates {
				lv.set(u.Effective(), u.At)
			}
		}()
		go func() {
			if err, ok := <-errs; ok {
				watchErr <- fmt.Errorf("the EDS watch of %s: %w", c, err)
			}
		}()
	}

	type sample struct{ kube, istio, total []float64 }
	samples := map[string]map[string]*sample{} // change/N -> client -> samples
	key := func(change string, n int) string { return fmt.Sprintf("%s/endpoints=%d", change, n) }
	measure := func(change string, n, from, to int) error {
		k := key(change, n)
		if samples[k] == nil {
			samples[k] = map[string]*sample{}
		}
		deadline := 60*time.Second + time.Duration(max(from, to))*60*time.Millisecond
		tctx, tcancel := context.WithTimeout(ctx, deadline)
		defer tcancel()
		before := time.Now()
		if err := scale(tctx, src, int32(to)); err != nil {
			return err
		}
		acked := time.Now()
		t1, err := slices.waitFor(tctx, to, before)
		if err != nil {
			return fmt.Errorf("%s %d -> %d: %s's EndpointSlices: %w", change, from, to, o.Source, err)
		}
		var line []string
		for _, c := range o.Clients {
			t2, err := eds[c].waitFor(tctx, to, before)
			if err != nil {
				select {
				case werr := <-watchErr:
					return werr
				default:
				}
				return fmt.Errorf("%s %d -> %d: the EDS of a sidecar in %s (%s view): %w", change, from, to, c, o.View, err)
			}
			s := samples[k][c]
			if s == nil {
				s = &sample{}
				samples[k][c] = s
			}
			kubeLeg := max(t1.Sub(acked), 0)
			s.kube = append(s.kube, kubeLeg.Seconds())
			s.istio = append(s.istio, max(t2.Sub(t1), 0).Seconds())
			s.total = append(s.total, max(t2.Sub(acked), 0).Seconds())
			line = append(line, fmt.Sprintf("%s %.3fs (kubernetes %.3fs, istio %.3fs)", c, max(t2.Sub(acked), 0).Seconds(), kubeLeg.Seconds(), max(t2.Sub(t1), 0).Seconds()))
		}
		fmt.Fprintf(out, "  %s %d -> %d: %v\n", change, from, to, line)
		return nil
	}
	for _, n := range o.Endpoints {
		for i := 0; i < o.Trials; i++ {
			if err := measure(BurstUp, n, 0, n); err != nil {
				return err
			}
			if err := measure(StepUp, n, n, n+1); err != nil {
				return err
			}
			if err := measure(StepDown, n, n+1, n); err != nil {
				return err
			}
			if err := measure(BurstDown, n, n, 0); err != nil {
				return err
			}
		}
		for _, change := range []string{BurstUp, StepUp, StepDown, BurstDown} {
			if samples[key(change, n)] == nil {
				continue
			}
			for _, c := range o.Clients {
				s := samples[key(change, n)][c]
				base := fmt.Sprintf("propagation/%s/%s/%s->%s", key(change, n), o.View, o.Source, c)
				what := changeHelp(change, n)
				r.Add(NewFigure(base+"/total", "s", what+": from the scale write's acknowledgement until a sidecar in "+c+" has it in EDS", s.total))
				r.Add(NewFigure(base+"/kubernetes", "s", what+": write acknowledged -> "+o.Source+"'s EndpointSlices hold it (scheduling, kwok or kubelet readiness, EndpointSlice controller)", s.kube))
				r.Add(NewFigure(base+"/istio", "s", what+": EndpointSlices -> the EDS of "+c+"'s sidecar (istiod's informer on "+o.Source+", debounce, push, delivery)", s.istio))
			}
		}
	}
	return remoteSecrets(ctx, l, o, src, slices, eds, r, out)
}

// Remote secret changes: with the first size's endpoints in the source, remove the remote secret through
// which a client's istiod reads the source, time until the client's EDS has none of them, then put it
// back and time until they are all there again.
const (
	SecretRemoved, SecretAdded = "remote-secret-removed", "remote-secret-added"
)

func remoteSecrets(ctx context.Context, l PropagationLab, o PropagationOptions, src *kube.Client, slices *level, eds map[string]*level, r *Result, out io.Writer) error {
	n := o.Endpoints[0]
	if err := scale(ctx, src, int32(n)); err != nil {
		return err
	}
	settle, cancel := context.WithTimeout(ctx, 60*time.Second+time.Duration(n)*60*time.Millisecond)
	defer cancel()
	if _, err := slices.waitFor(settle, n, time.Now()); err != nil {
		return fmt.Errorf("remote secrets: %s's EndpointSlices: %w", o.Source, err)
	}
	for _, c := range o.Clients {
		serving := l.ServingCluster(c)
		if serving == o.Source {
			r.Notes = appendOnce(r.Notes, fmt.Sprintf("remote secret figures: %s's proxies are served by %s itself, which reads %s without a remote secret", c, serving, o.Source))
			continue
		}
		if _, err := eds[c].waitFor(settle, n, time.Now()); err != nil {
			return fmt.Errorf("remote secrets: %s's EDS: %w", c, err)
		}
		secrets := l.Client(serving).Kube.CoreV1().Secrets("istio-system")
		name := "istio-remote-secret-" + o.Source
		var removed, added []float64
		for i := 0; i < o.Trials; i++ {
			sec, err := secrets.Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("the remote secret of %s for %s: %w", serving, o.Source, err)
			}
			keep := sec.DeepCopy()
			keep.ResourceVersion, keep.UID, keep.CreationTimestamp, keep.ManagedFields = "", "", metav1.Time{}, nil
			tctx, tcancel := context.WithTimeout(ctx, 60*time.Second)
			before := time.Now()
			if err := secrets.Delete(tctx, name, metav1.DeleteOptions{}); err != nil {
				tcancel()
				return err
			}
			acked := time.Now()
			gone, err := eds[c].waitFor(tctx, 0, before)
			if err != nil {
				// Put it back whatever happens: the lab must stay as it was.
				_, _ = secrets.Create(context.WithoutCancel(ctx), keep, metav1.CreateOptions{})
				tcancel()
				return fmt.Errorf("%s's endpoints never left the EDS of %s after its remote secret was deleted: %w", o.Source, c, err)
			}
			removed = append(removed, max(gone.Sub(acked), 0).Seconds())
			before = time.Now()
			if _, err := secrets.Create(tctx, keep, metav1.CreateOptions{}); err != nil {
				tcancel()
				return fmt.Errorf("putting back the remote secret of %s for %s: %w", serving, o.Source, err)
			}
			acked = time.Now()
			back, err := eds[c].waitFor(tctx, n, before)
			tcancel()
			if err != nil {
				return fmt.Errorf("%s's endpoints never came back to the EDS of %s after its remote secret was re-created: %w", o.Source, c, err)
			}
			added = append(added, max(back.Sub(acked), 0).Seconds())
			fmt.Fprintf(out, "  remote secret of %s for %s: removed -> %s's EDS empty %.3fs, added -> %d endpoints back %.3fs\n", serving, o.Source, c, removed[i], n, added[i])
		}
		base := fmt.Sprintf("propagation/%%s/endpoints=%d/%s/%s->%s/total", n, o.View, o.Source, c)
		r.Add(NewFigure(fmt.Sprintf(base, SecretRemoved), "s", fmt.Sprintf("the remote secret of %s for %s deleted -> a sidecar in %s has none of %s's %d endpoints (istiod drops the cluster's informers)", serving, o.Source, c, o.Source, n), removed))
		r.Add(NewFigure(fmt.Sprintf(base, SecretAdded), "s", fmt.Sprintf("the remote secret re-created -> a sidecar in %s has all %d endpoints again (istiod starts the cluster's informers and syncs)", c, n), added))
	}
	return nil
}

func changeHelp(change string, n int) string {
	switch change {
	case BurstUp:
		return fmt.Sprintf("%d endpoints added at once (0 -> %d)", n, n)
	case BurstDown:
		return fmt.Sprintf("%d endpoints removed at once (%d -> 0)", n, n)
	case StepUp:
		return fmt.Sprintf("one endpoint added where %d exist", n)
	}
	return fmt.Sprintf("one endpoint removed where %d+1 exist", n)
}

// flap scales the churn workload between 0 and its size at its rate until ctx ends; errors (a busy API
// server) are skipped: the churn is load, not a measurement.
func flap(ctx context.Context, c *kube.Client, o *ChurnOptions) {
	every := time.Duration(float64(time.Second) / max(o.Rate, 0.01))
	t := time.NewTicker(every)
	defer t.Stop()
	up := true
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		n := 0
		if up {
			n = o.Endpoints
		}
		patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
		_, _ = c.Kube.AppsV1().Deployments(Namespace).Patch(ctx, churnWorkload, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "scale")
		up = !up
	}
}

func setup(ctx context.Context, c *kube.Client, image string) error {
	ns := &corev1.Namespace{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Namespace"}, ObjectMeta: metav1.ObjectMeta{Name: Namespace, Labels: map[string]string{"app.kubernetes.io/managed-by": "mclab-bench"}}}
	if err := c.ApplyTyped(ctx, ns); err != nil {
		return err
	}
	return setupWorkload(ctx, c, Workload, image)
}

// setupWorkload makes a Service and a Deployment (0 replicas) named name in the bench namespace.
func setupWorkload(ctx context.Context, c *kube.Client, name, image string) error {
	if image == "" {
		image = "registry.k8s.io/pause:3.10"
	}
	labels := map[string]string{"app": name}
	svc := &corev1.Service{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Service"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromInt32(8080)}}}}
	zero := int32(0)
	podLabels := map[string]string{"app": name, "security.istio.io/tlsMode": "istio"}
	dep := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: Namespace},
		Spec: appsv1.DeploymentSpec{Replicas: &zero, Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: podLabels},
				Spec: corev1.PodSpec{TerminationGracePeriodSeconds: new(int64), Containers: []corev1.Container{{Name: "app", Image: image, Ports: []corev1.ContainerPort{{ContainerPort: 8080}}}}}}}}
	for _, o := range []any{svc, dep} {
		if err := c.ApplyTyped(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// ScaleWorkload makes the bench workload in c (once) and scales it to n endpoints.
func ScaleWorkload(ctx context.Context, c *kube.Client, n int) error {
	if _, err := c.Kube.AppsV1().Deployments(Namespace).Get(ctx, Workload, metav1.GetOptions{}); apierrors.IsNotFound(err) {
		if err := setup(ctx, c, ""); err != nil {
			return err
		}
	}
	return scale(ctx, c, int32(n))
}

func scale(ctx context.Context, c *kube.Client, n int32) error {
	patch := fmt.Sprintf(`{"spec":{"replicas":%d}}`, n)
	_, err := c.Kube.AppsV1().Deployments(Namespace).Patch(ctx, Workload, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "scale")
	if err != nil {
		return fmt.Errorf("scaling %s/%s to %d: %w", Namespace, Workload, n, err)
	}
	return nil
}

// teardown deletes the bench namespace and waits until it is gone.
func teardown(ctx context.Context, c *kube.Client) error {
	err := c.Kube.CoreV1().Namespaces().Delete(ctx, Namespace, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	for {
		if _, err := c.Kube.CoreV1().Namespaces().Get(ctx, Namespace, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("namespace %s in %s not gone: %w", Namespace, c.Name, ctx.Err())
		case <-time.After(200 * time.Millisecond):
		}
	}
}
