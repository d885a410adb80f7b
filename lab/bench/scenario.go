package bench

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/scenario"
)

// ScenarioKind is the kind of a bench scenario file.
const ScenarioKind = "BenchScenario"

// Types of bench.
const (
	TypePropagation = "propagation"
	TypeScale       = "scale"
)

// Scenario is a bench scenario: which lab, and what to measure on it.
type Scenario struct {
	APIVersion  string           `json:"apiVersion"`
	Kind        string           `json:"kind"`
	Name        string           `json:"name"`
	Type        string           `json:"type"`
	Lab         LabSpec          `json:"lab"`
	Propagation *PropagationSpec `json:"propagation,omitempty"`
	Scale       *ScaleSpec       `json:"scale,omitempty"`
	Description string           `json:"description,omitempty"`
}

// LabSpec is the lab a bench brings up (composed as `mclab up --topology --model --clusters` does).
type LabSpec struct {
	Topology scenario.Topology     `json:"topology,omitempty"`
	Model    scenario.Model        `json:"model,omitempty"`
	Clusters int                   `json:"clusters,omitempty"`
	Provider scenario.ProviderName `json:"provider,omitempty"`
}

// PropagationSpec says what the propagation bench measures.
type PropagationSpec struct {
	Endpoints []int `json:"endpoints"`
	Trials    int   `json:"trials"`
	// Churn flaps other endpoints in every cluster while the changes are measured (propagation under
	// load).
	Churn *ChurnSpec `json:"churn,omitempty"`
}

// ChurnSpec: a workload of Endpoints pods per cluster scaled between 0 and Endpoints, Rate times a second.
type ChurnSpec struct {
	Endpoints int     `json:"endpoints"`
	Rate      float64 `json:"rate"`
}

// ScaleSpec says what the scale bench measures.
type ScaleSpec struct {
	Clusters  []int    `json:"clusters"`
	Endpoints []int    `json:"endpoints"`
	Settle    Duration `json:"settle,omitempty"`
}

// Duration is a time.Duration written as "5s".
type Duration struct{ time.Duration }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("a duration such as 5s: %w", err)
	}
	d.Duration = v
	return nil
}

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return []byte(`"` + d.String() + `"`), nil }

// Limits that keep a bench bounded on one machine.
const (
	MaxEndpoints = 5000
	MaxTrials    = 100
	MaxClusters  = 50
)

// LoadScenario reads a bench scenario: a built-in name (see BuiltinScenarios) or a YAML file, strictly.
func LoadScenario(nameOrPath string, builtins fs.FS) (*Scenario, error) {
	data, err := fs.ReadFile(builtins, path.Join("bench", nameOrPath+".yaml"))
	source := "built-in " + nameOrPath
	if err != nil {
		if data, err = os.ReadFile(nameOrPath); err != nil {
			names, _ := BuiltinScenarios(builtins)
			return nil, fmt.Errorf("bench scenario %q is neither built in (%s) nor a file: %w", nameOrPath, strings.Join(names, ", "), err)
		}
		source = nameOrPath
	}
	return ParseScenario(source, data)
}

// ParseScenario decodes a bench scenario document strictly, defaulted and validated; errors name source.
func ParseScenario(source string, data []byte) (*Scenario, error) {
	var s Scenario
	if err := yaml.UnmarshalStrict(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	s.Default()
	if errs := s.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %w", source, errs.ToAggregate())
	}
	return &s, nil
}

// BuiltinScenarios lists the built-in bench scenarios.
func BuiltinScenarios(builtins fs.FS) ([]string, error) {
	entries, err := fs.ReadDir(builtins, "bench")
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range entries {
		out = append(out, strings.TrimSuffix(e.Name(), ".yaml"))
	}
	sort.Strings(out)
	return out, nil
}

// Default fills what the scenario leaves out.
func (s *Scenario) Default() {
	if s.Lab.Topology == "" {
		s.Lab.Topology = scenario.SingleNetwork
	}
	if s.Lab.Model == "" {
		s.Lab.Model = scenario.MultiPrimary
	}
	if s.Lab.Clusters == 0 {
		s.Lab.Clusters = 2
	}
	if s.Lab.Provider == "" {
		s.Lab.Provider = scenario.ProviderLocal
	}
	if s.Propagation != nil && s.Propagation.Trials == 0 {
		s.Propagation.Trials = 5
	}
	if s.Scale != nil {
		if len(s.Scale.Endpoints) == 0 {
			s.Scale.Endpoints = []int{0}
		}
		if s.Scale.Settle.Duration == 0 {
			s.Scale.Settle.Duration = 5 * time.Second
		}
	}
}

