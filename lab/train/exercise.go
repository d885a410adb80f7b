// Package train runs break/fix exercises on mclab labs: an exercise injects typed faults (each records
// the object it changes before changing it, and knows its inverse), states only the symptom (the
// ticket), and is checked by the conformance suites: solved when every spec that passed before the
// faults passes again, so a "fix" that weakens the mesh elsewhere fails and is named. Exercises are data
// (kind: Exercise), validated field by field before anything is touched; the built-in ones are embedded
// (scenarios/exercises).
package train

import (
	"bytes"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"path"
	"slices"
	"sort"
	"strings"
	"text/template"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/scenario"
)

// APIVersion and Kind of an exercise file.
const (
	APIVersion = "mclab.dev/v1alpha1"
	Kind       = "Exercise"
)

// Exercise is one break/fix exercise.
type Exercise struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	// Name identifies the exercise (a DNS-1123 label).
	Name string `json:"name"`
	// Title is a short human name.
	Title string `json:"title"`
	// Requires is the lab the exercise runs on.
	Requires Requires `json:"requires"`
	// Difficulty is easy, medium or hard.
	Difficulty string `json:"difficulty"`
	// TimeLimit is how long a learner has, e.g. 20m.
	TimeLimit string `json:"timeLimit"`
	// Ticket states the symptom only, as a user would report it (a template over the targets).
	Ticket string `json:"ticket"`
	// Faults are injected in order.
	Faults []Fault `json:"faults"`
	// RedHerrings are harmless changes that look suspicious (injected and reverted like faults).
	RedHerrings []Fault `json:"redHerrings,omitempty"`
	// Expect lists the specs that must fail once the faults are in (by their text, as verify prints
	// them); no other spec may.
	Expect Expect `json:"expect"`
	// Hints go from vague to precise.
	Hints []string `json:"hints"`
	// Solution is the reference fix, as commands a learner could type (templates; run by selftest with
	// sh, KUBECONFIG set to the lab's).
	Solution []string `json:"solution"`
	// Source is where the cause comes from (istio.io page or Istio issue).
	Source string `json:"source"`
}

// Requires is what lab an exercise needs.
type Requires struct {
	// Models the exercise applies to (default: every model).
	Models []scenario.Model `json:"models,omitempty"`
	// Topologies: single-network and/or multi-network (default: both).
	Topologies []scenario.Topology `json:"topologies,omitempty"`
	// MinClusters is the least number of clusters (default 2).
	MinClusters int `json:"minClusters,omitempty"`
	// View is what the expected failures need: control-plane (every provider) or data-plane (kind or
	// existing clusters).
	View string `json:"view,omitempty"`
	// TargetRole restricts the target cluster to primaries or remotes (default: either).
	TargetRole scenario.Role `json:"targetRole,omitempty"`
	// Providers the exercise runs on (default: every provider), e.g. only local where a controller of
	// the other providers would undo the fault at once.
	Providers []scenario.ProviderName `json:"providers,omitempty"`
}

// Expect is what the faults must break.
type Expect struct {
	Failing []string `json:"failing"`
	// MayFail are specs that may also fail, depending on timing (a consequence istiod applies late);
	// they are invariants of check like every baseline spec.
	MayFail []string `json:"mayFail,omitempty"`
	// Diagnosis are phrases verify must print once the faults are in (templates): how selftest proves
	// that mclab names the injected cause.
	Diagnosis []string `json:"diagnosis,omitempty"`
}

// Targets are the clusters an exercise instance acts on, drawn from its seed.
type Targets struct {
	Lab, Kubeconfig string
	// Target is the cluster the fault is about; Network its network.
	Target, Network string
	// Watcher is a primary that reads Target through a remote secret ("" when none does).
	Watcher string
	// Client is another cluster of Target's mesh, from which the symptom shows; in the federated model,
	// a primary of another mesh (which imports what Target's mesh exports).
	Client string
	// Mesh is Target's mesh.
	Mesh string
}

// providerNames are the providers an exercise may require.
var providerNames = []scenario.ProviderName{scenario.ProviderKind, scenario.ProviderLocal, scenario.ProviderExisting}

