package bench

import (
	"io/fs"
	"testing"
	"time"

	"mclab.dev/mclab/scenarios"
)

// FuzzParseScenario: a bench scenario file never crashes or hangs the decoder (1 s a document), and what
// it accepts stays within the limits that keep a bench bounded on one machine (issue 29). make test runs
// the seed corpus (the built-in bench scenarios); make test-long fuzzes.
func FuzzParseScenario(f *testing.F) {
	files, err := fs.Glob(scenarios.Bench, "bench/*.yaml")
	if err != nil || len(files) == 0 {
		f.Fatalf("no built-in bench scenarios: %v", err)
	}
	for _, name := range files {
		data, err := fs.ReadFile(scenarios.Bench, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("type: scale\nscale: {clusters: [2, 5000], endpoints: [-1]}"))
	f.Add([]byte("type: propagation\npropagation: {endpoints: [100000], trials: 1000000, churn: {endpoints: 10, rate: 1e9}}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		s, err := ParseScenario("fuzz.yaml", data)
		if took := time.Since(start); took > time.Second {
			t.Fatalf("ParseScenario took %s on %d bytes", took, len(data))
		}
		if err != nil {
			return
		}
		check := func(what string, n, limit int) {
			if n < 0 || n > limit {
				t.Fatalf("accepted %s %d (limit %d)", what, n, limit)
			}
		}
		check("lab clusters", s.Lab.Clusters, MaxClusters)
		if p := s.Propagation; p != nil {
			check("trials", p.Trials, MaxTrials)
			for _, n := range p.Endpoints {
				check("endpoints", n, MaxEndpoints)
			}
		}
		if sc := s.Scale; sc != nil {
			for _, n := range sc.Clusters {
				check("scale clusters", n, MaxClusters)
			}
			for _, n := range sc.Endpoints {
				check("scale endpoints", n, MaxEndpoints)
			}
		}
	})
}
