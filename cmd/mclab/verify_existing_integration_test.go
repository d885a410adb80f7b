package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationVerifyExistingClusters runs the gate the way CI on real clusters does: a scenario file
// maps its clusters to kubeconfig contexts (here a running local lab's) and gives istiod's addresses;
// `up --provider existing --skip-istio` only maps and checks them, `verify` judges the mesh (exit 0),
// and `down` leaves the clusters running.
func TestIntegrationVerifyExistingClusters(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	// The clusters: the shared single-network lab (read only; TestIntegrationVerifyModels reads it too).
	host := useSharedLab(t, bin, "single-network")
	hostState, kc := host.stateDir, host.kubeconfig
	data, err := os.ReadFile(filepath.Join(hostState, "labs", "single-network", "local", "ports.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ports map[string]map[string]int
	if err := json.Unmarshal(data, &ports); err != nil {
		t.Fatal(err)
	}
	var istiod strings.Builder
	for _, c := range []string{"c1", "c2"} {
		p := ports[c]
		fmt.Fprintf(&istiod, "      %s: {xds: 127.0.0.1:%d, xdsTLS: 127.0.0.1:%d, debug: 127.0.0.1:%d, monitoring: 127.0.0.1:%d}\n", c, p["istiod-grpc"], p["istiod-grpc-tls"], p["istiod-http"], p["istiod-monitoring"])
	}
	scenarioFile := filepath.Join(t.TempDir(), "gate.yaml")
	doc := fmt.Sprintf(`apiVersion: mclab.dev/v1alpha1
kind: Scenario
name: gate
provider:
  name: existing
  existing:
    kubeconfig: %s
    contexts: {c1: single-network-c1, c2: single-network-c2}
    istiod:
%sclusters:
- {name: c1, network: network1}
- {name: c2, network: network1}
`, strings.TrimSpace(kc), istiod.String())
	if err := os.WriteFile(scenarioFile, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	gateState := labtest.StateRoot(t)
	if _, stderr, code := mclab(t, bin, gateState, "up", "--scenario", scenarioFile, "--skip-istio"); code != 0 {
		t.Fatalf("up --provider existing: %s", stderr)
	}
	out, stderr, code := mclab(t, bin, gateState, "verify", "--name", "gate", "--report-dir", filepath.Join(t.TempDir(), "r"))
	if code != 0 {
		t.Fatalf("verify of the existing clusters exited %d:\n%s%s", code, out, stderr)
	}
	if _, _, code := mclab(t, bin, gateState, "down", "--name", "gate"); code != 0 {
		t.Fatal("down")
	}
	if _, _, code := mclab(t, bin, hostState, "status", "--name", "single-network"); code != 0 {
		t.Error("down of the gate lab must leave the existing clusters running")
	}
}
