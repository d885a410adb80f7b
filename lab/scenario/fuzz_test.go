package scenario

import (
	"io/fs"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/scenarios"
)

// decodeBound is how long one decode of a user's document may take: a crash, a hang past it, or an
// accepted scenario past the limits is a failure (issue 29).
const decodeBound = time.Second

// FuzzParse: scenario files and Istio topology JSON (Parse reads both) never crash or hang the
// decoder; what it accepts is within the limits, validates again, and re-reads from its own YAML.
// make test runs the seed corpus (the built-in scenario files and composed ones); make test-long fuzzes.
func FuzzParse(f *testing.F) {
	files, err := fs.Glob(scenarios.FS, "*.*")
	if err != nil {
		f.Fatal(err)
	}
	for _, name := range files {
		data, err := fs.ReadFile(scenarios.FS, name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, m := range Models {
		s, err := Compose(MultiNetwork, m, 3)
		if err != nil {
			f.Fatal(err)
		}
		data, err := yaml.Marshal(s)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte(`[{"clusterName":"a","network":"n1"},{"clusterName":"b","primaryClusterName":"a","configClusterName":"a"}]`))
	f.Add([]byte("clusters: [{name: c1, podSubnet: 10.0.0.0/8}, {name: c2, podSubnet: 10.0.0.0/16}]"))
	f.Add([]byte("clusters:\n" + strings.Repeat("- name: c\n", MaxClusters+1)))
	f.Fuzz(func(t *testing.T, data []byte) {
		start := time.Now()
		s, err := Parse("fuzz.yaml", data)
		if took := time.Since(start); took > decodeBound {
			t.Fatalf("Parse took %s (bound %s) on %d bytes", took, decodeBound, len(data))
		}
		if err != nil {
			if strings.Contains(err.Error(), "\x1b[") {
				t.Fatalf("the error carries terminal escape codes: %q", err)
			}
			return
		}
		if len(s.Clusters) == 0 || len(s.Clusters) > MaxClusters {
			t.Fatalf("accepted a scenario of %d clusters (1..%d)", len(s.Clusters), MaxClusters)
		}
		if err := s.Validate("again"); err != nil {
			t.Fatalf("an accepted scenario does not validate again: %v", err)
		}
		out, err := yaml.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Parse("again.yaml", out); err != nil {
			t.Fatalf("an accepted scenario does not re-read from its YAML: %v\n%s", err, out)
		}
	})
}

// A scenario past the cluster limit is refused at once, in one line naming the limit.
func TestTooManyClustersIsOneLine(t *testing.T) {
	for _, doc := range []string{
		"clusters:\n" + strings.Repeat("- name: c\n", 5000),
		"[" + strings.TrimSuffix(strings.Repeat(`{"clusterName":"c","network":"n"},`, 5000), ",") + "]",
	} {
		start := time.Now()
		_, err := Parse("big.yaml", []byte(doc))
		if err == nil || strings.Count(err.Error(), "\n") > 0 || !strings.Contains(err.Error(), "clusters: Too many: 5000: must have at most 50 items") {
			t.Errorf("want one line naming the limit, got %v", err)
		}
		if took := time.Since(start); took > decodeBound {
			t.Errorf("refusing took %s", took)
		}
	}
}
