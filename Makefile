# mclab: labs and conformance gates for Istio multi-cluster meshes.
#   make lab TOPOLOGY=multi-network MODEL=multi-primary CLUSTERS=2 PROVIDER=auto [ISTIO_VERSION=1.30.1]
#   make status / make down / make test / make test-long / make tools

TOPOLOGY ?= multi-network
MODEL    ?= multi-primary
CLUSTERS ?= 2
PROVIDER ?= auto
# The lab name follows the scenario's name (e.g. multi-network, multi-network-primary-remote-3).
NAME     ?= $(TOPOLOGY)$(if $(filter-out multi-primary,$(MODEL)),-$(MODEL))$(if $(filter-out 2,$(CLUSTERS)),-$(CLUSTERS))

SHELL    := bash
GO       ?= go
BIN      := $(CURDIR)/bin
MCLAB    := $(BIN)/mclab
# Integration tests and benchmarks run real clusters; unit tests alone: make unit.
TEST_TIMEOUT ?= 45m
# make test-long sets it (the nightly matrix); exported so that the tests see it.
export MCLAB_TEST_LONG

.PHONY: all build lab down status plan verify name images tools test test-long fuzz unit integration bench verify-code clean

all: build

build:
	$(GO) build -o $(MCLAB) ./cmd/mclab

## lab: create (or converge) a lab of the given topology and model
lab: build
	$(MCLAB) up --topology $(TOPOLOGY) --model $(MODEL) --clusters $(CLUSTERS) --provider $(PROVIDER) $(if $(SAMPLES),--samples $(SAMPLES)) $(if $(OFFLINE_IMAGES),--offline-images) $(if $(ISTIO_VERSION),--istio-version $(ISTIO_VERSION))

## plan: print what `make lab` would do
plan: build
	$(MCLAB) plan --topology $(TOPOLOGY) --model $(MODEL) --clusters $(CLUSTERS) --provider $(PROVIDER) $(if $(SAMPLES),--samples $(SAMPLES)) $(if $(OFFLINE_IMAGES),--offline-images) $(if $(ISTIO_VERSION),--istio-version $(ISTIO_VERSION))

## down: delete the lab (NAME=... or ALL=1)
down: build
	$(MCLAB) down $(if $(ALL),--all,--name $(NAME))

## verify: run the conformance suites against the lab (LABEL_FILTER=..., REPORT_DIR=...)
verify: build
	$(MCLAB) verify --name $(NAME) $(if $(LABEL_FILTER),--label-filter '$(LABEL_FILTER)') $(if $(REPORT_DIR),--report-dir $(REPORT_DIR))

## name: print the lab name `make lab` gives these variables (for scripts: mclab verify --name "$$(make -s name)")
name:
	@echo $(NAME)

## status: describe the lab
status: build
	$(MCLAB) status --name $(NAME)

## tools: build the upstream binaries (Kubernetes, etcd, kwok, istiod) once into the shared cache
tools: build
	$(MCLAB) tools

## images: build the offline images a kind lab needs (pilot, proxyv2 without Envoy, echo, MetalLB) into Docker
images: build
	$(MCLAB) images

## test: every test, unit and integration (the integration tests run real local clusters, and real kind
# where kind-offline is set up). Budget: 30 minutes warm on 2 cores. The full log goes to bin/test.log
# (bin/test.json: go test -json; bin/junit.xml); the terminal shows each package with its time, each
# integration test's result (real kind included, with its figures or the reason it skipped) and every
# failure with its whole output (gotestsum's "=== Failed" section), then the total and the 10 slowest tests.
# test-long: the same with the exhaustive matrix (MCLAB_TEST_LONG=1: train selftest with 3 seeds per
# exercise on every selftest lab it fits, every kind model): the nightly job (ci/nightly.sh).
TEST_P ?= 1
test: verify-code tools
	@mkdir -p $(BIN)
	@start=$$(date +%s); set -o pipefail; \
	$(GO) tool gotestsum --format standard-verbose --hide-summary=skipped --jsonfile $(BIN)/test.json --junitfile $(BIN)/junit.xml -- \
		-p $(TEST_P) -count=1 -timeout $(TEST_TIMEOUT) ./... 2>&1 | tee $(BIN)/test.log | \
		awk '/^=== (Failed|Errors)/ { all = 1 } \
			all || /^(ok|FAIL|panic:|DONE)|^--- (PASS|FAIL|SKIP): TestIntegration|^    --- FAIL|^[[:space:]]+[a-z0-9_]+_test\.go:[0-9]+: (real kind|verify .* on real kind|verify of kind|train selftest|SIGINT after|shared lab)|^[[:space:]]+[0-9]+ runs of [0-9]+ exercises/ { print; fflush() }'; \
	rc=$$?; \
	echo "make test$(if $(MCLAB_TEST_LONG), (long: MCLAB_TEST_LONG=$(MCLAB_TEST_LONG))): $$(( $$(date +%s) - start )) s in all; the 10 slowest tests:"; \
	$(GO) tool gotestsum tool slowest --jsonfile $(BIN)/test.json --threshold 0 --num 10; \
	echo "full test log: $(BIN)/test.log"; exit $$rc

test-long:
	$(MAKE) test MCLAB_TEST_LONG=1 TEST_TIMEOUT=$(or $(LONG_TIMEOUT),180m)
	$(MAKE) fuzz

# fuzz: every decoder of user input, fuzzed for FUZZTIME each (make test runs their seed corpora only).
# A crash, a hang past 1 s or an error in terminal markup fails; a failing input is kept under the
# package's testdata/fuzz/ for make test to replay.
FUZZTIME ?= 2m
FUZZ_TARGETS := ./lab/scenario:FuzzParse ./lab/bench:FuzzParseScenario ./lab/train:FuzzParse \
	./suites:FuzzLabelFilter ./reports:FuzzRedact ./reports:FuzzRedactJSON
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; echo "fuzz $$pkg $$name for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -parallel 2 $$pkg; \
	done

## unit: the fast tests only
unit:
	$(GO) test -short -count=1 ./...

## bench: Go benchmarks of bring-up, propagation, scale and verify's diagnosis cost (binaries cached); `mclab bench` for the full scenarios
bench: tools
	$(GO) test -run '^$$' -bench 'BenchmarkUp' -benchtime 3x -timeout 30m ./lab/
	$(GO) test -run '^$$' -bench 'BenchmarkPropagation|BenchmarkScale' -benchtime 5x -timeout 60m ./lab/bench/
	$(GO) test -run '^$$' -bench 'BenchmarkVerify' -benchtime 3x -timeout 30m ./cmd/mclab/

## verify-code: gofmt and go vet
verify-code:
	@echo "gofmt:"; test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	@echo "go vet:"; $(GO) vet ./...
	@echo "code checks passed"

## sync-upstream: copy lab/upstream's module files into the embedded copy after changing the pins
sync-upstream:
	cd lab/upstream && GOWORK=off $(GO) mod tidy
	for f in go.mod go.sum tools.go; do cp lab/upstream/$$f lab/binaries/module/$$f.txt; done

clean:
	rm -rf $(BIN)