// Difficulties are the valid difficulty values.
var Difficulties = []string{"easy", "medium", "hard"}

// Parse decodes and validates an exercise; every problem is reported with its field and a fix.
func Parse(source string, data []byte) (*Exercise, error) {
	e := &Exercise{}
	if err := yaml.UnmarshalStrict(data, e); err != nil {
		msg := err.Error()
		for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
			msg = strings.ReplaceAll(msg, p, "")
		}
		return nil, fmt.Errorf("%s: %s; %s (see scenarios/exercises for complete exercises)", source, msg, scenario.DecodeHint(err))
	}
	if errs := e.Validate(); len(errs) > 0 {
		var b strings.Builder
		fmt.Fprintf(&b, "%s: invalid exercise:", source)
		for _, fe := range errs {
			fmt.Fprintf(&b, "\n  %s", fe.Error())
		}
		return nil, fmt.Errorf("%s", b.String())
	}
	return e, nil
}

// Validate checks every field: types, references, and that every template renders.
func (e *Exercise) Validate() field.ErrorList {
	var errs field.ErrorList
	if e.APIVersion != APIVersion {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), e.APIVersion, "set apiVersion: "+APIVersion))
	}
	if e.Kind != Kind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), e.Kind, "set kind: "+Kind))
	}
	if e.Name == "" || strings.ToLower(e.Name) != e.Name || strings.ContainsAny(e.Name, " _./") {
		errs = append(errs, field.Invalid(field.NewPath("name"), e.Name, "give a lower-case name with '-', e.g. remote-secret-missing"))
	}
	if e.Title == "" {
		errs = append(errs, field.Required(field.NewPath("title"), "give a short title"))
	}
	r := field.NewPath("requires")
	for i, m := range e.Requires.Models {
		if !slices.Contains(scenario.Models, m) {
			errs = append(errs, field.NotSupported(r.Child("models").Index(i), m, scenario.Models))
		}
	}
	for i, t := range e.Requires.Topologies {
		if t != scenario.SingleNetwork && t != scenario.MultiNetwork {
			errs = append(errs, field.NotSupported(r.Child("topologies").Index(i), t, []scenario.Topology{scenario.SingleNetwork, scenario.MultiNetwork}))
		}
	}
	if e.Requires.MinClusters < 0 || e.Requires.MinClusters > 10 {
		errs = append(errs, field.Invalid(r.Child("minClusters"), e.Requires.MinClusters, "give 2 to 10 (default 2)"))
	}
	if tr := e.Requires.TargetRole; tr != "" && tr != scenario.Primary && tr != scenario.Remote {
		errs = append(errs, field.NotSupported(r.Child("targetRole"), tr, []scenario.Role{scenario.Primary, scenario.Remote}))
	}
	for i, pn := range e.Requires.Providers {
		if !slices.Contains(providerNames, pn) {
			errs = append(errs, field.NotSupported(r.Child("providers").Index(i), pn, providerNames))
		}
	}
	if v := e.Requires.View; v != "" && v != "control-plane" && v != "data-plane" {
		errs = append(errs, field.NotSupported(r.Child("view"), v, []string{"control-plane", "data-plane"}))
	}
	if !slices.Contains(Difficulties, e.Difficulty) {
		errs = append(errs, field.NotSupported(field.NewPath("difficulty"), e.Difficulty, Difficulties))
	}
	if d, err := time.ParseDuration(e.TimeLimit); err != nil || d <= 0 || d > 4*time.Hour {
		errs = append(errs, field.Invalid(field.NewPath("timeLimit"), e.TimeLimit, "give a duration up to 4h, e.g. 20m"))
	}
	errs = append(errs, checkTemplate(field.NewPath("ticket"), e.Ticket, true)...)
	if len(e.Faults) == 0 {
		errs = append(errs, field.Required(field.NewPath("faults"), "give at least one fault (types: "+strings.Join(FaultTypes(), ", ")+")"))
	}
	for i, f := range e.Faults {
		errs = append(errs, f.validate(field.NewPath("faults").Index(i))...)
	}
	for i, f := range e.RedHerrings {
		errs = append(errs, f.validate(field.NewPath("redHerrings").Index(i))...)
	}
	if len(e.Expect.Failing) == 0 {
		errs = append(errs, field.Required(field.NewPath("expect", "failing"), "name the specs the faults break, as verify prints them"))
	}
	for i, d := range e.Expect.Diagnosis {
		errs = append(errs, checkTemplate(field.NewPath("expect", "diagnosis").Index(i), d, true)...)
	}
	if len(e.Hints) == 0 {
		errs = append(errs, field.Required(field.NewPath("hints"), "give at least one hint, vague first"))
	}
	for i, h := range e.Hints {
		errs = append(errs, checkTemplate(field.NewPath("hints").Index(i), h, true)...)
	}
	if len(e.Solution) == 0 {
		errs = append(errs, field.Required(field.NewPath("solution"), "give the fix as commands a learner could type (kubectl, mclab)"))
	}
	for i, s := range e.Solution {
		errs = append(errs, checkTemplate(field.NewPath("solution").Index(i), s, true)...)
	}
	if e.Source == "" {
		errs = append(errs, field.Required(field.NewPath("source"), "cite the istio.io page or Istio issue the cause comes from"))
	}
	return errs
}

