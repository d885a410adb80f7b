package scenario

import (
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"
)

// DefaultClusters is the number of clusters a composed scenario has unless told otherwise.
const DefaultClusters = 2

// MaxClusters bounds composed scenarios: subnets and ports are allocated for at most this many.
const MaxClusters = 50

// BuiltinName is the name of the composed scenario: the topology, then the model unless it is
// multi-primary, then the cluster count unless it is DefaultClusters; e.g. multi-network,
// single-network-primary-remote, multi-network-federated-4.
func BuiltinName(t Topology, m Model, clusters int) string {
	name := string(t)
	if m != MultiPrimary {
		name += "-" + string(m)
	}
	if clusters != DefaultClusters {
		name += "-" + strconv.Itoa(clusters)
	}
	return name
}

// ParseBuiltinName is the inverse of BuiltinName.
func ParseBuiltinName(name string) (Topology, Model, int, bool) {
	for _, t := range Topologies {
		rest, ok := strings.CutPrefix(name, string(t))
		if !ok {
			continue
		}
		m := MultiPrimary
		for _, cand := range []Model{PrimaryRemote, Federated, MultiPrimary} {
			if r, ok := strings.CutPrefix(rest, "-"+string(cand)); ok {
				m, rest = cand, r
				break
			}
		}
		n := DefaultClusters
		if rest != "" {
			num, ok := strings.CutPrefix(rest, "-")
			v, err := strconv.Atoi(num)
			if !ok || err != nil || strconv.Itoa(v) != num {
				return "", "", 0, false
			}
			n = v
		}
		return t, m, n, true
	}
	return "", "", 0, false
}

// Compose builds the built-in scenario for a topology, a model and a cluster count, defaulted and
// validated. Clusters are c1..cN. single-network puts all on network1; multi-network puts cN on
// networkN. primary-remote makes c1 the primary of every other cluster. federated splits the clusters
// into mesh1 (the first half, rounded up) and mesh2, each a multi-primary mesh with its own trust domain.
func Compose(t Topology, m Model, clusters int) (*Scenario, error) {
	name := BuiltinName(t, m, clusters)
	var errs []string
	if !slices.Contains(Topologies, t) {
		errs = append(errs, fmt.Sprintf("topology %q is not supported; use one of %v", t, Topologies))
	}
	if !slices.Contains(Models, m) {
		errs = append(errs, fmt.Sprintf("model %q is not supported; use one of %v", m, Models))
	}
	minimum := 1
	if m != MultiPrimary {
		minimum = 2
	}
	if clusters < minimum || clusters > MaxClusters {
		errs = append(errs, fmt.Sprintf("clusters %d is out of range; model %s needs between %d and %d", clusters, m, minimum, MaxClusters))
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("cannot compose a scenario: %s", strings.Join(errs, "; "))
	}
	s := &Scenario{
		Name:        name,
		Description: fmt.Sprintf("%d clusters, %s, Istio %s", clusters, t, m),
		Istio:       Istio{Model: m},
	}
	if m == Federated {
		s.Meshes = []Mesh{{ID: "mesh1"}, {ID: "mesh2"}}
	}
	firstHalf := (clusters + 1) / 2
	for i := 1; i <= clusters; i++ {
		c := Cluster{Name: fmt.Sprintf("c%d", i), Network: "network1"}
		if t == MultiNetwork {
			c.Network = fmt.Sprintf("network%d", i)
		}
		switch m {
		case PrimaryRemote:
			if i > 1 {
				c.Role, c.Primary = Remote, "c1"
			}
		case Federated:
			c.Mesh = "mesh1"
			if i > firstHalf {
				c.Mesh = "mesh2"
			}
		}
		s.Clusters = append(s.Clusters, c)
	}
	s.Default()
	if err := s.Validate("built-in scenario " + name); err != nil {
		return nil, err
	}
	return s, nil
}

// BuiltinNames lists the built-in scenario names: every topology and model with two clusters, then the
// scenario files in builtins.
func BuiltinNames(builtins fs.FS) []string {
	var names []string
	for _, t := range Topologies {
		for _, m := range Models {
			names = append(names, BuiltinName(t, m, DefaultClusters))
		}
	}
	entries, _ := fs.ReadDir(builtins, ".")
	for _, e := range entries {
		ext := path.Ext(e.Name())
		if !e.IsDir() && (ext == ".yaml" || ext == ".json") {
			names = append(names, strings.TrimSuffix(e.Name(), ext))
		}
	}
	return names
}