// Validate checks the scenario, naming each field and its fix.
func (s *Scenario) Validate() field.ErrorList {
	var errs field.ErrorList
	if s.APIVersion != scenario.APIVersion {
		errs = append(errs, field.Invalid(field.NewPath("apiVersion"), s.APIVersion, "set apiVersion: "+scenario.APIVersion))
	}
	if s.Kind != ScenarioKind {
		errs = append(errs, field.Invalid(field.NewPath("kind"), s.Kind, "set kind: "+ScenarioKind))
	}
	if !slices.Contains(scenario.Topologies, s.Lab.Topology) {
		errs = append(errs, field.NotSupported(field.NewPath("lab", "topology"), s.Lab.Topology, toStrings(scenario.Topologies)))
	}
	if !slices.Contains(scenario.Models, s.Lab.Model) {
		errs = append(errs, field.NotSupported(field.NewPath("lab", "model"), s.Lab.Model, toStrings(scenario.Models)))
	}
	if !slices.Contains(scenario.Providers, s.Lab.Provider) {
		errs = append(errs, field.NotSupported(field.NewPath("lab", "provider"), s.Lab.Provider, toStrings(scenario.Providers)))
	}
	counts := func(p *field.Path, vs []int, lo, hi int, what string) {
		if len(vs) == 0 {
			errs = append(errs, field.Required(p, "list the "+what+" to measure, e.g. [1, 10, 100]"))
		}
		for i, v := range vs {
			if v < lo || v > hi {
				errs = append(errs, field.Invalid(p.Index(i), v, fmt.Sprintf("%s must be %d to %d (a bench stays bounded on one machine)", what, lo, hi)))
			}
		}
	}
	switch s.Type {
	case TypePropagation:
		p := field.NewPath("propagation")
		if s.Propagation == nil {
			errs = append(errs, field.Required(p, "say what to measure: propagation: {endpoints: [1, 10, 100], trials: 5}"))
			break
		}
		counts(p.Child("endpoints"), s.Propagation.Endpoints, 1, MaxEndpoints, "endpoints")
		if t := s.Propagation.Trials; t < 1 || t > MaxTrials {
			errs = append(errs, field.Invalid(p.Child("trials"), t, fmt.Sprintf("trials must be 1 to %d", MaxTrials)))
		}
		if ch := s.Propagation.Churn; ch != nil {
			if ch.Endpoints < 1 || ch.Endpoints > MaxEndpoints {
				errs = append(errs, field.Invalid(p.Child("churn", "endpoints"), ch.Endpoints, fmt.Sprintf("churn endpoints must be 1 to %d", MaxEndpoints)))
			}
			if ch.Rate < 0.1 || ch.Rate > 20 {
				errs = append(errs, field.Invalid(p.Child("churn", "rate"), ch.Rate, "churn rate is changes per second per cluster, 0.1 to 20"))
			}
		}
		if s.Lab.Clusters < 2 {
			errs = append(errs, field.Invalid(field.NewPath("lab", "clusters"), s.Lab.Clusters, "propagation crosses clusters: give 2 or more"))
		}
	case TypeScale:
		p := field.NewPath("scale")
		if s.Scale == nil {
			errs = append(errs, field.Required(p, "say what to measure: scale: {clusters: [2, 5, 10], endpoints: [0, 100]}"))
			break
		}
		counts(p.Child("clusters"), s.Scale.Clusters, 1, MaxClusters, "clusters")
		for i, e := range s.Scale.Endpoints {
			if e < 0 || e > MaxEndpoints {
				errs = append(errs, field.Invalid(p.Child("endpoints").Index(i), e, fmt.Sprintf("endpoints must be 0 to %d", MaxEndpoints)))
			}
		}
	default:
		errs = append(errs, field.NotSupported(field.NewPath("type"), s.Type, []string{TypePropagation, TypeScale}))
	}
	return errs
}

func toStrings[T ~string](vs []T) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = string(v)
	}
	return out
}

// ErrNotLocal says a figure needs the local provider's processes.
var ErrNotLocal = errors.New("per-process memory and CPU figures need the local provider (its components are host processes)")
