#!/usr/bin/env bash
# scripts/fuzz.sh - build the libFuzzer targets (tests/fuzz/fuzz_*.c) with clang, ASan and
# UBSan, and run each for a bounded time on a copy of its seed corpus.
#
#   scripts/fuzz.sh                     every target, SMM_FUZZ_SECONDS (default 60) each
#   scripts/fuzz.sh event               only fuzz_event (targets: event, config)
#   SMM_FUZZ_SECONDS=600 scripts/fuzz.sh config
#
# The targets are compiled straight from the sources they exercise (metrics/, the decoder,
# config and pipeline of processor/, connectors/argv.c; cJSON is the system library), so
# this needs no CMake and never touches the normal build. Output goes to
# ${SMM_FUZZ_BUILD_DIR:-build-fuzz}: the binaries, one log per target, and artifacts/<target>/
# for reproducers. With two or more CPUs the targets run in parallel (SMM_FUZZ_JOBS=1 to
# run them one after the other).
#
# Exits non-zero on any crash, leak, timeout, out-of-memory or sanitizer report, and prints
# the reproducer: rerun it with build-fuzz/fuzz_<target> <file>, then copy it into
# tests/fuzz/regress/ so tests/unit/test_fuzz_regress.c replays it forever.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
seconds=${SMM_FUZZ_SECONDS:-60}
out=${SMM_FUZZ_BUILD_DIR:-build-fuzz}
cc=${SMM_FUZZ_CC:-clang}
all_targets=(event config)
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=("${all_targets[@]}")
fi
for t in "${targets[@]}"; do
  case "$t" in
    event|config) ;;
    *) echo "fuzz.sh: unknown target '$t' (known: ${all_targets[*]})" >&2; exit 2 ;;
  esac
done
case "$seconds" in
  ''|*[!0-9]*|0)
    echo "fuzz.sh: SMM_FUZZ_SECONDS must be a whole number of seconds >= 1" >&2
    exit 2 ;;
esac

scripts/install-deps.sh --with-fuzz
if ! command -v "$cc" >/dev/null; then
  echo "fuzz.sh: $cc not found (scripts/install-deps.sh --with-fuzz)" >&2
  exit 1
fi

mkdir -p "$out"
out=$(cd "$out" && pwd)
read -ra cjson_cflags <<<"$(pkg-config --cflags libcjson)"
read -ra cjson_libs <<<"$(pkg-config --libs libcjson)"
# shellcheck disable=SC2054 # the commas belong to -fsanitize=
cflags=(-std=c11 -D_POSIX_C_SOURCE=200809L '-DSMM_VERSION="fuzz"' -I"$root" "${cjson_cflags[@]}"
        -g -O1 -fno-omit-frame-pointer
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
        -Wall -Wextra -Wshadow -Wstrict-prototypes)
srcs=("$root"/metrics/*.c "$root"/processor/event_json.c "$root"/processor/config.c
      "$root"/processor/pipeline.c "$root"/processor/counters.c "$root"/processor/tz.c
      "$root"/connectors/argv.c "$root"/connectors/redis_keys.c)
libs=("${cjson_libs[@]}" -lnettle -lm)

for t in "${targets[@]}"; do
  echo "fuzz.sh: building $out/fuzz_$t"
  "$cc" "${cflags[@]}" -o "$out/fuzz_$t" "$root/tests/fuzz/fuzz_$t.c" "${srcs[@]}" "${libs[@]}"
done

work=$(mktemp -d "${TMPDIR:-/tmp}/smm-fuzz.XXXXXX")
pids=()
# shellcheck disable=SC2317 # invoked by the trap
cleanup() {
  for p in "${pids[@]}"; do
    kill "$p" 2>/dev/null || true
  done
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Reports must end the run: UB is fatal (-fno-sanitize-recover), leaks are checked per input.
export ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:strict_string_checks=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

# Starts one fuzzer in the background on a fresh copy of its seed corpus; sets $!.
# -max_len: the event limits are 64 KiB, but the tight limits (512 bytes) reach every
# reject reason with short inputs, and short inputs keep the fuzzer fast. The outer
# timeout only guards against a fuzzer that does not stop by itself.
start_target() {
  local t=$1 dict=()
  rm -rf "$work/corpus/$t" "$out/artifacts/$t"
  mkdir -p "$work/corpus/$t" "$out/artifacts/$t"
  cp "$root"/tests/fuzz/corpus/"$t"/* "$work/corpus/$t/"
  if [ -f "$root/tests/fuzz/$t.dict" ]; then
    dict=(-dict="$root/tests/fuzz/$t.dict")
  fi
  echo "fuzz.sh: fuzz_$t for ${seconds}s (log: $out/fuzz_$t.log)"
  timeout -k 10 $((seconds + 120)) "$out/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=4096 -print_final_stats=1 \
    -artifact_prefix="$out/artifacts/$t/" "${dict[@]}" "$work/corpus/$t" \
    >"$out/fuzz_$t.log" 2>&1 &
}

jobs=${SMM_FUZZ_JOBS:-$( [ "$(nproc)" -ge 2 ] && echo 0 || echo 1 )}
declare -A status
start=$(date +%s)
for t in "${targets[@]}"; do
  start_target "$t"
  pids+=($!)
  if [ "$jobs" = 1 ]; then
    status[$t]=0
    wait "$!" || status[$t]=$?
    pids=()
  fi
done
if [ "$jobs" != 1 ]; then
  i=0
  for t in "${targets[@]}"; do
    status[$t]=0
    wait "${pids[$i]}" || status[$t]=$?
    i=$((i + 1))
  done
  pids=()
fi

report_pattern='ERROR: (Address|Leak|Undefined)Sanitizer|runtime error:'
report_pattern+='|ERROR: libFuzzer|contract broken'
failed=0
for t in "${targets[@]}"; do
  log=$out/fuzz_$t.log
  stats=$(grep -E '^stat::(number_of_executed_units|new_units_added|peak_rss_mb)' "$log" |
          sed 's/^stat:://' | tr '\n' ' ' || true)
  reports=$(grep -cE "$report_pattern" "$log" || true)
  artifacts=$(find "$out/artifacts/$t" -type f 2>/dev/null)
  if [ "${status[$t]}" -ne 0 ] || [ "$reports" -ne 0 ] || [ -n "$artifacts" ]; then
    failed=1
    echo "fuzz.sh: fuzz_$t FAILED (exit ${status[$t]}, $reports report(s)); log $log:" >&2
    if grep -qE 'ERROR: |runtime error:|contract broken' "$log"; then
      grep -nE -A25 'ERROR: |runtime error:|contract broken' "$log" | head -n 80 >&2 || true
    else
      tail -n 40 "$log" >&2
    fi
    for a in $artifacts; do
      echo "fuzz.sh: reproducer: $a" >&2
      echo "fuzz.sh:   rerun:    $out/fuzz_$t $a" >&2
      echo "fuzz.sh:   keep:     cp $a tests/fuzz/regress/$t-<what-it-found>" >&2
    done
  else
    echo "fuzz.sh: fuzz_$t OK: $stats"
  fi
done
echo "fuzz.sh: done in $(( $(date +%s) - start ))s"
exit "$failed"
