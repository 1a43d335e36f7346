#!/usr/bin/env bash
# scripts/test-sanitizers.sh - the unit and integration suite built with AddressSanitizer
# (+ LeakSanitizer) and UndefinedBehaviorSanitizer, in its own build directory.
#
#   scripts/test-sanitizers.sh              configure + build ./build-asan from scratch or
#                                           incrementally, then ctest (mock-cluster Kafka)
#   scripts/test-sanitizers.sh -L unit      any ctest arguments work
#   SMM_ASAN_REAL_KAFKA=1 scripts/test-sanitizers.sh   also the real-broker duplicates
#
# Every instrumented process must turn a sanitizer finding into a failure that someone sees:
# - Criterion test binaries: ctest fails on the report in their output
#   (FAIL_REGULAR_EXPRESSION in tests/CMakeLists.txt; Criterion 2.4.1 itself exits 0 on a
#   LeakSanitizer report).
# - smm-processor, spawned by the integration tests with its stderr in a log file the
#   tests do not read: any report makes it exit non-zero (UB is fatal through
#   -fno-sanitize-recover=undefined and halt_on_error; ASan errors always are; LeakSanitizer
#   at exit sets the exit status), and the tests assert exit status 0 after SIGTERM. Runs
#   that end in kill -9 are not asked for a status, so after ctest this script also scans
#   every log under the test scratch directory ($SMMT_TMP) and fails on any report.
# Not covered: smm-mock-kafka's own stderr (the harness sends it to /dev/null); it is a
# test tool, and its exit status is not checked either.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMM_ASAN_BUILD_DIR:-build-asan}
real_kafka=${SMM_ASAN_REAL_KAFKA:-0}
# The processor refuses unknown SMM_* environment variables: keep ours out of its way.
unset SMM_BUILD_DIR SMM_ASAN_BUILD_DIR SMM_ASAN_REAL_KAFKA

if [ "$real_kafka" = 1 ]; then
  scripts/install-deps.sh --with-java
else
  scripts/install-deps.sh
fi

# RelWithDebInfo keeps the integration tests' timing close to the normal build; -g gives
# the reports line numbers. SMM_SANITIZE is the top-level CMake option.
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSMM_SANITIZE=address,undefined -DCMAKE_C_FLAGS=-fno-sanitize-recover=undefined \
  -DSMM_REAL_KAFKA="$([ "$real_kafka" = 1 ] && echo ON || echo OFF)" >/dev/null
cmake --build "$build"

pattern='ERROR: (Address|Leak)Sanitizer|runtime error:|ERROR: UndefinedBehaviorSanitizer'
# detect_leaks: LeakSanitizer at exit (on by default on x86-64 Linux; explicit here).
# halt_on_error / abort_on_error=0: the first report ends the process with exit status 86
# (not the processor's own 1 or 2, so an unexplained 86 in a test failure means "read the
# log for the sanitizer report"). gcc links UBSan as its own runtime, hence both lists.
ASAN_OPTIONS=detect_leaks=1:halt_on_error=1:abort_on_error=0:exitcode=86
export ASAN_OPTIONS=$ASAN_OPTIONS:detect_stack_use_after_return=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1:exitcode=86
export SMMT_TMP
SMMT_TMP=$(mktemp -d "${TMPDIR:-/tmp}/smm-asan.XXXXXX")
echo "Sanitizer test scratch directory: $SMMT_TMP"

args=("$@")
# deploy/ checks read the binaries' shared libraries: a sanitizer build links libasan.
if [ "$real_kafka" != 1 ]; then
  args=(-LE "kafka|deploy" "${args[@]}")
else
  args=(-LE deploy "${args[@]}")
fi
# A test that fails an assertion stops before its cleanup, so the redis-server or
# smm-mock-kafka it spawned keeps running. Every such process inherited SMMT_TMP, which is
# unique to this run: stop exactly those (builtins only, so nothing forked here matches).
# shellcheck disable=SC2317 # reap and stop_leftovers run from the EXIT trap
reap() {
  local sig=$1 d kv n=0
  for d in /proc/[0-9]*; do
    [ "${d#/proc/}" = "$$" ] && continue
    while IFS= read -r -d '' kv; do
      if [ "$kv" = "SMMT_TMP=$SMMT_TMP" ]; then
        kill "-$sig" "${d#/proc/}" 2>/dev/null && n=$((n + 1))
        break
      fi
    done 2>/dev/null <"$d/environ" || true
  done
  echo "$n"
}
# shellcheck disable=SC2317
stop_leftovers() {
  local n
  n=$(reap TERM)
  if [ "$n" -gt 0 ]; then
    echo "test-sanitizers.sh: stopped $n process(es) left behind by failed tests" >&2
    sleep 2
    reap KILL >/dev/null
  fi
}
trap stop_leftovers EXIT

rc=0
if [ $# -eq 0 ]; then
  # The fault suite's scenarios of outside faults (Redis killed or stopped, broker stopped)
  # mostly wait on the clock and exercise no code the others do not: under the sanitizers
  # only the ones that drive our recovery code run (kill -9 restarts, a power-loss rewind,
  # rebalances, every poison reason). The browser test drives the same HTTP routes as
  # test_http through a browser. The normal run (scripts/test.sh) runs all of them.
  (cd "$build" && ctest --output-on-failure --timeout 1800 -E '^(test_faults|test_dashboard)$' \
    "${args[@]}") || rc=$?
  faults='faults/@(a_kill9_random_restarts|b2_redis_power_loss_mid_stream|e_scale_out_rebalance|f_poison_every_reason)'
  (cd "$build" && CRITERION_TEST_PATTERN=$faults \
    ctest --output-on-failure --timeout 1800 -R '^test_faults$' "${args[@]}") || rc=$?
else
  (cd "$build" && ctest --output-on-failure --timeout 1800 "${args[@]}") || rc=$?
fi

# Reports that went to a spawned process's log file instead of ctest's output.
found=$(grep -rlE "$pattern" "$SMMT_TMP" 2>/dev/null || true)
if [ -n "$found" ]; then
  echo "test-sanitizers.sh: sanitizer reports in logs of spawned processes:" >&2
  for f in $found; do
    echo "---- $f" >&2
    grep -nE -A30 "$pattern" "$f" | head -n 60 >&2 || true
  done
  rc=1
fi
if [ "$rc" -eq 0 ]; then
  echo "test-sanitizers.sh: all tests passed under ASan + UBSan, no reports"
  rm -rf "$SMMT_TMP"
else
  echo "test-sanitizers.sh: FAILED (logs kept in $SMMT_TMP)" >&2
fi
exit "$rc"
