package bench

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// ScaleLabs is what the scale bench needs: bring a lab of N clusters up (telling each step's duration),
// put E endpoints in every cluster, sample its processes and istiods, and remove it.
type ScaleLabs interface {
	Up(ctx context.Context, name string, clusters int, onStep func(title string, took time.Duration, ok bool)) error
	// Endpoints scales the bench workload of every cluster to e endpoints and returns when every
	// cluster's EndpointSlices hold them.
	Endpoints(ctx context.Context, name string, e int) error
	// Processes are the lab's processes by "<cluster>/<component>" (istiod included).
	Processes(ctx context.Context, name string) (map[string]int, error)
	// Istiods are the monitoring addresses of the lab's istiods by cluster.
	Istiods(ctx context.Context, name string) (map[string]string, error)
	// Watch connects one sidecar per cluster to its istiod, watching the bench workload's endpoints
	// (so istiod has proxies to push to), until stop.
	Watch(ctx context.Context, name string) (stop func(), err error)
	Down(ctx context.Context, name string) error
}

// ScaleOptions say what to measure.
type ScaleOptions struct {
	// Clusters are the lab sizes (e.g. 2, 5, 10); Endpoints the per-cluster endpoint counts sampled in each.
	Clusters  []int
	Endpoints []int
	// Settle is how long to let the mesh settle after a change before sampling.
	Settle time.Duration
	// Model names the model, for the figures' names.
	Model string
	Out   io.Writer
}

// synchedStep is the step whose end means every istiod has synced every remote cluster ("wait: every
// secret synced in its istiod's /debug/clusterz").
const synchedStep = "Creating remote secrets"

// Scale brings up a lab per size, samples the cost of each component at each endpoint count, removes the
// lab, and fits how the costs grow with clusters and with endpoints.
func Scale(ctx context.Context, labs ScaleLabs, o ScaleOptions, r *Result) error {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	type sampleKey struct{ clusters, endpoints int }
	cost := map[sampleKey]map[string]float64{} // figure suffix -> value
	// The growth is fitted over what was measured, also when a larger size fails.
	defer fitGrowth(r, o, func(n, e int) (map[string]float64, bool) { v, ok := cost[sampleKey{n, e}]; return v, ok })
	for _, n := range o.Clusters {
		name := fmt.Sprintf("bench-scale-%d", n)
		var steps []Step
		start := time.Now()
		synced := time.Duration(0)
		err := labs.Up(ctx, name, n, func(title string, took time.Duration, ok bool) {
			steps = append(steps, Step{Title: title, Seconds: took.Seconds()})
			if strings.HasPrefix(title, synchedStep) {
				synced = time.Since(start)
			}
		})
		upTook := time.Since(start)
		r.Steps = append(r.Steps, StepTimes{Lab: fmt.Sprintf("%s (%d clusters, %s)", name, n, o.Model), Steps: steps})
		if err != nil {
			derr := labs.Down(context.WithoutCancel(ctx), name)
			return fmt.Errorf("%d clusters: %w (down: %v)", n, err, derr)
		}
		if synced == 0 {
			synced = upTook
			r.Notes = appendOnce(r.Notes, "no remote secrets step (a single cluster, or federated meshes of one): time to synced is the whole bring-up")
		}
		fmt.Fprintf(out, "  %d clusters up in %.1fs, synced at %.1fs\n", n, upTook.Seconds(), synced.Seconds())
		base := fmt.Sprintf("scale/%s/clusters=%d", o.Model, n)
		r.Add(NewFigure(base+"/up", "s", "mclab up of the lab with Istio and samples, from start to ready", []float64{upTook.Seconds()}))
		r.Add(NewFigure(base+"/synced", "s", "from the start of up until every istiod has synced every remote cluster of its mesh", []float64{synced.Seconds()}))
		stop, err := labs.Watch(ctx, name)
		if err != nil {
			_ = labs.Down(context.WithoutCancel(ctx), name)
			return fmt.Errorf("%d clusters: connecting a sidecar per cluster: %w", n, err)
		}
		for _, e := range o.Endpoints {
			if e > 0 {
				if err := labs.Endpoints(ctx, name, e); err != nil {
					stop()
					_ = labs.Down(context.WithoutCancel(ctx), name)
					return fmt.Errorf("%d clusters, %d endpoints each: %w", n, e, err)
				}
			}
			select {
			case <-time.After(o.Settle):
			case <-ctx.Done():
				stop()
				_ = labs.Down(context.WithoutCancel(ctx), name)
				return ctx.Err()
			}
			vals, err := sample(ctx, labs, name)
			if err != nil {
				stop()
				_ = labs.Down(context.WithoutCancel(ctx), name)
				return err
			}
			cost[sampleKey{n, e}] = vals
			eb := fmt.Sprintf("%s/endpoints=%d", base, e)
			for _, k := range sortedKeys(vals) {
				unit := "MiB"
				switch {
				case strings.HasSuffix(k, "cpu"):
					unit = "cpu-s"
				case strings.HasSuffix(k, "pushes"):
					unit = "count"
				case strings.HasSuffix(k, "-time"):
					unit = "s"
				}
				r.Add(NewFigure(eb+"/"+k, unit, costHelp(k), []float64{vals[k]}))
			}
			fmt.Fprintf(out, "  %d clusters, %d endpoints each: istiod %.0f MiB, apiserver %.0f MiB, etcd %.0f MiB, kwok %.0f MiB (per cluster)\n",
				n, e, vals["istiod-rss"], vals["kube-apiserver-rss"], vals["etcd-rss"], vals["kwok-rss"])
		}
		stop()
		if err := labs.Down(ctx, name); err != nil {
			return err
		}
	}
	return nil
}

