package train

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/onsi/ginkgo/v2/types"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	dynamicfake "k8s.io/client-go/dynamic/fake"

	"mclab.dev/mclab/lab/scenario"
	"mclab.dev/mclab/scenarios"
)

func builtins(t *testing.T) map[string]*Exercise {
	t.Helper()
	sub, err := fs.Sub(scenarios.Exercises, "exercises")
	if err != nil {
		t.Fatal(err)
	}
	all, err := Load(sub)
	if err != nil {
		t.Fatal(err)
	}
	return all
}

// TestBuiltinsAreValid: every built-in exercise parses, validates, names real specs and fits a lab of
// the topology and model it requires.
func TestBuiltinsAreValid(t *testing.T) {
	all := builtins(t)
	if len(all) < 15 {
		t.Errorf("only %d built-in exercises, want at least 15", len(all))
	}
	specs := suiteSpecs(t)
	for name, e := range all {
		topo, model := scenario.MultiNetwork, scenario.MultiPrimary
		if len(e.Requires.Topologies) > 0 {
			topo = e.Requires.Topologies[0]
		}
		if len(e.Requires.Models) > 0 {
			model = e.Requires.Models[0]
		}
		s, err := scenario.Compose(topo, model, 2)
		if err != nil {
			t.Fatal(err)
		}
		s.Provider.Name = scenario.ProviderLocal
		dataPlane := e.Requires.View == "data-plane"
		if dataPlane {
			s.Provider.Name = scenario.ProviderKind
		}
		if len(e.Requires.Providers) > 0 {
			s.Provider.Name = e.Requires.Providers[0]
		}
		if why := e.Fits(s, dataPlane); why != "" {
			t.Errorf("%s does not fit its own lab: %s", name, why)
		}
		for _, spec := range append(append([]string{}, e.Expect.Failing...), e.Expect.MayFail...) {
			if !specs[spec] {
				t.Errorf("%s expects spec %q, which no suite has", name, spec)
			}
		}
	}
}

// suiteSpecs are the texts of the suites' specs, read from their source.
func suiteSpecs(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("../../suites/*.go")
	if err != nil || len(files) == 0 {
		t.Fatalf("suites' sources: %v", err)
	}
	out := map[string]bool{}
	re := regexp.MustCompile(`\bIt\("([^"]+)"`)
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range re.FindAllStringSubmatch(string(data), -1) {
			out[m[1]] = true
		}
	}
	if len(out) < 10 {
		t.Fatalf("found only %d specs in the suites' sources", len(out))
	}
	return out
}

func TestParseRejects(t *testing.T) {
	good := `apiVersion: mclab.dev/v1alpha1
kind: Exercise
name: x
title: t
difficulty: easy
timeLimit: 10m
ticket: "{{.Target}} is broken"
faults: [{type: Delete, cluster: "{{.Target}}", ref: Secret/istio-system/cacerts}]
expect: {failing: [a spec]}
hints: [look]
solution: [kubectl get pods]
source: istio.io
`
	if _, err := Parse("good.yaml", []byte(good)); err != nil {
		t.Fatalf("a valid exercise: %v", err)
	}
	for _, tc := range []struct{ name, from, to, want string }{
		{"unknown field", "title: t", "title: t\ntitel: x", `unknown field "titel"`},
		{"unknown fault type", "type: Delete", "type: Remove", `faults[0].type: Unsupported value: "Remove"`},
		{"unknown kind", "Secret/istio-system/cacerts", "Pod/istio-system/x", `kind "Pod" is not one faults can touch`},
		{"namespaced kind without namespace", "Secret/istio-system/cacerts", "Secret/cacerts", "Secret is namespaced: write Secret/<namespace>/<name>"},
		{"template variable that does not exist", "{{.Target}} is broken", "{{.Cluster}} is broken", "ticket: Invalid value"},
		{"bad time limit", "timeLimit: 10m", "timeLimit: soon", "timeLimit: Invalid value: \"soon\": give a duration"},
		{"bad difficulty", "difficulty: easy", "difficulty: trivial", "difficulty: Unsupported value"},
		{"label fault without key", "type: Delete, cluster", "type: RemoveLabel, cluster", "faults[0].key: Required value"},
		{"no expectation", "expect: {failing: [a spec]}", "expect: {failing: []}", "expect.failing: Required value"},
		{"patch without a patch", "type: Delete, cluster", "type: Patch, cluster", "faults[0].patch: Required value"},
		{"patch of another subresource", "type: Delete, cluster: \"{{.Target}}\", ref: Secret/istio-system/cacerts}", "type: Patch, cluster: \"{{.Target}}\", ref: Secret/istio-system/cacerts, patch: {a: 1}, subresource: scale}", "faults[0].subresource: Unsupported value"},
		{"apply of another object than ref", "type: Delete, cluster: \"{{.Target}}\", ref: Secret/istio-system/cacerts}", "type: Apply, cluster: \"{{.Target}}\", ref: Secret/istio-system/cacerts, object: {apiVersion: v1, kind: Secret, metadata: {name: other, namespace: istio-system}}}", "the manifest must be the object ref names"},
		{"object on a delete", "ref: Secret/istio-system/cacerts}", "ref: Secret/istio-system/cacerts, object: {kind: Secret}}", "faults[0].object: Forbidden"},
		{"token without a value", "type: Delete, cluster", "type: SetRemoteSecretToken, cluster", "faults[0].value: Required value"},
		{"unknown target role", "ticket:", "requires: {targetRole: leader}\nticket:", "requires.targetRole: Unsupported value"},
		{"unknown provider", "ticket:", "requires: {providers: [minikube]}\nticket:", "requires.providers[0]: Unsupported value"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("bad.yaml", []byte(strings.Replace(good, tc.from, tc.to, 1)))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "bad.yaml") {
				t.Errorf("want an error naming %q, got %v", tc.want, err)
			}
		})
	}
}

