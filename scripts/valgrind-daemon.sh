#!/usr/bin/env bash
# scripts/valgrind-daemon.sh - a short real run of smm-processor under valgrind memcheck:
# no invalid access and no definite or indirect leak, from start-up to a clean exit.
#
#   scripts/valgrind-daemon.sh                      5000 events, 1 % malformed
#   SMM_VG_EVENTS=20000 scripts/valgrind-daemon.sh
#
# Builds ./build (scripts/build.sh, or $SMM_BUILD_DIR), starts a private redis-server and
# smm-mock-kafka on 127.0.0.1, produces the events with smm-gen, then runs the processor
# under valgrind with --idle-exit-ms so it exits by itself once everything is flushed.
# Passes when valgrind reports no error (--error-exitcode), the processor exits 0, and
# Redis's smm:stats accounts for every message: all of them consumed, the malformed ones
# dead-lettered, the rest counted. Everything started here is stopped on exit; the
# scratch directory is removed on success and kept (path printed) on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SMM_BUILD_DIR:-build}
# The processor refuses unknown SMM_* environment variables: keep ours out of its way.
events=${SMM_VG_EVENTS:-5000}
topic=valgrind
tmo=${SMM_VG_TIMEOUT:-600} # seconds for the processor under valgrind
unset SMM_BUILD_DIR SMM_VG_EVENTS SMM_VG_TIMEOUT

scripts/install-deps.sh --with-fuzz # valgrind comes with the fuzzing tools
SMM_BUILD_DIR=$build scripts/build.sh

work=$(mktemp -d "${TMPDIR:-/tmp}/smm-valgrind.XXXXXX")
redis_pid=""
mock_pid=""
ok=0
cleanup() {
  for p in $mock_pid $redis_pid; do
    kill "$p" 2>/dev/null || true
  done
  for p in $mock_pid $redis_pid; do
    wait "$p" 2>/dev/null || true
  done
  if [ "$ok" = 1 ]; then
    rm -rf "$work"
  else
    echo "valgrind-daemon.sh: FAILED; files kept in $work" >&2
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

free_port() {
  python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

port=$(free_port)
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --daemonize no >"$work/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 100); do
  if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then break; fi
  sleep 0.1
done
redis-cli -h 127.0.0.1 -p "$port" ping | grep -q PONG

"$build/tools/smm-mock-kafka" --topic "$topic:4" --topic "$topic.dlq:1" --quiet \
  >"$work/mock.bs" 2>"$work/mock.log" &
mock_pid=$!
for _ in $(seq 100); do
  if [ -s "$work/mock.bs" ]; then break; fi
  sleep 0.1
done
boot=$(head -n1 "$work/mock.bs")
[ -n "$boot" ] || { echo "valgrind-daemon.sh: smm-mock-kafka did not start" >&2; exit 1; }

# "produced N messages (M malformed) in X s"
produced=$(timeout 120 "$build/tools/smm-gen" --brokers "$boot" --topic "$topic" \
  --count "$events" --malformed-rate 0.01 --seed 42 --quiet)
echo "valgrind-daemon.sh: $produced"
malformed=$(sed -n 's/.*(\([0-9]*\) malformed).*/\1/p' <<<"$produced")
[ -n "$malformed" ] || { echo "valgrind-daemon.sh: cannot read smm-gen's summary" >&2; exit 1; }

start=$(date +%s)
rc=0
timeout -k 60 -s INT "$tmo" valgrind --quiet --leak-check=full --show-leak-kinds=definite,indirect \
  --errors-for-leak-kinds=definite,indirect --error-exitcode=99 --num-callers=30 \
  --log-file="$work/valgrind.log" \
  "$build/processor/smm-processor" --brokers "$boot" --topic "$topic" --set http.port=0 \
  --redis "127.0.0.1:$port" --idle-exit-ms 3000 --set group_id=valgrind \
  --set stats.interval_ms=5000 --set kafka.session.timeout.ms=30000 \
  >"$work/processor.log" 2>&1 || rc=$?
echo "valgrind-daemon.sh: processor exited $rc after $(( $(date +%s) - start ))s under valgrind"

fail=0
if [ "$rc" -ne 0 ]; then
  fail=1
  case "$rc" in
    99) echo "valgrind-daemon.sh: valgrind found errors or leaks:" >&2 ;;
    124) echo "valgrind-daemon.sh: the processor did not exit within ${tmo}s" >&2 ;;
    *) echo "valgrind-daemon.sh: the processor failed (exit $rc):" >&2
       tail -n 20 "$work/processor.log" >&2 ;;
  esac
  head -n 100 "$work/valgrind.log" >&2
elif [ -s "$work/valgrind.log" ]; then
  # --quiet leaves only errors in the log; there should be none.
  echo "valgrind-daemon.sh: valgrind wrote a report:" >&2
  head -n 100 "$work/valgrind.log" >&2
  fail=1
fi

stats_field() {
  redis-cli -h 127.0.0.1 -p "$port" HGET smm:stats "$1"
}
messages=$(stats_field messages)
counted=$(stats_field events_counted)
dead=$(stats_field dead_letter)
echo "valgrind-daemon.sh: smm:stats messages=$messages events_counted=$counted dead_letter=$dead"
if [ "${messages:-0}" != "$events" ] || [ "${dead:-0}" != "$malformed" ] ||
   [ "$(( ${counted:-0} + ${dead:-0} ))" != "$events" ]; then
  echo "valgrind-daemon.sh: expected messages=$events, dead_letter=$malformed," \
       "events_counted=$((events - malformed))" >&2
  fail=1
fi
if [ "$fail" -ne 0 ]; then
  exit 1
fi
ok=1
echo "valgrind-daemon.sh: OK: no memcheck errors, no definite/indirect leaks," \
     "all $events messages accounted for"
