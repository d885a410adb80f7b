// Package ci holds the CI workflows users copy into their pipelines; this test keeps them in step with
// the Makefile and the models and topologies mclab supports.
package ci

import (
	"os"
	"regexp"
	"slices"
	"strconv"
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
				Istio    []string `json:"istio-version"`
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
				if len(m.Istio) == 0 {
					t.Errorf("%s job %s: no istio-version matrix", f, name)
				}
				for _, v := range m.Istio {
					s, err := scenario.Compose(scenario.MultiNetwork, scenario.MultiPrimary, 2)
					if err != nil {
						t.Fatal(err)
					}
					s.Istio.Version = v
					if err := s.Validate(f); err != nil {
						t.Errorf("%s job %s: istio-version %q: %v", f, name, v, err)
					}
				}
				passes := false
				for _, s := range job.Steps {
					passes = passes || strings.Contains(s.Run, "make -C mclab lab") && strings.Contains(s.Run, "ISTIO_VERSION=${{ matrix.istio-version }}")
				}
				if !passes {
					t.Errorf("%s job %s: the lab step does not pass ISTIO_VERSION=${{ matrix.istio-version }}", f, name)
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
		if !strings.Contains(string(makefile), "$(if $(ISTIO_VERSION),--istio-version $(ISTIO_VERSION))") {
			t.Errorf("the Makefile's lab target does not pass ISTIO_VERSION")
		}
		if !covered {
			t.Errorf("%s runs no models x topologies matrix", f)
		}
	}
}

// TestWorkflowsActionsAndCache: the workflows use current majors of GitHub's actions (Node 24), find
// go.sum in the checkout's subfolder, and key the upstream-binary cache on mclab's own key (`mclab tools
// --print-key`), so a Go patch release does not rebuild for 15 minutes and then fail to save again.
func TestWorkflowsActionsAndCache(t *testing.T) {
	minimum := map[string]int{"actions/checkout": 5, "actions/setup-go": 6, "actions/cache": 5, "actions/cache/restore": 5, "actions/upload-artifact": 7}
	for _, f := range []string{"github-actions-conformance.yaml", "github-actions-kind.yaml"} {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var w struct {
			Jobs map[string]struct {
				Steps []struct {
					Uses string         `json:"uses"`
					Run  string         `json:"run"`
					With map[string]any `json:"with"`
				} `json:"steps"`
			} `json:"jobs"`
		}
		if err := yaml.Unmarshal(data, &w); err != nil {
			t.Fatal(err)
		}
		for name, job := range w.Jobs {
			keyed, verifies, keepsFailedUp := false, false, false
			for _, s := range job.Steps {
				verifies = verifies || strings.Contains(s.Run, "mclab verify")
				keepsFailedUp = keepsFailedUp || strings.Contains(s.Run, "mclab/failed reports/failed-up")
			}
			if verifies && !keepsFailedUp {
				t.Errorf("%s job %s: the logs of a failed up (state dir's failed/) are not uploaded", f, name)
			}
			for _, s := range job.Steps {
				if s.Uses != "" {
					action, ver, _ := strings.Cut(s.Uses, "@v")
					if min, ok := minimum[action]; ok {
						if n, err := strconv.Atoi(ver); err != nil || n < min {
							t.Errorf("%s job %s: %s is older than v%d", f, name, s.Uses, min)
						}
					} else {
						t.Errorf("%s job %s: %s is not one this test knows the current major of", f, name, s.Uses)
					}
				}
				if strings.HasPrefix(s.Uses, "actions/setup-go") && s.With["cache-dependency-path"] != "mclab/go.sum" {
					t.Errorf("%s job %s: setup-go must find go.sum in the checkout's subfolder (cache-dependency-path: mclab/go.sum)", f, name)
				}
				if strings.Contains(s.Run, "tools --print-key") {
					keyed = true
				}
				if strings.HasPrefix(s.Uses, "actions/cache") && (!keyed || s.With["key"] != "${{ steps.key.outputs.key }}") {
					t.Errorf("%s job %s: the cache must be keyed on mclab tools --print-key, got %v", f, name, s.With["key"])
				}
			}
		}
	}
}

// TestNightlyRunsTheLongMatrix: the nightly job runs .ci/run's preparation with MCLAB_TEST_LONG=1, and
// the Makefile's test-long sets it and exports it to the tests (labtest.Long reads it).
func TestNightlyRunsTheLongMatrix(t *testing.T) {
	makefile, err := os.ReadFile("../Makefile")
	if err != nil {
		t.Fatal(err)
	}
	nightly, err := os.ReadFile("nightly.sh")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"export MCLAB_TEST_LONG=1", "/../.ci/run"} {
		if !strings.Contains(string(nightly), want) {
			t.Errorf("nightly.sh lacks %q", want)
		}
	}
	for _, want := range []string{"\ntest-long:", "MCLAB_TEST_LONG=1", "export MCLAB_TEST_LONG", "gotestsum tool slowest"} {
		if !strings.Contains(string(makefile), want) {
			t.Errorf("the Makefile lacks %q", want)
		}
	}
	run, err := os.ReadFile("../.ci/run")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^make test$`).Match(run) {
		t.Errorf(".ci/run must end in the README's test command, make test")
	}
	var w struct {
		Jobs map[string]struct {
			Steps []struct {
				Uses string `json:"uses"`
				Run  string `json:"run"`
			} `json:"steps"`
		} `json:"jobs"`
	}
	data, err := os.ReadFile("github-actions-nightly.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(data, &w); err != nil {
		t.Fatal(err)
	}
	runs := false
	for _, j := range w.Jobs {
		for _, s := range j.Steps {
			runs = runs || strings.Contains(s.Run, "ci/nightly.sh")
		}
	}
	if !runs {
		t.Errorf("github-actions-nightly.yaml does not run ci/nightly.sh")
	}
}
