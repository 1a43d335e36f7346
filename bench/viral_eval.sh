#!/usr/bin/env bash
# bench/viral_eval.sh - the viral detector's evaluation: precision, recall, detection delay
# and early warning of smm-processor's viral alerts on a stream with planted cascades whose
# right answers are known.
#
# It starts a private redis-server (free loopback port, no persistence, in a temp dir) and
# smm-mock-kafka, runs smm-processor with --set viral.reach_min=N --set viral.reach_alpha=0
# (everything else at its defaults) and waits until it owns every partition, then runs
#   smm-gen --scenario viral --viral-threshold N --truth truth.jsonl
# in real time (event ts = the wall clock when produced), waits until Redis holds the offsets
# of every produced message plus --settle-s for the detector's last ticks, reads <prefix>alerts
# and scores it with tools/viral_eval.py (definitions there and in docs/viral.md,
# "Evaluation"). Prints a markdown table and writes it to bench/viral_results.md. Every
# process it starts is stopped on exit.
#
# Usage: bench/viral_eval.sh [--threshold N] [--seed S] [--duration-s D] [--cascade-s C]
#                            [--cascades K] [--near-misses M] [--posts P] [--partitions P]
#                            [--settle-s S] [--build DIR] [--out FILE] [--smm-set K=V]...
#                            [--check] [--keep] [--allow-no-detector]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/viral_eval.sh${*:+ $*}"

THRESHOLD=1000
SEED=20261126
DURATION_S=180
CASCADE_S=120
CASCADES=6
NEAR_MISSES=6
POSTS=400
PARTITIONS=8
SETTLE_S=10
BUILD=$REPO/build
OUT=$BENCH_DIR/viral_results.md
CHECK=0
KEEP_LOGS=0
ALLOW_NO_DETECTOR=0
PY=${PYTHON:-python3}
SMM_SET=()

usage() {
    cat <<'EOF'
Usage: bench/viral_eval.sh [options]

Runs smm-gen --scenario viral through smm-mock-kafka and smm-processor into a private
redis-server in real time, then scores the alerts in <prefix>alerts against the
generator's ground truth: precision and recall of the viral flag, median and p90
detection delay, early warnings (rising before the crossing) and their lead time.

Options:
  --threshold N      viral.reach_min and the generator's --viral-threshold (default 1000)
  --seed S           generator seed (default 20261126)
  --duration-s D     wall-clock length of the scenario (default 180)
  --cascade-s C      length of one planted cascade (default 120)
  --cascades K       planted cascades, alternately broadcast and deep (default 6)
  --near-misses M    posts peaking at 60-90 % of the threshold (default 6)
  --posts P          organic posts (default 400)
  --partitions P     topic partitions (default 8)
  --settle-s S       wait after the stream drained, for the last ticks (default 10)
  --build DIR        build directory (default ./build)
  --out FILE         markdown report (default bench/viral_results.md, overwritten)
  --smm-set K=V      extra smm-processor --set (repeatable), recorded in the report
  --check            exit 3 if a floor fails (precision >= 0.9, recall >= 0.9,
                     median delay <= 2000 ms)
  --keep             keep the temp dir (logs, truth.jsonl, alerts)
  --allow-no-detector  run even if smm-processor has no viral.* keys yet (without the
                     two --set; every figure then fails: a dry run of the harness)
  -h, --help         this text

Needs: redis-server, python3, and the build (smm-processor, smm-gen, smm-mock-kafka).
Exit status: 0 measured, 1 a step failed, 2 bad usage or no detector, 3 a floor
failed (--check).
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --threshold) THRESHOLD=${2:?}; shift 2 ;;
    --seed) SEED=${2:?}; shift 2 ;;
    --duration-s) DURATION_S=${2:?}; shift 2 ;;
    --cascade-s) CASCADE_S=${2:?}; shift 2 ;;
    --cascades) CASCADES=${2:?}; shift 2 ;;
    --near-misses) NEAR_MISSES=${2:?}; shift 2 ;;
    --posts) POSTS=${2:?}; shift 2 ;;
    --partitions) PARTITIONS=${2:?}; shift 2 ;;
    --settle-s) SETTLE_S=${2:?}; shift 2 ;;
    --build) BUILD=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --smm-set) SMM_SET+=(--set "${2:?}"); shift 2 ;;
    --check) CHECK=1; shift ;;
    --keep) KEEP_LOGS=1; shift ;;
    --allow-no-detector) ALLOW_NO_DETECTOR=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "viral_eval.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
