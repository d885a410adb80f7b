package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/release"
	"k8s.io/cli-runtime/pkg/genericclioptions"

	"mclab.dev/mclab/lab/binaries"
	"mclab.dev/mclab/lab/istio/release/releasetest"
	"mclab.dev/mclab/lab/labtest"
)

// TestIntegrationIstioRelease installs Istio "releases" on the local provider from servers this test
// starts (the machine has no internet): a Helm chart repository serving Istio's charts packaged as
// release versions, and an OCI registry serving pilot images whose layer holds the locally built
// pilot-discovery. A tampered chart and a tampered layer are refused before anything runs; a good
// release is fetched, verified, installed as Helm releases and verified conformant; `mclab up
// --istio-version NEXT` upgrades it in place (helm upgrade, istiod restarted on the new program) and the
// lab is conformant again.
func TestIntegrationIstioRelease(t *testing.T) {
	labtest.SkipIfShort(t)
	const v1, v2, badChart, badLayer, older = "1.31.0-mclab.1", "1.31.0-mclab.2", "1.31.0-mclab.3", "1.31.0-mclab.4", "1.30.0-mclab.1"
	ctx := context.Background()
	bin := buildMclab(t)
	stateDir := labtest.StateRoot(t)
	cache, err := binaries.DefaultCacheDir()
	if err != nil {
		t.Fatal(err)
	}
	set, err := (&binaries.Builder{CacheDir: cache}).Ensure(ctx)
	if err != nil {
		t.Fatal(err)
	}
	repo, err := releasetest.NewChartRepo(v1, v2, badChart, badLayer, older)
	if err != nil {
		t.Fatal(err)
	}
	defer repo.Close()
	repo.Tamper("istiod", badChart)
	reg := releasetest.NewRegistry()
	defer reg.Close()
	pilots := map[string]*releasetest.Pilot{}
	for _, v := range []string{v1, v2, badChart, badLayer} {
		p, err := reg.PushPilot("istio", v, set.Path("pilot-discovery"))
		if err != nil {
			t.Fatal(err)
		}
		pilots[v] = p
	}
	reg.TamperBlob(pilots[badLayer].BinaryLayer)
	// What this test fetches is cached in the shared cache: remove it after.
	t.Cleanup(func() {
		for _, p := range pilots {
			os.RemoveAll(filepath.Join(cache, "istio", "pilot", strings.TrimPrefix(p.Digest, "sha256:")[:16]))
		}
		files, _ := filepath.Glob(filepath.Join(cache, "istio", "charts", "*-1.31.0-mclab.*.tgz"))
		for _, f := range files {
			os.Remove(f)
		}
	})
	t.Cleanup(func() { mclab(t, bin, stateDir, "down", "--all") })
	up := func(version string, extra ...string) (string, int) {
		args := append([]string{"up", "--istio-version", version, "--istio-chart-repository", repo.URL, "--istio-hub", reg.Host + "/istio"}, extra...)
		out, stderr, code := mclab(t, bin, stateDir, args...)
		return out + stderr, code
	}
	fresh := []string{"--topology", "multi-network", "--provider", "local", "--name", "rel"}

	// Tampered artifacts are refused in the first step, before any cluster exists.
	for _, bad := range []struct{ version, want string }{
		{badChart, "refusing chart istiod " + badChart + " from " + repo.URL + "/istiod-" + badChart + ".tgz"},
		{badLayer, "refusing layer of " + pilots[badLayer].Ref},
	} {
		out, code := up(bad.version, fresh...)
		if code == 0 || !strings.Contains(out, bad.want) || strings.Count(out, "sha256:") < 2 {
			t.Fatalf("up --istio-version %s (tampered) exit %d, want a refusal %q naming both sums:\n%s", bad.version, code, bad.want, out)
		}
		if strings.Contains(out, "Starting clusters") {
			t.Errorf("a tampered release was refused only after clusters were started:\n%s", out)
		}
		if procs := labtest.ProcessesUnder(stateDir); len(procs) > 0 {
			t.Errorf("processes left after a refused release: %v", procs)
		}
		if _, err := os.Stat(filepath.Join(stateDir, "labs", "rel")); err == nil {
			t.Errorf("a refused up left the lab's state behind")
		}
	}

	// A good release: fetched, verified, installed as Helm releases, conformant.
	out, code := up(v1, fresh...)
	if code != 0 {
		t.Fatalf("up --istio-version %s: exit %d\n%s", v1, code, out)
	}
	for _, want := range []string{"Fetching Istio " + v1, "chart istiod " + v1 + " from " + repo.URL, "pilot-discovery from " + pilots[v1].Ref + "@" + pilots[v1].Digest} {
		if !strings.Contains(out, want) {
			t.Errorf("up output lacks %q:\n%s", want, out)
		}
	}
	kc, _, _ := mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "rel")
	kc = strings.TrimSpace(kc)
	checkReleases(t, kc, v1, 1)
	verifyConformant(t, bin, stateDir, "after install", repo.URL, pilots[v1])
	istiodBin := func(cluster string) string {
		cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(labPID(t, stateDir, "rel", cluster, "istiod")) + "/cmdline")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Split(string(cmdline), "\x00")[0]
	}
	if got := istiodBin("c1"); !strings.Contains(got, strings.TrimPrefix(pilots[v1].Digest, "sha256:")[:16]) {
		t.Errorf("istiod of c1 runs %s, not the program from %s", got, pilots[v1].Ref)
	}

	// Upgrade in place through `mclab up`.
	out, code = up(v2, "--name", "rel")
	if code != 0 {
		t.Fatalf("up --istio-version %s (upgrade): exit %d\n%s", v2, code, out)
	}
	if !strings.Contains(out, "upgrading Istio in place from "+v1+" to "+v2) {
		t.Errorf("the upgrade does not say what it does:\n%s", out)
	}
	checkReleases(t, kc, v2, 2)
	for _, c := range []string{"c1", "c2"} {
		if got := istiodBin(c); !strings.Contains(got, strings.TrimPrefix(pilots[v2].Digest, "sha256:")[:16]) {
			t.Errorf("after the upgrade istiod of %s runs %s, not the program from %s", c, got, pilots[v2].Ref)
		}
	}
	verifyConformant(t, bin, stateDir, "after upgrade", repo.URL, pilots[v2])
	status, _, _ := mclab(t, bin, stateDir, "status", "--name", "rel")
	if want := "Istio " + v2 + ": charts " + repo.URL; !strings.Contains(status, want) || !strings.Contains(status, pilots[v2].Digest) {
		t.Errorf("status does not name the Istio release and its sources (%q, %s):\n%s", want, pilots[v2].Digest, status)
	}
	mclab(t, bin, stateDir, "down", "--name", "rel")

	// A mixed-version lab: the primary on v2, its remote's charts one minor version older.
	scenarioFile := filepath.Join(t.TempDir(), "mixed.yaml")
	if err := os.WriteFile(scenarioFile, []byte(fmt.Sprintf(`apiVersion: mclab.dev/v1alpha1
kind: Scenario
name: mixed
istio: {model: primary-remote, version: %s, chartRepository: %q, hub: %q}
provider: {name: local}
clusters:
- {name: c1}
- {name: c2, role: remote, primary: c1, istioVersion: %s}
`, v2, repo.URL, reg.Host+"/istio", older)), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, code := mclab(t, bin, stateDir, "up", "--scenario", scenarioFile)
	if code != 0 {
		t.Fatalf("mixed-version up: exit %d\n%s%s", code, out, stderr)
	}
	if !strings.Contains(stderr, "Fetching Istio "+older) {
		t.Errorf("the remote's release was not fetched:\n%s", stderr)
	}
	kc, _, _ = mclab(t, bin, stateDir, "kubeconfig", "--path", "--name", "mixed")
	for cluster, want := range map[string]string{"c1": "istiod-" + v2, "c2": "istiod-" + older} {
		got := releaseCharts(t, strings.TrimSpace(kc), "mixed-"+cluster)
		if got["istiod"] != want || got["istio-base"] == "" {
			t.Errorf("mixed-version lab, %s: releases %v, want istiod from %s", cluster, got, want)
		}
	}
	dir := filepath.Join(t.TempDir(), "mixed")
	vout, verr, code := mclab(t, bin, stateDir, "verify", "--name", "mixed", "--report-dir", dir)
	if code != 0 {
		t.Errorf("mixed-version lab: verify exit %d\n%s%s", code, vout, verr)
	}
}

