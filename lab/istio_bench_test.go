package lab_test

import (
	"testing"

	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/lab/scenario"
)

// BenchmarkUpWithIstio measures `up` of a 2-cluster multi-network lab with Istio and the samples, the
// binaries cached, to a status that is Ready. Target on 2 cores: at most 30 s.
func BenchmarkUpWithIstio(b *testing.B) {
	labtest.SkipIfShort(b)
	m, out := labtest.Manager(b)
	s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
	if err != nil {
		b.Fatal(err)
	}
	s.Provider.Name = scenario.ProviderLocal
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := "bench-istio"
		if err := m.Up(b.Context(), s, name); err != nil {
			b.Fatalf("up: %v\n%s", err, out)
		}
		b.StopTimer()
		st, err := m.Status(b.Context(), name)
		if err != nil || !st.Ready() {
			b.Fatalf("status: %+v %v", st, err)
		}
		if _, err := m.Down(b.Context(), name); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/up")
}