for v in THRESHOLD PARTITIONS CASCADES NEAR_MISSES POSTS SETTLE_S SEED; do
    if ! [[ ${!v} =~ ^[0-9]+$ ]]; then
        echo "viral_eval.sh: ${v,,} must be a non-negative integer, got '${!v}'" >&2
        exit 2
    fi
done
for v in DURATION_S CASCADE_S; do
    if ! [[ ${!v} =~ ^[0-9]+(\.[0-9]+)?$ ]]; then
        echo "viral_eval.sh: ${v,,} must be a number of seconds, got '${!v}'" >&2
        exit 2
    fi
done

BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "viral_eval.sh: no build directory '$BUILD'" >&2; exit 2; }
PROC=$BUILD/processor/smm-processor
GEN=$BUILD/tools/smm-gen
MOCK=$BUILD/tools/smm-mock-kafka
EVAL=$REPO/tools/viral_eval.py
for b in "$PROC" "$GEN" "$MOCK"; do
    [ -x "$b" ] || { echo "viral_eval.sh: $b not built (scripts/build.sh)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "viral_eval.sh: redis-server not found" >&2; exit 2; }
command -v redis-cli >/dev/null || { echo "viral_eval.sh: redis-cli not found" >&2; exit 2; }

VIRAL_SET=(--set "viral.reach_min=$THRESHOLD" --set viral.reach_alpha=0)
DETECTOR="viral.reach_min=$THRESHOLD, viral.reach_alpha=0"
HELP_CONFIG=$("$PROC" --help-config 2>/dev/null || true) # not piped into grep -q: SIGPIPE + pipefail
if ! grep -q '^ *viral\.reach_min ' <<<"$HELP_CONFIG"; then
    if [ "$ALLOW_NO_DETECTOR" != 1 ]; then
        echo "viral_eval.sh: this smm-processor has no viral.reach_min: the viral detector is" \
             "not built in yet (merge it, or --allow-no-detector for a dry run)" >&2
        exit 2
    fi
    VIRAL_SET=()
    DETECTOR="NONE: this smm-processor has no viral.* keys (--allow-no-detector dry run)"
fi

# ---- processes and cleanup ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smm-viral.XXXXXX")
PIDS=()
# stop_pid PID - TERM, up to 10 s of grace (the processor's final flush), then KILL.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if { [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; } || [ "$KEEP_LOGS" = 1 ]; then
        echo "viral_eval.sh: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}
die() {
    echo "viral_eval.sh: $*" >&2
    exit 1
}
rcli() {
    redis-cli -h 127.0.0.1 -p "$PORT" "$@"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
PORT=$("$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$PORT" --bind 127.0.0.1 --save '' --appendonly no --dir "$TMP" \
    >"$TMP/redis.log" 2>&1 &
PIDS+=($!)
"$MOCK" --topic "smm.events:$PARTITIONS" --topic smm.events.dlq:1 --topic smm.events.alerts:1 \
    --quiet >"$TMP/bootstrap" 2>"$TMP/kafka.log" &
PIDS+=($!)
for _ in $(seq 100); do
    [ -s "$TMP/bootstrap" ] && rcli ping >/dev/null 2>&1 && break
    sleep 0.1
done
[ -s "$TMP/bootstrap" ] || die "smm-mock-kafka did not start (see $TMP/kafka.log)"
rcli ping >/dev/null 2>&1 || die "redis-server did not start (see $TMP/redis.log)"
BROKERS=$(head -1 "$TMP/bootstrap")
log "redis 127.0.0.1:$PORT, mock Kafka $BROKERS ($PARTITIONS partitions)"

"$PROC" --brokers "$BROKERS" --topic smm.events --redis "127.0.0.1:$PORT" --set http.port=0 \
    --set kafka.session.timeout.ms=6000 ${VIRAL_SET[@]+"${VIRAL_SET[@]}"} \
    ${SMM_SET[@]+"${SMM_SET[@]}"} >"$TMP/processor.log" 2>&1 &
PROC_PID=$!
PIDS+=("$PROC_PID")
# Produce only once the processor owns every partition, so the group join (seconds on the
# mock) is not counted as detection delay.
for _ in $(seq 600); do
    kill -0 "$PROC_PID" 2>/dev/null || die "smm-processor exited (see $TMP/processor.log)"
    [ "$(rcli HLEN smm:owner 2>/dev/null || echo 0)" -ge "$PARTITIONS" ] && break
    sleep 0.1
done
[ "$(rcli HLEN smm:owner)" -ge "$PARTITIONS" ] || die "smm-processor did not claim $PARTITIONS partitions in 60 s"
log "smm-processor owns all partitions; running the scenario for ${DURATION_S} s"

# linger.ms=5: the generator's default 100 ms batching would add to every delay.
timeout -k 5 "$(awk -v d="$DURATION_S" 'BEGIN { printf "%d", d + 300 }')" \
    "$GEN" --scenario viral --brokers "$BROKERS" --topic smm.events --seed "$SEED" \
    --viral-threshold "$THRESHOLD" --duration-s "$DURATION_S" --cascade-s "$CASCADE_S" \
    --cascades "$CASCADES" --near-misses "$NEAR_MISSES" --posts "$POSTS" \
    --truth "$TMP/truth.jsonl" -X linger.ms=5 >"$TMP/gen.out" 2>"$TMP/gen.log" &
GEN_PID=$!
PIDS+=("$GEN_PID")
wait "$GEN_PID" || die "smm-gen failed (see $TMP/gen.log)"
unset 'PIDS[-1]'
PRODUCED=$(sed -n 's/^produced \([0-9]*\) messages.*/\1/p' "$TMP/gen.out")
[ -n "$PRODUCED" ] || die "no 'produced N messages' from smm-gen (see $TMP/gen.out)"
log "produced $PRODUCED events; waiting for Redis to hold all their offsets"

offsets_sum() {
    rcli HVALS smm:offsets 2>/dev/null | awk '{ s += $1 } END { print s + 0 }'
}
for _ in $(seq 1200); do
    [ "$(offsets_sum)" -ge "$PRODUCED" ] && break
    kill -0 "$PROC_PID" 2>/dev/null || die "smm-processor exited (see $TMP/processor.log)"
    sleep 0.1
done
[ "$(offsets_sum)" -ge "$PRODUCED" ] || die "Redis offsets reached $(offsets_sum) of $PRODUCED in 120 s"
log "drained; settling ${SETTLE_S} s for the detector's last ticks"
sleep "$SETTLE_S"
# Every event must have been counted: a dead-lettered scenario event would make the score
# meaningless, so it is printed in the report.
read -r S_MSGS S_COUNTED S_DEAD <<<"$(rcli HMGET smm:stats messages events_counted dead_letter | tr '\n' ' ')"
COUNTS="consumed ${S_MSGS:-0} of $PRODUCED messages, counted ${S_COUNTED:-0}, dead-lettered ${S_DEAD:-0}"
if [ "${S_COUNTED:-0}" != "$PRODUCED" ]; then
    log "WARNING: $COUNTS"
fi

# ---- report ----
V_SMM=$("$PROC" --version 2>/dev/null | head -1)
SRC_DIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
SRC_DIR=${SRC_DIR:-$REPO}
if V_GIT=$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null); then
    V_GIT="commit $V_GIT"
    if [ -n "$(git -C "$SRC_DIR" status --porcelain -- processor connectors metrics tools 2>/dev/null)" ]; then
        V_GIT="$V_GIT + uncommitted changes"
    fi
fi
SCEN=$("$PY" -c '
import json, sys
t = [json.loads(l) for l in open(sys.argv[1])]
c = lambda s: sum(1 for x in t if x["style"] == s)
ev = sum(x["events"] for x in t)
print("%d posts: %d broadcast + %d deep planted cascades, %d near misses, %d organic; "
      "%d events" % (len(t), c("broadcast"), c("deep"), c("near_miss"), c("organic"), ev))
' "$TMP/truth.jsonl")
EVAL_CHECK=()
[ "$CHECK" = 1 ] && EVAL_CHECK=(--check)
rc=0
"$PY" "$EVAL" --truth "$TMP/truth.jsonl" --redis-port "$PORT" --prefix smm: --out "$OUT" \
    --json-out "$TMP/figures.json" \
    --meta "Command=\`$CMDLINE\` on $(date -u '+%Y-%m-%d %H:%M UTC')" \
    --meta "Build=$V_SMM ($V_GIT)" \
    --meta "Processor=$COUNTS" \
    --meta "Detector settings=$DETECTOR${SMM_SET[*]+, ${SMM_SET[*]}}; everything else at its defaults" \
    --meta "Scenario=smm-gen --scenario viral --seed $SEED --viral-threshold $THRESHOLD --duration-s $DURATION_S --cascade-s $CASCADE_S: $SCEN" \
    --meta "Pipeline=smm-gen (real time, linger.ms=5) -> smm-mock-kafka ($PARTITIONS partitions) -> smm-processor -> redis-server, all on this machine ($(nproc) vCPU; load average $LOAD_START at the start, $(cut -d' ' -f1-3 /proc/loadavg) at the end)" \
    ${EVAL_CHECK[@]+"${EVAL_CHECK[@]}"} || rc=$?
rcli XRANGE smm:alerts - + >"$TMP/alerts.txt" 2>/dev/null || true
log "report written to $OUT"
exit "$rc"