// sampleTargets fills every template variable, to check that templates render.
var sampleTargets = Targets{Lab: "lab", Kubeconfig: "/lab/kubeconfig", Target: "c2", Network: "network2", Watcher: "c1", Client: "c1", Mesh: "mesh1"}

func checkTemplate(p *field.Path, text string, required bool) field.ErrorList {
	if strings.TrimSpace(text) == "" {
		if required {
			return field.ErrorList{field.Required(p, "must not be empty")}
		}
		return nil
	}
	if _, err := render(text, sampleTargets); err != nil {
		return field.ErrorList{field.Invalid(p, text, fmt.Sprintf("%v; templates may use {{.Lab}}, {{.Kubeconfig}}, {{.Target}}, {{.Network}}, {{.Mesh}}, {{.Watcher}}, {{.Client}}", err))}
	}
	return nil
}

func render(text string, t Targets) (string, error) {
	tmpl, err := template.New("").Option("missingkey=error").Parse(text)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := tmpl.Execute(&b, t); err != nil {
		return "", err
	}
	return b.String(), nil
}

// Duration is the exercise's time limit.
func (e *Exercise) Duration() time.Duration {
	d, _ := time.ParseDuration(e.TimeLimit)
	return d
}

// Fits says why the exercise cannot run on a lab of scenario s ("" when it can). dataPlane says
// whether the lab's provider runs containers.
func (e *Exercise) Fits(s *scenario.Scenario, dataPlane bool) string {
	if len(e.Requires.Models) > 0 && !slices.Contains(e.Requires.Models, s.Istio.Model) {
		return fmt.Sprintf("needs model %v, the lab is %s", e.Requires.Models, s.Istio.Model)
	}
	topo := scenario.SingleNetwork
	nets := map[string]bool{}
	for _, c := range s.Clusters {
		nets[c.Network] = true
	}
	if len(nets) > 1 {
		topo = scenario.MultiNetwork
	}
	if len(e.Requires.Topologies) > 0 && !slices.Contains(e.Requires.Topologies, topo) {
		return fmt.Sprintf("needs topology %v, the lab is %s", e.Requires.Topologies, topo)
	}
	min := e.Requires.MinClusters
	if min == 0 {
		min = 2
	}
	if len(s.Clusters) < min {
		return fmt.Sprintf("needs %d clusters, the lab has %d", min, len(s.Clusters))
	}
	if len(e.Requires.Providers) > 0 && !slices.Contains(e.Requires.Providers, s.Provider.Name) {
		return fmt.Sprintf("needs provider %v, the lab runs on %s", e.Requires.Providers, s.Provider.Name)
	}
	if e.Requires.View == "data-plane" && !dataPlane {
		return "needs running pods (data plane): use provider kind or existing"
	}
	if _, err := e.Targets(s, "", "", 1); err != nil {
		return err.Error()
	}
	return ""
}

