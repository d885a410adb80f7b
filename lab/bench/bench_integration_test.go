package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"mclab.dev/mclab/internal/cli"
	"mclab.dev/mclab/lab/bench"
	"mclab.dev/mclab/lab/labtest"
)

// runBench runs `mclab bench ARGS -o json` in-process on a fresh state root and returns the result.
func runBench(b *testing.B, args ...string) *bench.Result {
	b.Helper()
	labtest.SkipIfShort(b)
	b.Setenv("MCLAB_STATE_DIR", labtest.StateRoot(b))
	var out, errOut bytes.Buffer
	args = append([]string{"bench", "--out", b.TempDir(), "-o", "json"}, args...)
	if code := cli.Run(context.Background(), cli.Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, args); code != 0 {
		b.Fatalf("mclab %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	var r bench.Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		b.Fatal(err)
	}
	return &r
}

func report(b *testing.B, r *bench.Result, figure, unit string) {
	b.Helper()
	f, ok := r.Figure(figure)
	if !ok {
		b.Fatalf("no figure %s", figure)
	}
	b.ReportMetric(f.Summary.P50, unit+"-p50")
	b.ReportMetric(f.Summary.P99, unit+"-p99")
}

// BenchmarkPropagation is `mclab bench --scenario propagation` as a Go benchmark: per size, the time
// from the scale write's acknowledgement until a sidecar in c2 has the change (total) and the Istio leg
// alone, for one endpoint added where N exist. Run: make bench (b.N trials per size).
func BenchmarkPropagation(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("endpoints=%d", n), func(b *testing.B) {
			r := runBench(b, "--scenario", "propagation", "--endpoints", fmt.Sprint(n), "--trials", fmt.Sprint(b.N))
			base := fmt.Sprintf("propagation/%s/endpoints=%d/direct/c1->c2/", bench.StepUp, n)
			report(b, r, base+"total", "s")
			report(b, r, base+"istio", "s-istio")
			report(b, r, fmt.Sprintf("propagation/%s/endpoints=%d/direct/c1->c2/total", bench.BurstUp, n), "s-burst")
		})
	}
}

// BenchmarkScale is `mclab bench --scenario scale` as a Go benchmark: for 2 and 5 clusters, the
// bring-up, the time to synced, istiod's and the API server's memory per cluster, and the fitted growth
// of istiod's memory with clusters.
func BenchmarkScale(b *testing.B) {
	r := runBench(b, "--scenario", "scale", "--clusters", "2,5", "--endpoints", "100")
	for _, n := range []int{2, 5} {
		base := fmt.Sprintf("scale/multi-primary/clusters=%d/", n)
		for _, f := range []struct{ name, unit string }{{"up", "s-up"}, {"synced", "s-synced"}, {"endpoints=100/istiod-rss", "MiB-istiod"}, {"endpoints=100/kube-apiserver-rss", "MiB-apiserver"}, {"endpoints=100/total-rss", "MiB-cluster"}} {
			fig, ok := r.Figure(base + f.name)
			if !ok {
				b.Fatalf("no figure %s", base+f.name)
			}
			b.ReportMetric(fig.Summary.Max, fmt.Sprintf("%s@%d", f.unit, n))
		}
	}
	for _, f := range r.Fits {
		if f.Y == "istiod-rss" && f.X == "clusters" {
			b.ReportMetric(f.Fit.Exponent, "istiod-rss-exponent")
		}
	}
}
