package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/train"
)

var update = flag.Bool("update", false, "rewrite golden files")

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Run(context.Background(), Streams{In: strings.NewReader(""), Out: &out, Err: &errOut}, args)
	return out.String(), errOut.String(), code
}

// TestPlanGolden pins what `mclab plan` prints for the built-in scenarios on the local provider.
func TestPlanGolden(t *testing.T) {
	// The goldens pin kind's own node image: not the one kind-offline exports for the kind tests.
	t.Setenv("MCLAB_KIND_NODE_IMAGE", "")
	// The merge step names the user's kubeconfig.
	t.Setenv("KUBECONFIG", "/home/me/.kube/config")
	state := t.TempDir()
	for _, tc := range []struct{ sc, provider string }{
		{"multi-network", "local"}, {"single-network-primary-remote", "local"}, {"istio-ci", "local"}, {"multi-network-federated-3", "local"},
		{"multi-network", "kind"}, {"single-network", "kind"}, {"mixed-network", "kind"}, {"istio-ci", "kind"},
	} {
		sc := tc.sc
		t.Run(tc.provider+"/"+sc, func(t *testing.T) {
			out, errOut, code := run(t, "plan", "--state-dir", state, "--scenario", sc, "--provider", tc.provider, "--show-scenario")
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			got := strings.ReplaceAll(out, state, "$STATE")
			name := "plan-" + sc + ".golden"
			if tc.provider != "local" {
				name = "plan-" + tc.provider + "-" + sc + ".golden"
			}
			golden := filepath.Join("testdata", name)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/cli -update)", err)
			}
			if got != string(want) {
				t.Errorf("plan differs from %s (run with -update if intended):\n%s", golden, got)
			}
			if entries, _ := os.ReadDir(state); len(entries) != 0 {
				t.Errorf("plan must not write state, found %v", entries)
			}
		})
	}
}

func TestUpRejectsBeforeCreatingAnything(t *testing.T) {
	state := t.TempDir()
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: mclab.dev/v1alpha1\nkind: Scenario\nclusters:\n- {name: a, podSubnet: 10.1.0.0/16}\n- {name: b, podSubnet: 10.1.0.0/16}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kc, []byte("apiVersion: v1\nkind: Config\ncontexts:\n- name: other\n  context: {cluster: x, user: x}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", kc)
	// A docker whose daemon is down, whatever this machine has.
	bin := t.TempDir()
	if err := os.WriteFile(filepath.Join(bin, "docker"), []byte("#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"up", "--scenario", bad}, []string{"bad.yaml", "clusters[1].podSubnet", "overlaps"}},
		{[]string{"up", "--scenario", "multi-network", "--model", "federated"}, []string{"--scenario and [--model] choose a scenario two ways"}},
		{[]string{"up", "--topology", "ring"}, []string{`topology "ring" is not supported`}},
		{[]string{"up", "--model", "federated", "--clusters", "1"}, []string{"clusters 1 is out of range"}},
		{[]string{"up", "--provider", "minikube"}, []string{`--provider "minikube" is not supported`}},
		{[]string{"up", "--provider", "kind"}, []string{"preflight", "docker does not answer", "start Docker", "--provider local", "nothing was left behind"}},
		{[]string{"up", "--provider", "existing", "--skip-install"}, []string{"cluster c1: no context c1 or multi-network-c1", "map it with provider.existing.contexts"}},
		{[]string{"up", "--name", "Bad_Name"}, []string{`lab name "Bad_Name"`, "choose another --name"}},
		{[]string{"up", "--scenario", "no-such-scenario"}, []string{`no scenario named "no-such-scenario"`, "istio-ci"}},
	}
	for _, tc := range cases {
		_, errOut, code := run(t, append(tc.args, "--state-dir", state)...)
		// Bad input, and a machine that cannot run the lab, are both exit 2: never a finding (exit 1).
		if code != ExitError {
			t.Errorf("%v: exit %d, want %d", tc.args, code, ExitError)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, errOut)
			}
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "labs")); len(entries) != 0 {
		t.Errorf("rejected ups created labs: %v", entries)
	}
}

func TestDownAndStatusOfMissingLab(t *testing.T) {
	state := t.TempDir()
	_, errOut, code := run(t, "down", "--name", "ghost", "--state-dir", state)
	if code != 0 || !strings.Contains(errOut, "nothing to delete") {
		t.Errorf("down of a missing lab: exit %d, %s", code, errOut)
	}
	_, errOut, code = run(t, "status", "--name", "ghost", "--state-dir", state)
	if code == 0 || !strings.Contains(errOut, "mclab list") {
		t.Errorf("status of a missing lab: exit %d, %s", code, errOut)
	}
	_, errOut, code = run(t, "down", "--state-dir", state)
	if code == 0 || !strings.Contains(errOut, "--name LAB or --all") {
		t.Errorf("down without a lab: exit %d, %s", code, errOut)
	}
}

