package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/bench"
	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationBench runs `mclab bench` as a user does, on real local labs: propagation on 2 clusters
// produces every figure (each change, size and leg, with one sample per trial), scale produces the
// bring-up, synced, per-component and istiod figures, --compare against a faster baseline exits 1 naming
// the regressions, and nothing is left running after any of them.
func TestIntegrationBench(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	nothingLeft := func(after string) {
		t.Helper()
		if procs := labtest.ProcessesUnder(stateDir); len(procs) > 0 {
			t.Errorf("after %s: processes left: %v", after, procs)
		}
		if entries, _ := os.ReadDir(filepath.Join(stateDir, "labs")); len(entries) > 0 {
			t.Errorf("after %s: labs left: %v", after, entries)
		}
	}
	read := func(stdout string) *bench.Result {
		t.Helper()
		var r bench.Result
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("-o json: %v\n%s", err, stdout)
		}
		return &r
	}

	// Propagation.
	d1 := t.TempDir()
	out, stderr, code := mclab(t, bin, stateDir, "bench", "--scenario", "propagation", "--endpoints", "1,5", "--trials", "2", "--out", d1, "-o", "json")
	if code != 0 {
		t.Fatalf("bench propagation: exit %d\n%s", code, stderr)
	}
	r := read(out)
	for _, n := range []int{1, 5} {
		for _, change := range []string{bench.BurstUp, bench.StepUp, bench.StepDown, bench.BurstDown} {
			for _, leg := range []string{"total", "kubernetes", "istio"} {
				name := fmt.Sprintf("propagation/%s/endpoints=%d/direct/c1->c2/%s", change, n, leg)
				f, ok := r.Figure(name)
				if !ok || f.Summary.Count != 2 || len(f.Samples) != 2 {
					t.Errorf("figure %s: %+v (found %v)", name, f.Summary, ok)
				}
				if leg == "istio" && ok && (f.Summary.Min < 0 || f.Summary.Max > 10) {
					t.Errorf("figure %s out of bounds: %+v", name, f.Summary)
				}
			}
		}
	}
	for _, change := range []string{bench.SecretRemoved, bench.SecretAdded} {
		name := fmt.Sprintf("propagation/%s/endpoints=1/direct/c1->c2/total", change)
		if f, ok := r.Figure(name); !ok || f.Summary.Count != 2 {
			t.Errorf("figure %s: %+v (found %v)", name, f.Summary, ok)
		}
	}
	if len(r.Steps) != 1 || len(r.Steps[0].Steps) < 5 || r.Lab["istio"] == "" {
		t.Errorf("bring-up steps or lab facts missing: %+v %v", r.Steps, r.Lab)
	}
	for _, f := range []string{"bench-result.json", "bench.html"} {
		if _, err := os.Stat(filepath.Join(d1, f)); err != nil {
			t.Errorf("no %s: %v", f, err)
		}
	}
	nothingLeft("bench propagation")

	// --compare against a baseline where everything was ten times faster: every figure above the floor
	// regressed, and the exit code says so.
	base, err := bench.Read(filepath.Join(d1, "bench-result.json"))
	if err != nil {
		t.Fatal(err)
	}
	for i := range base.Figures {
		for j := range base.Figures[i].Samples {
			base.Figures[i].Samples[j] /= 10
		}
		base.Figures[i] = bench.NewFigure(base.Figures[i].Name, base.Figures[i].Unit, base.Figures[i].Help, base.Figures[i].Samples)
	}
	basePath := filepath.Join(t.TempDir(), "baseline.json")
	if err := base.Write(basePath); err != nil {
		t.Fatal(err)
	}
	out, stderr, code = mclab(t, bin, stateDir, "bench", "--scenario", "propagation", "--endpoints", "1", "--trials", "1", "--out", t.TempDir(), "--compare", basePath)
	if code != 1 || !strings.Contains(out, "REGRESSION") || !strings.Contains(stderr, "regressed by more than 20% at p99") {
		t.Errorf("compare against a faster baseline: exit %d\n%s\n%s", code, out, stderr)
	}
	if !strings.Contains(out, "gone") {
		t.Errorf("figures of the baseline not measured now (endpoints=5) are not listed as gone:\n%s", out)
	}
	nothingLeft("bench --compare")

	// Scale.
	out, stderr, code = mclab(t, bin, stateDir, "bench", "--scenario", "scale", "--clusters", "2", "--endpoints", "0,5", "--out", t.TempDir(), "-o", "json")
	if code != 0 {
		t.Fatalf("bench scale: exit %d\n%s", code, stderr)
	}
	r = read(out)
	for _, name := range []string{"up", "synced", "endpoints=0/istiod-rss", "endpoints=5/istiod-rss", "endpoints=5/kube-apiserver-rss", "endpoints=5/etcd-rss",
		"endpoints=5/kwok-rss", "endpoints=5/istiod-cpu", "endpoints=5/total-rss", "endpoints=5/istiod-pushes", "endpoints=5/istiod-push-time"} {
		f, ok := r.Figure("scale/multi-primary/clusters=2/" + name)
		if !ok || f.Summary.Count != 1 || f.Summary.Max <= 0 {
			t.Errorf("scale figure %s: %+v (found %v)", name, f.Summary, ok)
		}
	}
	nothingLeft("bench scale")

	// Bad input is refused before anything runs, naming the field.
	_, stderr, code = mclab(t, bin, stateDir, "bench", "--scenario", "propagation", "--endpoints", "0")
	if code == 0 || !strings.Contains(stderr, "propagation.endpoints[0]") {
		t.Errorf("--endpoints 0: exit %d\n%s", code, stderr)
	}
	nothingLeft("a refused bench")
}
