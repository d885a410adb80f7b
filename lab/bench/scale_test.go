package bench

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

// fakeLabs records what the scale bench asks for; its processes are this test process, its istiod
// metrics an unreachable address unless set.
type fakeLabs struct {
	up, down, watched []string
	failUp            string
	endpoints         []int
	stopped           int
}

func (f *fakeLabs) Up(_ context.Context, name string, clusters int, onStep func(string, time.Duration, bool)) error {
	f.up = append(f.up, name)
	onStep("Starting clusters", time.Second, true)
	onStep(synchedStep, time.Second, true)
	if name == f.failUp {
		return errors.New("boom")
	}
	return nil
}
func (f *fakeLabs) Endpoints(_ context.Context, _ string, e int) error {
	f.endpoints = append(f.endpoints, e)
	return nil
}
func (f *fakeLabs) Processes(context.Context, string) (map[string]int, error) {
	return map[string]int{"c1/istiod": os.Getpid(), "c1/kube-apiserver": os.Getpid()}, nil
}
func (f *fakeLabs) Istiods(context.Context, string) (map[string]string, error) {
	return map[string]string{}, nil
}
func (f *fakeLabs) Watch(_ context.Context, name string) (func(), error) {
	f.watched = append(f.watched, name)
	return func() { f.stopped++ }, nil
}
func (f *fakeLabs) Down(_ context.Context, name string) error {
	f.down = append(f.down, name)
	return nil
}

func TestScale(t *testing.T) {
	f := &fakeLabs{}
	r := &Result{}
	if err := Scale(context.Background(), f, ScaleOptions{Clusters: []int{2, 4}, Endpoints: []int{0, 10}, Model: "multi-primary"}, r); err != nil {
		t.Fatal(err)
	}
	if strings.Join(f.up, ",") != "bench-scale-2,bench-scale-4" || strings.Join(f.down, ",") != "bench-scale-2,bench-scale-4" || f.stopped != 2 {
		t.Errorf("up %v down %v stopped %d", f.up, f.down, f.stopped)
	}
	if len(f.endpoints) != 2 || f.endpoints[0] != 10 {
		t.Errorf("endpoints asked: %v (0 needs no scaling)", f.endpoints)
	}
	for _, name := range []string{"scale/multi-primary/clusters=2/up", "scale/multi-primary/clusters=4/synced", "scale/multi-primary/clusters=4/endpoints=10/istiod-rss", "scale/multi-primary/clusters=2/endpoints=0/total-rss"} {
		if f, ok := r.Figure(name); !ok || f.Summary.Count != 1 {
			t.Errorf("figure %s missing", name)
		}
	}
	if _, ok := r.Figure("scale/multi-primary/clusters=2/endpoints=0/istiod-pushes"); ok {
		t.Error("push figures without an istiod to read them")
	}
	fits := 0
	for _, fr := range r.Fits {
		if fr.X == "clusters" && fr.Fit.Points == 2 {
			fits++
		}
	}
	if fits == 0 || len(r.Steps) != 2 {
		t.Errorf("fits %d steps %d", fits, len(r.Steps))
	}
}

// TestScaleRemovesAFailedLab: a lab whose up fails is removed, and the bench stops there.
func TestScaleRemovesAFailedLab(t *testing.T) {
	f := &fakeLabs{failUp: "bench-scale-4"}
	err := Scale(context.Background(), f, ScaleOptions{Clusters: []int{2, 4, 8}, Endpoints: []int{0}, Model: "m"}, &Result{})
	if err == nil || !strings.Contains(err.Error(), "4 clusters: boom") {
		t.Fatalf("error %v", err)
	}
	if strings.Join(f.down, ",") != "bench-scale-2,bench-scale-4" || len(f.up) != 2 {
		t.Errorf("up %v down %v", f.up, f.down)
	}
}
