package main_test

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/labtest"
	"mclab.dev/mclab/reports"
)

// BenchmarkVerify measures what the diagnosis costs verify (issue 23: the causes are derived only for
// failed expectations; a healthy verify within 10 % of its time without them, a failing one at most
// 5 s more). On the shared multi-network local lab (real istiods), each case runs `mclab verify` as a
// user does and reads the conformance report: s/verify is the whole run, diagnosis-s/verify the time
// the failed specs' causes took to derive (each failed test's "diagnosis" field, the chain's reads of
// istiod's debug endpoints and the API servers), failed/verify how many specs failed. A healthy run
// derives nothing; a fault that breaks discovery for every spec shows the worst case.
//
// Run: make bench (go test -run '^$' -bench BenchmarkVerify -benchtime 3x ./cmd/mclab/).
func BenchmarkVerify(b *testing.B) {
	labtest.SkipIfShort(b)
	bin := buildMclab(b)
	l := useSharedLab(b, bin, "multi-network")
	c1 := client(b, l.kubeconfig, "multi-network-c1")
	d1 := dynamicClient(b, l.kubeconfig, "multi-network-c1")
	for _, c := range []struct {
		name  string
		fault func() func()
	}{
		{"healthy", nil},
		// istiod of c1 drops c2: every cross-cluster expectation of c1's clients fails.
		{"remote-secret-unlabelled", func() func() {
			return editSecret(b, c1, "istio-remote-secret-c2", func(s *corev1.Secret) { delete(s.Labels, "istio/multiCluster") })
		}},
		// One client namespace's egress stops at istio-system: its discovery specs fail.
		{"sidecar-limits-egress", func() func() {
			return createIstio(b, d1, "networking.istio.io", "sidecars", "sample", "limit-egress", map[string]any{"egress": []any{map[string]any{"hosts": []any{"istio-system/*"}}}})
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			if c.fault != nil {
				undo := c.fault()
				b.Cleanup(undo)
				time.Sleep(3 * time.Second) // istiod pushes within a second or two
			}
			var diagnosis time.Duration
			failed := 0
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				dir := b.TempDir()
				_, stderr, code := mclabWithin(b, 10*time.Minute, bin, l.stateDir, "verify", "--name", l.name, "--report-dir", dir)
				b.StopTimer()
				if want := map[bool]int{true: 0, false: 1}[c.fault == nil]; code != want {
					b.Fatalf("verify exited %d, want %d:\n%s", code, want, stderr)
				}
				d, n := diagnosisTime(b, filepath.Join(dir, "conformance-report.yaml"))
				diagnosis += d
				failed += n
				b.StartTimer()
			}
			b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "s/verify")
			b.ReportMetric(diagnosis.Seconds()/float64(b.N), "diagnosis-s/verify")
			b.ReportMetric(float64(failed)/float64(b.N), "failed/verify")
		})
	}
}

// diagnosisTime sums the failed tests' diagnosis times in a conformance report and counts them.
func diagnosisTime(tb testing.TB, path string) (time.Duration, int) {
	tb.Helper()
	data, err := os.ReadFile(path)
	must(tb, err)
	var cr reports.ConformanceReport
	must(tb, yaml.Unmarshal(data, &cr))
	var sum time.Duration
	n := 0
	for _, p := range cr.Profiles {
		for _, r := range []*reports.Results{&p.Core, p.Extended} {
			if r == nil {
				continue
			}
			for _, f := range r.FailedTests {
				n++
				if f.Diagnosis == "" {
					continue
				}
				d, err := time.ParseDuration(f.Diagnosis)
				if err != nil {
					tb.Fatalf("%s: diagnosis %s: %v", strconv.Quote(f.Name), f.Diagnosis, err)
				}
				sum += d
			}
		}
	}
	return sum, n
}