// fitGrowth fits how each cost grows with clusters (at each endpoint count) and with endpoints x
// clusters (at each size).
func fitGrowth(r *Result, o ScaleOptions, cost func(n, e int) (map[string]float64, bool)) {
	for _, comp := range []string{"istiod-rss", "kube-apiserver-rss", "etcd-rss", "kwok-rss", "total-rss", "istiod-cpu", "istiod-pushes"} {
		for _, e := range o.Endpoints {
			var xs, ys []float64
			for _, n := range o.Clusters {
				if vals, ok := cost(n, e); ok {
					if v, ok := vals[comp]; ok {
						xs, ys = append(xs, float64(n)), append(ys, v)
					}
				}
			}
			addFit(r, fmt.Sprintf("%s vs clusters (endpoints=%d)", comp, e), "clusters", comp, xs, ys)
		}
		for _, n := range o.Clusters {
			var xs, ys []float64
			for _, e := range o.Endpoints {
				if vals, ok := cost(n, e); ok && e > 0 {
					if v, ok := vals[comp]; ok {
						xs, ys = append(xs, float64(e*n)), append(ys, v)
					}
				}
			}
			addFit(r, fmt.Sprintf("%s vs endpoints x clusters (clusters=%d)", comp, n), "endpoints x clusters", comp, xs, ys)
		}
	}
}

func addFit(r *Result, name, x, y string, xs, ys []float64) {
	f, err := FitPowerLaw(xs, ys)
	if err != nil {
		return
	}
	r.Fits = append(r.Fits, FitResult{Name: name, X: x, Y: y, Fit: f, XS: xs, YS: ys,
		Says: fmt.Sprintf("%s %s with %s%s (exponent %.2f, R² %.2f, %d points)", y, f.Growth(), x, strings.TrimPrefix(name, y+" vs "+x), f.Exponent, f.R2, f.Points)})
}

// sample reads every process's memory and CPU and every istiod's push figures, and returns per-cluster
// means ("<component>-rss", "<component>-cpu") and totals per lab ("total-rss", "istiod-pushes", ...).
func sample(ctx context.Context, labs ScaleLabs, name string) (map[string]float64, error) {
	procs, err := labs.Processes(ctx, name)
	if err != nil {
		return nil, err
	}
	rss, cpu, count := map[string]float64{}, map[string]float64{}, map[string]int{}
	clusters := map[string]bool{}
	total := 0.0
	for key, pid := range procs {
		cluster, comp, _ := strings.Cut(key, "/")
		ps, err := ReadProc(pid)
		if err != nil {
			continue // exited between listing and reading: not counted
		}
		clusters[cluster] = true
		rss[comp] += ps.RSSMiB
		cpu[comp] += ps.CPUSeconds
		count[comp]++
		total += ps.RSSMiB
	}
	out := map[string]float64{}
	for comp, v := range rss {
		out[comp+"-rss"] = v / float64(count[comp])
		out[comp+"-cpu"] = cpu[comp] / float64(count[comp])
	}
	if len(clusters) > 0 {
		out["total-rss"] = total / float64(len(clusters))
	}
	istiods, err := labs.Istiods(ctx, name)
	if err != nil {
		return nil, err
	}
	var pushes, ptN, ptS, cvN, cvS float64
	connected := 0
	for _, addr := range istiods {
		m, err := ReadIstiodMetrics(addr)
		if err != nil {
			return nil, err
		}
		if !m.Connected {
			continue // no proxy ever connected: istiod has no push figures, which is not zero pushes
		}
		connected++
		pushes += m.Pushes
		ptN += m.PushTimeCount
		ptS += m.PushTimeSum
		cvN += m.ConvergenceCount
		cvS += m.ConvergenceSum
	}
	if connected > 0 {
		out["istiod-pushes"] = pushes / float64(connected)
		if ptN > 0 {
			out["istiod-push-time"] = ptS / ptN
		}
		if cvN > 0 {
			out["istiod-convergence-time"] = cvS / cvN
		}
	}
	return out, nil
}

func costHelp(k string) string {
	switch {
	case k == "total-rss":
		return "resident memory of every process of the lab, per cluster (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok, istiod)"
	case k == "istiod-pushes":
		return "pilot_xds_pushes per istiod (every type), since it started"
	case k == "istiod-push-time":
		return "mean of pilot_xds_push_time (istiod's time to build and send a push)"
	case k == "istiod-convergence-time":
		return "mean of pilot_proxy_convergence_time (from a config change to the push reaching proxies)"
	case strings.HasSuffix(k, "-rss"):
		return "resident memory (VmRSS) of " + strings.TrimSuffix(k, "-rss") + ", mean per process"
	case strings.HasSuffix(k, "-cpu"):
		return "CPU seconds (utime+stime) of " + strings.TrimSuffix(k, "-cpu") + " since it started, mean per process"
	}
	return k
}

func sortedKeys(m map[string]float64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func appendOnce(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
