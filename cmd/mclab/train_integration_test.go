package main_test

import (
	"os"
	osexec "os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationTrain runs every built-in exercise's selftest on real local labs (3 seeds each:
// baseline, inject, exactly the expected specs fail and verify names the cause, the reference
// solution typed with sh and kubectl, check, reset with its snapshot proof), then a learner's session
// on the kept single-network lab: a wrong fix (mTLS turned off mesh-wide) makes `train check` fail
// naming the collateral damage even after the real fix, and passes once it is undone; reset restores.
func TestIntegrationTrain(t *testing.T) {
	labtest.SkipIfShort(t)
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })

	start := time.Now()
	out, stderr, code := mclabWithin(t, 60*time.Minute, bin, stateDir, "train", "selftest", "--seeds", "3", "--keep")
	t.Logf("train selftest (every built-in exercise, 3 seeds) in %s:\n%s", time.Since(start).Round(time.Second), out)
	if code != 0 {
		t.Fatalf("selftest exited %d:\n%s%s", code, out, stderr)
	}

	lab := "selftest-single-network-multi-primary"
	kc, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--name", lab)
	kubectl := func(args ...string) string {
		t.Helper()
		out, err := osexec.Command("kubectl", append([]string{"--kubeconfig", strings.TrimSpace(kc)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("kubectl %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	out, stderr, code = mclab(t, bin, stateDir, "train", "start", "remote-secret-missing", "--name", lab, "--seed", "4")
	if code != 0 || !strings.Contains(out, "Ticket: ") || strings.Contains(out, "remote secret") {
		t.Fatalf("start must print the ticket and only the symptom (exit %d):\n%s%s", code, out, stderr)
	}
	info, err := os.Stat(filepath.Join(stateDir, "labs", lab, "train", "session.json"))
	if err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("the session (it holds a remote secret's pre-image) must be 0600: %v %v", info, err)
	}
	if out, _, code := mclab(t, bin, stateDir, "train", "check", "--name", lab); code != 1 || !strings.Contains(out, "still failing") || !strings.Contains(out, "every primary's istiod has each cluster of its mesh synced") {
		t.Errorf("check before any fix (exit %d):\n%s", code, out)
	}
	if out, _, _ := mclab(t, bin, stateDir, "train", "hint", "--name", lab); !strings.Contains(out, "Hint 1 of 3") {
		t.Errorf("hint:\n%s", out)
	}
	// The wrong fix: mTLS off mesh-wide, then the real fix.
	ctx := "--context=" + lab + "-c1"
	kubectl(ctx, "apply", "-f", writeTemp(t, "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: istio-system}\nspec: {mtls: {mode: DISABLE}}\n"))
	if _, stderr, code := mclab(t, bin, stateDir, "up", "--name", lab); code != 0 {
		t.Fatalf("the real fix (up converges the remote secret): %s", stderr)
	}
	var checkOut string
	for i := 0; i < 10; i++ {
		checkOut, _, code = mclab(t, bin, stateDir, "train", "check", "--name", lab)
		if strings.Contains(checkOut, "Collateral damage") && !strings.Contains(checkOut, "still failing") {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if code != 1 || !strings.Contains(checkOut, "Collateral damage") || !strings.Contains(checkOut, "clients in every cluster reach the mesh's services over Istio mTLS") {
		t.Errorf("a fix that turns mTLS off must fail check, naming the damage (exit %d):\n%s", code, checkOut)
	}
	kubectl(ctx, "-n", "istio-system", "delete", "peerauthentication", "default")
	for i := 0; i < 10; i++ {
		if checkOut, _, code = mclab(t, bin, stateDir, "train", "check", "--name", lab); code == 0 {
			break
		}
		time.Sleep(2 * time.Second)
	}
	if code != 0 || !strings.Contains(checkOut, "Solved") {
		t.Errorf("the real fix alone must pass (exit %d):\n%s", code, checkOut)
	}
	out, _, code = mclab(t, bin, stateDir, "train", "reset", "--name", lab)
	if code != 0 || !strings.Contains(out, "every touched object is as before") {
		t.Errorf("reset (exit %d):\n%s", code, out)
	}
	if _, err := os.Stat(filepath.Join(stateDir, "labs", lab, "train", "session.json")); !os.IsNotExist(err) {
		t.Errorf("reset leaves no session: %v", err)
	}
}

func writeTemp(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "obj.yaml")
	must(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}
