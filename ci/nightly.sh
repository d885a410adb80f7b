#!/usr/bin/env bash
# mclab's own nightly job: the exhaustive test matrix (make test-long) on a machine like the CI one,
# with the same preparation as .ci/run (kind-offline, Chromium): train selftest with 3 seeds per
# exercise on every lab it fits, every kind model (federated too). About 60 minutes warm on 2 cores;
# .ci/run (make test, every push) runs the cheaper cut of the same tests within 30.
set -euo pipefail
export MCLAB_TEST_LONG=1
export TEST_TIMEOUT="${TEST_TIMEOUT:-180m}"
exec "$(dirname "$0")/../.ci/run"
