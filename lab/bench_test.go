package lab_test

import (
	"fmt"
	"testing"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/scenario"
)

// BenchmarkUp measures, for the clusters alone (--skip-istio), on the local provider with the binaries
// cached, the time from `up` to every
// cluster Ready (nodes Ready, kubeconfig written) for 2, 3 and 5 clusters, and the resident memory of
// each cluster's processes right after. Targets on 2 cores: 3 clusters in at most 10 s, at most 700 MiB
// per cluster. Run: make bench (one iteration per size: -benchtime 1x).
func BenchmarkUp(b *testing.B) {
	labtest.SkipIfShort(b)
	for _, n := range []int{2, 3, 5} {
		b.Run(fmt.Sprintf("clusters=%d", n), func(b *testing.B) {
			m, out := labtest.Manager(b)
			m.SkipIstio = true
			if _, err := (&binaries.Builder{CacheDir: m.CacheDir, Out: out}).Ensure(b.Context()); err != nil {
				b.Fatal(err)
			}
			s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, n)
			if err != nil {
				b.Fatal(err)
			}
			s.Provider.Name = scenario.ProviderLocal
			var rssTotal, rssMax float64
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				name := fmt.Sprintf("bench-%d", i)
				if err := m.Up(b.Context(), s, name); err != nil {
					b.Fatalf("up: %v\n%s", err, out)
				}
				b.StopTimer()
				st, err := m.Status(b.Context(), name)
				if err != nil || !st.Ready() {
					b.Fatalf("status: %+v %v", st, err)
				}
				for _, c := range st.Clusters {
					var rss int64
					for _, comp := range c.Components {
						rss += labtest.RSS(comp.PID)
					}
					mib := float64(rss) / (1 << 20)
					rssTotal += mib
					rssMax = max(rssMax, mib)
				}
				if _, err := m.Down(b.Context(), name); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/up")
			b.ReportMetric(rssTotal/float64(b.N*n), "MiB/cluster")
			b.ReportMetric(rssMax, "MiB/cluster-max")
		})
	}
}