// Targets draws the clusters of an instance from seed: the same seed, the same clusters.
func (e *Exercise) Targets(s *scenario.Scenario, lab, kubeconfig string, seed uint64) (Targets, error) {
	rng := rand.New(rand.NewPCG(seed, 0x6d636c6162))
	needsWatcher := false
	for _, f := range append(append([]Fault{}, e.Faults...), e.RedHerrings...) {
		if strings.Contains(f.Cluster, ".Watcher") || strings.Contains(f.Ref, ".Watcher") {
			needsWatcher = true
		}
	}
	// In the federated model an exercise is about what a mesh exports: Target is a cluster of an
	// exporting mesh, Client a primary of another mesh.
	federated := s.Istio.Model == scenario.Federated
	exporting := map[string]bool{}
	if s.Istio.Federation != nil {
		for _, x := range s.Istio.Federation.Exports {
			exporting[x.Mesh] = len(x.Hosts) > 0
		}
	}
	var candidates []Targets
	for _, c := range s.Clusters {
		if federated && !exporting[c.Mesh] || e.Requires.TargetRole != "" && c.Role != e.Requires.TargetRole {
			continue
		}
		t := Targets{Lab: lab, Kubeconfig: kubeconfig, Target: c.Name, Network: c.Network, Mesh: c.Mesh}
		var watchers, clients []string
		for _, o := range s.Clusters {
			if o.Name == c.Name {
				continue
			}
			if o.Mesh == c.Mesh && o.Role == scenario.Primary && (c.Role == scenario.Primary || c.Primary == o.Name) {
				watchers = append(watchers, o.Name)
			}
			if federated && o.Mesh != c.Mesh && o.Role == scenario.Primary || !federated && o.Mesh == c.Mesh {
				clients = append(clients, o.Name)
			}
		}
		if len(clients) == 0 || needsWatcher && len(watchers) == 0 {
			continue
		}
		sort.Strings(watchers)
		sort.Strings(clients)
		if len(watchers) > 0 {
			t.Watcher = watchers[rng.IntN(len(watchers))]
		}
		t.Client = clients[rng.IntN(len(clients))]
		candidates = append(candidates, t)
	}
	if len(candidates) == 0 {
		if federated {
			return Targets{}, fmt.Errorf("no cluster of the lab fits: a federated exercise needs a mesh that exports a service (istio.federation.exports) and a primary of another mesh")
		}
		return Targets{}, fmt.Errorf("no cluster of the lab fits: a fault needs a cluster with another of its mesh%s", map[bool]string{true: " that reads it through a remote secret", false: ""}[needsWatcher])
	}
	return candidates[rng.IntN(len(candidates))], nil
}

// Ticket renders the ticket for t.
func (e *Exercise) RenderTicket(t Targets) string {
	out, _ := render(e.Ticket, t)
	return strings.TrimSpace(out)
}

// RenderHints renders the hints for t.
func (e *Exercise) RenderHints(t Targets) []string {
	var out []string
	for _, h := range e.Hints {
		s, _ := render(h, t)
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// RenderSolution renders the solution commands for t.
func (e *Exercise) RenderSolution(t Targets) []string {
	var out []string
	for _, h := range e.Solution {
		s, _ := render(h, t)
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

// Load reads every exercise of a directory tree (the built-ins, or a user's folder), by name.
func Load(fsys fs.FS) (map[string]*Exercise, error) {
	out := map[string]*Exercise{}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || (path.Ext(p) != ".yaml" && path.Ext(p) != ".yml") {
			return err
		}
		data, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		e, err := Parse(p, data)
		if err != nil {
			return err
		}
		if _, dup := out[e.Name]; dup {
			return fmt.Errorf("%s: exercise %q is defined twice", p, e.Name)
		}
		out[e.Name] = e
		return nil
	})
	return out, err
}

// RenderDiagnosis renders the expected diagnosis phrases for t.
func (e *Exercise) RenderDiagnosis(t Targets) []string {
	var out []string
	for _, h := range e.Expect.Diagnosis {
		s, _ := render(h, t)
		out = append(out, s)
	}
	return out
}
