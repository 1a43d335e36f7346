#!/usr/bin/env bash
# scripts/test.sh - the whole test suite, from a fresh Debian 12 machine: installs what is
# missing (including Java 17 + Maven for the real Kafka broker and headless Chromium for the
# dashboard test), builds, and runs ctest.
# Every service is started by the tests themselves: redis-server on free ports, the
# librdkafka mock cluster, and (through a CTest fixture) a real Apache Kafka broker that is
# always stopped at the end. .ci/run calls exactly this script.
#
#   scripts/test.sh                 everything: ctest, then 60 s of fuzzing per target, the
#                                   suite again under ASan+UBSan, valgrind on the daemon
#   scripts/test.sh -L unit         only the fast unit tests (any ctest arguments work; with
#                                   arguments, only ctest runs)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh --with-java --with-fuzz --with-browser
build=${SMM_BUILD_DIR:-build}
# The processor refuses unknown SMM_* environment variables: keep ours out of its way.
unset SMM_BUILD_DIR
SMM_BUILD_DIR=$build scripts/build.sh
export SMMT_TMP
SMMT_TMP=$(mktemp -d /tmp/smm-test.XXXXXX)
echo "Test scratch directory: $SMMT_TMP"
(cd "$build" && ctest --output-on-failure --timeout 1800 "$@")
# Full runs only (no ctest arguments): fuzzing, the suite again under ASan+UBSan, and
# valgrind on a short daemon run.
if [ $# -eq 0 ]; then
  SMM_FUZZ_SECONDS=${SMM_FUZZ_SECONDS:-60} scripts/fuzz.sh
  scripts/test-sanitizers.sh
  scripts/valgrind-daemon.sh
fi
