// Package ci holds the CI workflows users copy into their pipelines; this test keeps them in step with
// the Makefile and the models and topologies mclab supports.
package ci

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"mclab.dev/mclab/lab/scenario"
)

type workflow struct {
	Jobs map[string]struct {
		Strategy struct {
			Matrix struct {
				Topology []string `json:"topology"`
				Model    []string `json:"model"`
			} `json:"matrix"`
		} `json:"strategy"`
		Steps []struct {
			Run string `json:"run"`
		} `json:"steps"`
	} `json:"jobs"`
}

func TestWorkflowsCoverTheMatrixWithRealTargets(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"github-actions-conformance.yaml", "github-actions-kind.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w workflow
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		covered := false
		for name, job := range w.Jobs {
			m := job.Strategy.Matrix
			if len(m.Topology) > 0 {
				covered = true
				for _, tp := range scenario.Topologies {
					if !slices.Contains(m.Topology, string(tp)) {
						t.Errorf("%s job %s: matrix lacks topology %s", f, name, tp)
					}
				}
				for _, md := range scenario.Models {
					if !slices.Contains(m.Model, string(md)) {
						t.Errorf("%s job %s: matrix lacks model %s", f, name, md)
					}
				}
			}
			for _, s := range job.Steps {
				if strings.Contains(s.Run, "make -C mclab verify") {
					t.Errorf("%s: verify runs through make, which turns exit 1 (non-conformant) into 2; call mclab/bin/mclab verify", f)
				}
				if strings.Contains(s.Run, " verify ") && !strings.Contains(s.Run, "mclab/bin/mclab verify --name") {
					t.Errorf("%s: verify step %q does not call mclab directly", f, s.Run)
				}
				for _, target := range regexp.MustCompile(`make -C mclab ([a-z-]+)`).FindAllStringSubmatch(s.Run, -1) {
					if !strings.Contains(string(makefile), "\n"+target[1]+":") {
						t.Errorf("%s: make target %q is not in the Makefile", f, target[1])
					}
				}
			}
		}
		if !covered {
			t.Errorf("%s runs no models x topologies matrix", f)
		}
	}
}