func TestVersionAndListScenarios(t *testing.T) {
	out, _, code := run(t, "version")
	if code != 0 || !strings.Contains(out, "kubernetes v1.37.2") {
		t.Errorf("version: %s", out)
	}
	out, _, code = run(t, "list", "--scenarios")
	if code != 0 || !strings.Contains(out, "istio-ci") || !strings.Contains(out, "multi-network-federated") {
		t.Errorf("list --scenarios: %s", out)
	}
}

// Verify's usage errors exit 2 (never 1, which a gate reads as "non-conformant") and create nothing:
// an unknown lab, a bad view, a filter Ginkgo cannot parse, a mistyped flag or command.
func TestVerifyUsageErrorsExit2AndCreateNothing(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	for _, args := range [][]string{
		{"verify", "--name", "ghost"},
		{"verify"},
		{"verify", "--name", "ghost", "--view", "everything"},
		{"verify", "--name", "ghost", "--label-filter", "MC-MTLS &&"},
		{"verify", "--name", "ghost", "--lable-filter", "MC-MTLS"},
		{"verfy", "--name", "ghost"},
	} {
		_, errOut, code := run(t, append(args, "--state-dir", state)...)
		if code != 2 {
			t.Errorf("%v: exit %d, want 2: %s", args, code, errOut)
		}
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("usage errors created state: %v", err)
	}
}

// TestExistingContextsFromFlags: --kubeconfig and --context CLUSTER=CONTEXT map an existing provider's
// clusters, as kubectl users expect; a malformed or misplaced --context is refused before anything.
func TestExistingContextsFromFlags(t *testing.T) {
	kc := filepath.Join(t.TempDir(), "gates.kubeconfig")
	cfg := clientcmdapi.NewConfig()
	for _, n := range []string{"gke_prod_east", "gke_prod_west"} {
		cfg.Clusters[n] = &clientcmdapi.Cluster{Server: "https://" + n + ":6443"}
		cfg.AuthInfos[n] = &clientcmdapi.AuthInfo{Token: "t"}
		cfg.Contexts[n] = &clientcmdapi.Context{Cluster: n, AuthInfo: n}
	}
	if err := clientcmd.WriteToFile(*cfg, kc); err != nil {
		t.Fatal(err)
	}
	state := t.TempDir()
	out, errOut, code := run(t, "plan", "--state-dir", state, "--topology", "single-network", "--provider", "existing",
		"--kubeconfig", kc, "--context", "c1=gke_prod_east", "--context", "c2=gke_prod_west")
	if code != 0 || !strings.Contains(out, "c1 -> context gke_prod_east of "+kc) || !strings.Contains(out, "c2 -> context gke_prod_west of "+kc) {
		t.Errorf("plan (exit %d):\n%s%s", code, out, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--provider", "existing", "--context", "c1"}, "write CLUSTER=CONTEXT"},
		{[]string{"--provider", "existing", "--context", "c9=x"}, "the scenario has no cluster c9"},
		{[]string{"--provider", "local", "--context", "c1=x"}, "add --provider existing"},
	} {
		_, errOut, code := run(t, append([]string{"plan", "--state-dir", state, "--topology", "single-network"}, tc.args...)...)
		if code == 0 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, want %q:\n%s", tc.args, code, tc.want, errOut)
		}
	}
}

