package scenario

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// Parse decodes a scenario document strictly: unknown and duplicate fields are errors. A JSON array is
// read as Istio's topology format (ImportIstioTopology) and named after source. The result is
// defaulted and validated; every error names source.
func Parse(source string, data []byte) (*Scenario, error) {
	var s *Scenario
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '[' {
		imported, err := ImportIstioTopology(nameFromSource(source), data)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		s = imported
	} else {
		s = &Scenario{}
		if err := yaml.UnmarshalStrict(data, s); err != nil {
			return nil, fmt.Errorf("%s: %s; %s (`mclab plan --show-scenario` prints a complete scenario)", source, cleanDecodeError(err), DecodeHint(err))
		}
		if s.Name == "" {
			s.Name = nameFromSource(source)
		}
	}
	// Before defaulting: it allocates subnets and ports per cluster, so a scenario past the limit is
	// refused in one line, at once, not with a problem per cluster it could not allocate for.
	if err := s.CheckLimits(source); err != nil {
		return nil, err
	}
	s.Default()
	if err := s.Validate(source); err != nil {
		return nil, err
	}
	return s, nil
}

// CheckLimits refuses a scenario with more clusters than a lab holds (MaxClusters).
func (s *Scenario) CheckLimits(source string) error {
	if n := len(s.Clusters); n > MaxClusters {
		return fmt.Errorf("scenario %s is invalid: %s", source, field.TooMany(field.NewPath("clusters"), n, MaxClusters).Error()+
			fmt.Sprintf(": a lab holds at most %d clusters (subnets and ports are allocated for that many); split it into several labs", MaxClusters))
	}
	return nil
}

// cleanDecodeError drops the decoder's layers of prefixes ("error unmarshaling JSON: while decoding
// JSON: json: ") so the message reads like `unknown field "clusters[0].nmae"`.
func cleanDecodeError(err error) string {
	msg := err.Error()
	for _, p := range []string{"error converting YAML to JSON: ", "error unmarshaling JSON: ", "while decoding JSON: ", "json: "} {
		msg = strings.ReplaceAll(msg, p, "")
	}
	return msg
}

// DecodeHint says how to fix a strict YAML/JSON decoding error: a syntax error is not a misspelt field.
func DecodeHint(err error) string {
	msg := err.Error()
	switch {
	case strings.Contains(msg, "unknown field"), strings.Contains(msg, "duplicate field"), strings.Contains(msg, "already set in map"):
		return "remove it or fix its spelling"
	case strings.Contains(msg, "cannot unmarshal"):
		return "give the field a value of the type named"
	case strings.Contains(msg, "error converting YAML to JSON"), strings.Contains(msg, "yaml: "):
		return "fix the YAML syntax at the line named (indentation, a missing colon, an unclosed quote or bracket)"
	}
	return "fix the document"
}

func nameFromSource(source string) string {
	base := filepath.Base(source)
	return strings.TrimSuffix(base, filepath.Ext(base))
}

// Load reads a scenario from a file path, or by name from the built-in scenarios: a composed name such
// as multi-network-primary-remote (see ParseBuiltinName) or a file in builtins (e.g. istio-ci).
func Load(ref string, builtins fs.FS) (*Scenario, error) {
	if looksLikePath(ref) {
		data, err := os.ReadFile(ref)
		if err != nil {
			return nil, fmt.Errorf("reading scenario file: %w", err)
		}
		return Parse(ref, data)
	}
	if t, m, n, ok := ParseBuiltinName(ref); ok {
		return Compose(t, m, n)
	}
	for _, ext := range []string{".yaml", ".json"} {
		data, err := fs.ReadFile(builtins, ref+ext)
		if err == nil {
			return Parse(ref+ext, data)
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
	}
	return nil, fmt.Errorf("no scenario named %q: give a file path, or one of the built-in scenarios (`mclab list --scenarios`): %s", ref, strings.Join(BuiltinNames(builtins), ", "))
}

func looksLikePath(ref string) bool {
	return strings.ContainsRune(ref, os.PathSeparator) || strings.HasSuffix(ref, ".yaml") ||
		strings.HasSuffix(ref, ".yml") || strings.HasSuffix(ref, ".json")
}

// Marshal renders a scenario as YAML.
func Marshal(s *Scenario) ([]byte, error) {
	return yaml.Marshal(s)
}