// helmList lists the Helm releases of one context in every namespace, as `helm list -A` does.
func helmList(t *testing.T, kubeconfig, context string) []*release.Release {
	t.Helper()
	flags := genericclioptions.NewConfigFlags(false)
	flags.KubeConfig, flags.Context = &kubeconfig, &context
	cfg := new(action.Configuration)
	if err := cfg.Init(flags, "", "secret", func(string, ...any) {}); err != nil {
		t.Fatal(err)
	}
	l := action.NewList(cfg)
	l.AllNamespaces = true
	rels, err := l.Run()
	if err != nil {
		t.Fatal(err)
	}
	return rels
}

// releaseCharts lists the Helm releases of one context: release name -> chart-version.
func releaseCharts(t *testing.T, kubeconfig, context string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, r := range helmList(t, kubeconfig, context) {
		out[r.Name] = r.Chart.Metadata.Name + "-" + r.Chart.Metadata.Version
	}
	return out
}

// checkReleases lists the Helm releases of every cluster with the Helm SDK (what `helm list -A` shows)
// and wants base, istiod and the east-west gateway at version, deployed, at revision.
func checkReleases(t *testing.T, kubeconfig, version string, revision int) {
	t.Helper()
	for _, c := range []string{"c1", "c2"} {
		var got []string
		for _, r := range helmList(t, kubeconfig, "rel-"+c) {
			got = append(got, fmt.Sprintf("%s/%s %s-%s r%d %s", r.Namespace, r.Name, r.Chart.Metadata.Name, r.Chart.Metadata.Version, r.Version, r.Info.Status))
		}
		sort.Strings(got)
		want := []string{
			fmt.Sprintf("istio-system/istio-base base-%s r%d deployed", version, revision),
			fmt.Sprintf("istio-system/istio-eastwestgateway gateway-%s r%d deployed", version, revision),
			fmt.Sprintf("istio-system/istiod istiod-%s r%d deployed", version, revision),
		}
		if strings.Join(got, "\n") != strings.Join(want, "\n") {
			t.Errorf("helm list -A in %s:\n%s\nwant:\n%s", c, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
	}
}

// verifyConformant runs verify and wants exit 0, conformant, and the report naming the release's
// sources.
func verifyConformant(t *testing.T, bin, stateDir, label, repoURL string, pilot *releasetest.Pilot) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.ReplaceAll(label, " ", "-"))
	out, stderr, code := mclab(t, bin, stateDir, "verify", "--name", "rel", "--report-dir", dir)
	report, _ := os.ReadFile(filepath.Join(dir, "conformance-report.yaml"))
	if code != 0 || !strings.Contains(string(report), "verdict: conformant") {
		t.Fatalf("%s: verify exit %d\n%s%s\n%s", label, code, out, stderr, report)
	}
	for _, want := range []string{"istioCharts: " + repoURL, "istioPilot: " + pilot.Ref + "@" + pilot.Digest} {
		if !strings.Contains(string(report), want) {
			t.Errorf("%s: the report does not name the release's source %q:\n%s", label, want, report)
		}
	}
}