// TestOutputFormats: every command that prints state takes -o text|json|yaml; the documents carry
// apiVersion and kind; an unknown format is a usage error (exit 2) before anything runs.
func TestOutputFormats(t *testing.T) {
	state := t.TempDir()
	for _, tc := range []struct {
		args []string
		kind string
		// typed is the schema the document must decode into, strictly, and re-encode to the same.
		typed func() any
	}{
		{[]string{"version"}, "Version", func() any { return &VersionInfo{} }},
		{[]string{"list", "--state-dir", state}, "LabList", func() any { return &LabList{} }},
		{[]string{"list", "--scenarios"}, "ScenarioList", func() any { return &ScenarioList{} }},
		{[]string{"plan", "--state-dir", state, "--topology", "single-network", "--provider", "local"}, "Plan", func() any { return &PlanDoc{} }},
		{[]string{"train", "list"}, "ExerciseList", func() any { return &ExerciseList{} }},
		{[]string{"train", "report", "--state-dir", state}, "TrainReport", func() any { return &train.Report{} }},
	} {
		for _, format := range []string{"json", "yaml"} {
			out, errOut, code := run(t, append(tc.args, "-o", format)...)
			var doc map[string]any
			typed := tc.typed()
			var err, strict error
			if format == "json" {
				err = json.Unmarshal([]byte(out), &doc)
				dec := json.NewDecoder(strings.NewReader(out))
				dec.DisallowUnknownFields()
				strict = dec.Decode(typed)
			} else {
				err = yaml.Unmarshal([]byte(out), &doc)
				strict = yaml.UnmarshalStrict([]byte(out), typed)
			}
			if code != 0 || err != nil || doc["apiVersion"] != OutputAPIVersion || doc["kind"] != tc.kind {
				t.Errorf("%v -o %s (exit %d, %v): %.300s%s", tc.args, format, code, err, out, errOut)
			}
			if strict != nil {
				t.Errorf("%v -o %s does not decode into its schema: %v", tc.args, format, strict)
				continue
			}
			// Round trip: the typed document encodes to what was printed.
			again, _ := json.Marshal(typed)
			var back map[string]any
			_ = json.Unmarshal(again, &back)
			first, _ := json.Marshal(doc)
			second, _ := json.Marshal(back)
			if string(first) != string(second) {
				t.Errorf("%v -o %s does not round-trip:\n%s\n%s", tc.args, format, first, second)
			}
		}
		if _, errOut, code := run(t, append(tc.args, "-o", "wide")...); code != 2 || !strings.Contains(errOut, `-o "wide" is not supported; use text, json or yaml`) {
			t.Errorf("%v -o wide: exit %d %s", tc.args, code, errOut)
		}
	}
	if _, errOut, code := run(t, "train", "status", "--name", "x", "-o", "wide"); code != 2 || !strings.Contains(errOut, "not supported") {
		t.Errorf("train status -o wide: exit %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "status", "--name", "x", "-o", "wide"); code != 2 || !strings.Contains(errOut, "not supported") {
		t.Errorf("status -o wide: exit %d %s", code, errOut)
	}
	if _, errOut, code := run(t, "verify", "--name", "x", "-o", "wide"); code != 2 || !strings.Contains(errOut, "not supported") {
		t.Errorf("verify -o wide: exit %d %s", code, errOut)
	}
	// kubectl's -v=N, and -v alone.
	for _, v := range [][]string{{"-v=4", "version"}, {"version", "-v"}} {
		if _, errOut, code := run(t, v...); code != 0 {
			t.Errorf("%v: exit %d %s", v, code, errOut)
		}
	}
}

// TestExitCodeContract: one exit-code contract for every command (README "Exit codes"): bad input, usage
// and a missing lab are 2 (never 1, which is only ever a finding), before anything is created; findings
// (1) are marked as such. The findings of each command are exercised on real labs in cmd/mclab:
// verify (TestIntegrationVerify), explain (TestIntegrationExplainFaultCorpus), train check
// (TestIntegrationTrain), bench --compare (TestIntegrationBench), status of a lab not ready.
func TestExitCodeContract(t *testing.T) {
	state := t.TempDir()
	// Nothing is written where the user stands either (bench's default --out is ./mclab-bench).
	cwd := t.TempDir()
	t.Chdir(cwd)
	for _, args := range [][]string{
		{"no-such-command"},
		{"up", "--topology", "ring"},
		{"up", "--bogus-flag"},
		{"plan", "--clusters", "0"},
		{"down"},
		{"status", "--name", "ghost"},
		{"kubeconfig", "--name", "ghost"},
		{"export", "kubeconfig", "--name", "ghost"},
		{"list", "-o", "wide"},
		{"verify", "--name", "ghost"},
		{"verify", "--name", "ghost", "--label-filter", "MC-MTLS && ("},
		{"explain", "--name", "ghost"},
		{"train", "list", "--name", "ghost"},
		{"train", "start", "no-such-exercise", "--name", "ghost"},
		{"train", "status", "--name", "ghost"},
		{"train", "check", "--name", "ghost"},
		{"train", "hint", "--name", "ghost"},
		{"train", "solution", "--name", "ghost"},
		{"train", "reset", "--name", "ghost"},
		{"train", "selftest", "no-such-exercise"},
		{"train", "report", "--labs", "ghost-*"},
		{"bench", "--name", "ghost"},
		{"bench", "--compare", filepath.Join(state, "no-such.json")},
		{"tools", "--bogus-flag"},
		{"images", "--bogus-flag"},
		{"version", "-o", "wide"},
	} {
		_, errOut, code := run(t, append(args, "--state-dir", state)...)
		if code != ExitError || !strings.Contains(errOut, "ERROR: ") {
			t.Errorf("%v: exit %d, want %d with an ERROR line:\n%s", args, code, ExitError, errOut)
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(state, "labs")); len(entries) != 0 {
		t.Errorf("refused commands created labs: %v", entries)
	}
	if entries, _ := os.ReadDir(cwd); len(entries) != 0 {
		t.Errorf("refused commands wrote into the working directory: %v", entries)
	}
	// down of a lab that is not there is done (exit 0), as kind delete cluster: down always cleans up.
	if out, errOut, code := run(t, "down", "--name", "ghost", "--state-dir", state); code != ExitDone || !strings.Contains(out+errOut, "nothing to delete") {
		t.Errorf("down of a missing lab: exit %d: %s%s", code, out, errOut)
	}
	for err, want := range map[error]int{
		nil: ExitDone,
		errors.New("dial tcp: connection refused"):                                            ExitError,
		&train.InputError{Err: errors.New("no exercise is running")}:                          ExitError,
		&train.FindingError{Err: errors.New("exercise x not solved")}:                         ExitFinding,
		fmt.Errorf("wrapped: %w", &train.FindingError{Err: errors.New("selftest: 1 failed")}): ExitFinding,
		&exitError{code: ExitFinding, err: errors.New("lab is non-conformant")}:               ExitFinding,
	} {
		if got := exitCode(err); got != want {
			t.Errorf("exitCode(%v) = %d, want %d", err, got, want)
		}
	}
}
