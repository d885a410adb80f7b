// Package scenarios holds mclab's built-in scenario files. Composed scenarios (topology x model x
// cluster count) are built in code by lab/scenario.Compose; the files here are the ones that are not
// composed: istio-ci is Istio's own prow/config/topology/multicluster.json, verbatim, read through the
// topology import.
package scenarios

import "embed"

// FS holds the built-in scenario files, read by name with lab/scenario.Load.
//
//go:embed *.yaml *.json
var FS embed.FS

// Exercises holds the built-in training exercises (kind: Exercise), read by lab/train.Load.
//
//go:embed exercises/*.yaml
var Exercises embed.FS

// Bench holds the built-in bench scenarios (kind: BenchScenario), read by lab/bench.LoadScenario.
//
//go:embed bench/*.yaml
var Bench embed.FS