// FuzzParse: the decoder and validation never panic, and what they accept renders.
func FuzzParse(f *testing.F) {
	for _, e := range []string{"remote-secret-missing.yaml", "expose-services-missing.yaml", "gateway-network-label.yaml"} {
		data, err := scenarios.Exercises.ReadFile("exercises/" + e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Add([]byte("faults: [{type: Scale, ref: Deployment/a/b, replicas: -1}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := Parse("fuzz.yaml", data)
		if err != nil {
			return
		}
		_ = e.RenderTicket(sampleTargets)
		_ = e.RenderSolution(sampleTargets)
	})
}

func TestTargetsAreSeeded(t *testing.T) {
	e := builtins(t)["remote-secret-missing"]
	s, err := scenario.Compose(scenario.SingleNetwork, scenario.MultiPrimary, 3)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for seed := uint64(1); seed <= 20; seed++ {
		a, err := e.Targets(s, "lab", "kc", seed)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := e.Targets(s, "lab", "kc", seed)
		if a != b {
			t.Errorf("seed %d drew %+v then %+v", seed, a, b)
		}
		if a.Watcher == a.Target || a.Watcher == "" || a.Client == a.Target {
			t.Errorf("seed %d: %+v", seed, a)
		}
		seen[a.Target] = true
	}
	if len(seen) < 2 {
		t.Errorf("20 seeds always drew the same target: %v", seen)
	}
	// primary-remote: the watcher of a remote is its primary.
	pr, _ := scenario.Compose(scenario.SingleNetwork, scenario.PrimaryRemote, 2)
	tg, err := e.Targets(pr, "lab", "kc", 7)
	if err != nil || tg.Target != pr.Clusters[1].Name || tg.Watcher != pr.Clusters[0].Name {
		t.Errorf("primary-remote targets %+v (%v)", tg, err)
	}
}

func unstructuredOf(t *testing.T, y string) *unstructured.Unstructured {
	t.Helper()
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON([]byte(y)); err != nil {
		t.Fatal(err)
	}
	return u
}

// TestInjectRevertSnapshot: every primitive changes what it says, records the object first, and the
// revert makes the snapshot equal again; an interrupted injection (cancelled context) reverts too.
func TestInjectRevertSnapshot(t *testing.T) {
	kubeconfig := base64.StdEncoding.EncodeToString([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster: {server: 'https://10.0.0.2:6443'}\ncontexts: [{name: c2, context: {cluster: c2, user: c2}}]\ncurrent-context: c2\nusers: [{name: c2, user: {token: secret-token}}]\n"))
	objs := []runtime.Object{
		unstructuredOf(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio-remote-secret-c2","namespace":"istio-system","labels":{"istio/multiCluster":"true"}},"data":{"c2":"`+kubeconfig+`"}}`),
		unstructuredOf(t, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system","labels":{"topology.istio.io/network":"network2"}}}`),
		unstructuredOf(t, `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"httpbin","namespace":"sample"},"spec":{"replicas":1}}`),
	}
	e := &Exercise{Faults: []Fault{
		{Type: FaultSetRemoteSecretServer, Cluster: "{{.Watcher}}", Ref: "Secret/istio-system/istio-remote-secret-{{.Target}}", Value: "https://192.0.2.1:6443"},
		{Type: FaultRenameSecretKey, Cluster: "{{.Watcher}}", Ref: "Secret/istio-system/istio-remote-secret-{{.Target}}", Key: "{{.Target}}", Value: "{{.Target}}-x"},
		{Type: FaultRemoveLabel, Cluster: "{{.Watcher}}", Ref: "Namespace/istio-system", Key: "topology.istio.io/network"},
		{Type: FaultDelete, Cluster: "{{.Watcher}}", Ref: "Secret/istio-system/istio-remote-secret-{{.Target}}"},
	}, RedHerrings: []Fault{{Type: FaultScale, Cluster: "{{.Watcher}}", Ref: "Deployment/sample/httpbin", Replicas: ptr(int64(2))}}}
	d := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(), objs...)
	clients := Clients{"c1": d}
	dir := t.TempDir()
	s := &Session{Targets: Targets{Target: "c2", Watcher: "c1"}}
	ctx := context.Background()
	if err := Inject(ctx, e, s, dir, clients); err != nil {
		t.Fatal(err)
	}
	diff, err := SnapshotDiff(ctx, s, clients)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"Secret/istio-system/istio-remote-secret-c2 in c1 is missing", "Namespace/istio-system in c1 differs in [labels]", "Deployment/sample/httpbin in c1 differs in [spec]"}
	if strings.Join(diff, "|") != strings.Join(want, "|") {
		t.Errorf("after injection:\n%s\nwant\n%s", strings.Join(diff, "\n"), strings.Join(want, "\n"))
	}
	saved, err := LoadSession(dir)
	if err != nil || len(saved.Touched) != 3 || !saved.Injected {
		t.Fatalf("the session on disk: %+v %v", saved, err)
	}
	if strings.Contains(string(saved.Touched[0].Pre), "192.0.2.1") {
		t.Errorf("the pre-image was recorded after the change")
	}
	if err := Revert(ctx, saved, clients); err != nil {
		t.Fatal(err)
	}
	if diff, _ := SnapshotDiff(ctx, saved, clients); len(diff) != 0 {
		t.Errorf("after revert: %v", diff)
	}
}

func ptr[T any](v T) *T { return &v }

// TestNewPrimitives: a revoked token, an untrusted CA, a status patch (a LoadBalancer address cleared),
// a merge patch and an applied object each change what they say; revert puts every one back, the
// status through the status subresource and the applied object deleted.
func TestNewPrimitives(t *testing.T) {
	kubeconfig := base64.StdEncoding.EncodeToString([]byte("apiVersion: v1\nkind: Config\nclusters:\n- name: c2\n  cluster: {server: 'https://10.0.0.2:6443', certificate-authority-data: " + base64.StdEncoding.EncodeToString([]byte("the-real-ca")) + "}\ncontexts: [{name: c2, context: {cluster: c2, user: c2}}]\ncurrent-context: c2\nusers: [{name: c2, user: {token: secret-token}}]\n"))
	objs := []runtime.Object{
		unstructuredOf(t, `{"apiVersion":"v1","kind":"Secret","metadata":{"name":"istio-remote-secret-c2","namespace":"istio-system"},"data":{"c2":"`+kubeconfig+`"}}`),
		unstructuredOf(t, `{"apiVersion":"v1","kind":"Service","metadata":{"name":"istio-eastwestgateway","namespace":"istio-system"},"spec":{"type":"LoadBalancer"},"status":{"loadBalancer":{"ingress":[{"ip":"198.18.0.1"}]}}}`),
		unstructuredOf(t, `{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"istiod","namespace":"istio-system"},"addressType":"IPv4","endpoints":[{"addresses":["198.18.0.1"]}]}`),
	}
	e := &Exercise{Faults: []Fault{
		{Type: FaultSetRemoteSecretToken, Cluster: "c1", Ref: "Secret/istio-system/istio-remote-secret-c2", Value: "revoked"},
		{Type: FaultSetRemoteSecretCA, Cluster: "c1", Ref: "Secret/istio-system/istio-remote-secret-c2"},
		{Type: FaultPatch, Cluster: "c1", Ref: "Service/istio-system/istio-eastwestgateway", Subresource: "status", Patch: map[string]any{"status": map[string]any{"loadBalancer": map[string]any{"ingress": nil}}}},
		{Type: FaultPatch, Cluster: "c1", Ref: "EndpointSlice/istio-system/istiod", Patch: map[string]any{"endpoints": []any{map[string]any{"addresses": []any{"198.18.255.{{.Target | len}}"}}}}},
		{Type: FaultApply, Cluster: "c1", Ref: "DestinationRule/sample/helloworld", Object: map[string]any{"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
			"metadata": map[string]any{"name": "helloworld", "namespace": "sample"}, "spec": map[string]any{"host": "helloworld.{{.Target}}"}}},
	}}
	d := dynamicfake.NewSimpleDynamicClientWithCustomListKinds(runtime.NewScheme(), map[schema.GroupVersionResource]string{kinds["DestinationRule"].gvr: "DestinationRuleList"}, objs...)
	clients := Clients{"c1": d}
	s := &Session{Targets: Targets{Target: "c2", Watcher: "c1"}}
	ctx := context.Background()
	if err := Inject(ctx, e, s, t.TempDir(), clients); err != nil {
		t.Fatal(err)
	}
	sec, _ := get(ctx, d, ObjectRef{"Secret", "istio-system", "istio-remote-secret-c2"})
	data, _, _ := unstructured.NestedStringMap(sec.Object, "data")
	kc, _ := base64.StdEncoding.DecodeString(data["c2"])
	if !strings.Contains(string(kc), "token: revoked") || strings.Contains(string(kc), base64.StdEncoding.EncodeToString([]byte("the-real-ca"))) || !strings.Contains(string(kc), "certificate-authority-data: LS0t") {
		t.Errorf("the remote secret after the token and CA faults:\n%s", kc)
	}
	svc, _ := get(ctx, d, ObjectRef{"Service", "istio-system", "istio-eastwestgateway"})
	if ing, _, _ := unstructured.NestedSlice(svc.Object, "status", "loadBalancer", "ingress"); len(ing) != 0 {
		t.Errorf("the address is still there: %v", ing)
	}
	eps, _ := get(ctx, d, ObjectRef{"EndpointSlice", "istio-system", "istiod"})
	if got, _ := json.Marshal(eps.Object["endpoints"]); string(got) != `[{"addresses":["198.18.255.2"]}]` {
		t.Errorf("endpoints after the patch: %s", got)
	}
	if dr, _ := get(ctx, d, ObjectRef{"DestinationRule", "sample", "helloworld"}); dr == nil {
		t.Errorf("Apply did not create the DestinationRule")
	}
	diff, _ := SnapshotDiff(ctx, s, clients)
	if len(diff) != 4 {
		t.Errorf("after injection, want 4 differences: %v", diff)
	}
	if err := Revert(ctx, s, clients); err != nil {
		t.Fatal(err)
	}
	if diff, _ := SnapshotDiff(ctx, s, clients); len(diff) != 0 {
		t.Errorf("after revert: %v", diff)
	}
	if dr, _ := get(ctx, d, ObjectRef{"DestinationRule", "sample", "helloworld"}); dr != nil {
		t.Errorf("revert left the applied DestinationRule")
	}
}

func TestJudgeNamesCollateralDamage(t *testing.T) {
	e := &Exercise{Expect: Expect{Failing: []string{"synced"}}}
	baseline := []string{"synced", "mtls", "roots"}
	rec := Judge(e, baseline, Specs{"synced": types.SpecStatePassed, "mtls": types.SpecStateFailed, "roots": types.SpecStatePassed})
	if rec.Passed || len(rec.StillFailing) != 0 || strings.Join(rec.Collateral, ",") != "mtls" {
		t.Errorf("a fix that broke mTLS: %+v", rec)
	}
	rec = Judge(e, baseline, Specs{"synced": types.SpecStateFailed, "mtls": types.SpecStatePassed, "roots": types.SpecStatePassed})
	if rec.Passed || strings.Join(rec.StillFailing, ",") != "synced" || len(rec.Collateral) != 0 {
		t.Errorf("not fixed yet: %+v", rec)
	}
	if rec := Judge(e, baseline, Specs{"synced": types.SpecStatePassed, "mtls": types.SpecStatePassed, "roots": types.SpecStatePassed, "new": types.SpecStateFailed}); !rec.Passed {
		t.Errorf("solved: %+v", rec)
	}
	missed, extra := Unexpected(e, baseline, Specs{"synced": types.SpecStatePassed, "mtls": types.SpecStateFailed})
	if strings.Join(missed, ",") != "synced" || strings.Join(extra, ",") != "mtls" {
		t.Errorf("unexpected: missed %v extra %v", missed, extra)
	}
}

// TestInterruptedInjectionIsResettable: injection stops half-way (here a fault whose object is missing;
// SIGINT cancels the same way): the session on disk already holds every object touched so far, so the
// revert restores the snapshot.
func TestInterruptedInjectionIsResettable(t *testing.T) {
	d := dynamicfake.NewSimpleDynamicClient(runtime.NewScheme(),
		unstructuredOf(t, `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"istio-system","labels":{"topology.istio.io/network":"network2"}}}`))
	clients := Clients{"c2": d}
	e := &Exercise{Faults: []Fault{
		{Type: FaultRemoveLabel, Cluster: "{{.Target}}", Ref: "Namespace/istio-system", Key: "topology.istio.io/network"},
		{Type: FaultRemoveLabel, Cluster: "{{.Target}}", Ref: "Service/istio-system/istio-eastwestgateway", Key: "topology.istio.io/network"},
	}}
	dir := t.TempDir()
	s := &Session{Targets: Targets{Target: "c2"}}
	ctx := context.Background()
	if err := Inject(ctx, e, s, dir, clients); err == nil {
		t.Fatal("the second fault's object does not exist: injection must stop")
	}
	saved, err := LoadSession(dir)
	if err != nil || saved.Injected || len(saved.Touched) != 2 {
		t.Fatalf("session after the interruption: %+v %v", saved, err)
	}
	if diff, _ := SnapshotDiff(ctx, saved, clients); len(diff) != 1 {
		t.Errorf("the first fault is in: %v", diff)
	}
	if err := Revert(ctx, saved, clients); err != nil {
		t.Fatal(err)
	}
	if diff, _ := SnapshotDiff(ctx, saved, clients); len(diff) != 0 {
		t.Errorf("after revert: %v", diff)
	}
}

// TestStatusDocument: `train status -o json|yaml` carries what the text shows (ticket, time left, hints,
// checks) and never the title (it names the cause), the solution, or the objects the faults touched
// (their pre-images may be remote secrets).
func TestStatusDocument(t *testing.T) {
	e := builtins(t)["remote-secret-missing"]
	if e == nil {
		t.Fatal("no built-in exercise remote-secret-missing")
	}
	start := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	s := &Session{
		Exercise: e.Name, Seed: 7, Mode: ModeGuided, Started: start, Deadline: start.Add(20 * time.Minute),
		Targets:   Targets{Lab: "lab", Kubeconfig: "/state/lab/kubeconfig", Target: "c2", Watcher: "c1", Client: "c1"},
		Touched:   []Touched{{Cluster: "c1", Ref: "Secret/istio-system/istio-remote-secret-c2", Pre: json.RawMessage(`{"data":{"c2":"c2VjcmV0LXRva2Vu"}}`)}},
		HintsUsed: 1,
	}
	st := statusOf(e, s, start.Add(5*time.Minute+30*time.Second))
	data, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, want := range []string{`"exercise":"remote-secret-missing"`, `"timeLeft":"14m30s"`, `"hintsUsed":1`, `"checks":[]`, `"seed":7`, `"lab":"lab"`} {
		if !strings.Contains(doc, want) {
			t.Errorf("status lacks %s:\n%s", want, doc)
		}
	}
	if st.Ticket == "" || !strings.Contains(doc, `"ticket"`) {
		t.Errorf("status lacks the ticket:\n%s", doc)
	}
	for _, leak := range []string{e.Title, "c2VjcmV0LXRva2Vu", "istio-remote-secret-c2\",\"pre"} {
		if strings.Contains(doc, leak) {
			t.Errorf("status carries %q:\n%s", leak, doc)
		}
	}
	for _, sol := range e.RenderSolution(s.Targets) {
		if strings.Contains(doc, sol) {
			t.Errorf("status carries the solution %q:\n%s", sol, doc)
		}
	}
	var back Status
	dec := json.NewDecoder(strings.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&back); err != nil || back.Ticket != st.Ticket || back.TimeLeft != st.TimeLeft {
		t.Errorf("status does not round-trip: %v %+v", err, back)
	}
}
