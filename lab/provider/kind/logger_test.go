package kind

import (
	"strings"
	"sync"
	"testing"
)

// TestStepLogger: kind's sub-steps (its Status prints them at V(0) as " • %s  ...\n" and " ✓ %s\n",
// pkg/internal/cli/status.go) come out as lines naming the cluster; debug levels are dropped.
func TestStepLogger(t *testing.T) {
	var b strings.Builder
	l := stepLogger{mu: &sync.Mutex{}, w: &b, cluster: "lab-c1"}
	l.V(0).Infof(" • %s  ...\n", "Ensuring node image (mclab.local/kind-node:v1.37.2) 🖼")
	l.V(0).Infof(" ✓ %s\n", "Ensuring node image (mclab.local/kind-node:v1.37.2) 🖼")
	l.V(1).Info("debug: docker run ...")
	l.Warn("the node image is not the one this kind version expects")
	got := b.String()
	for _, want := range []string{
		"     kind lab-c1: • Ensuring node image (mclab.local/kind-node:v1.37.2) 🖼  ...\n",
		"     kind lab-c1: ✓ Ensuring node image (mclab.local/kind-node:v1.37.2) 🖼\n",
		"     kind lab-c1: WARNING: the node image is not the one this kind version expects\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("want %q in:\n%s", want, got)
		}
	}
	if strings.Contains(got, "debug") || strings.Contains(got, "\x1b[") {
		t.Errorf("debug lines or terminal codes in a log:\n%q", got)
	}
}
