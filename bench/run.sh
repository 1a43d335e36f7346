#!/usr/bin/env bash
# bench/run.sh - the benchmark: smm-processor against a plain librdkafka consumer and a plain
# Python consumer, on the same topic, in one run. See bench/README.md for what the figures
# mean and their caveats.
#
# It starts a private redis-server (free loopback port, no persistence, in a temp dir) and
# smm-mock-kafka, then for each round:
#   0. produces N events with smm-gen into a fresh topic (same seed every round; timestamps
#      end "now", so every round sees the same window membership) and checks the partition
#      watermarks: no partition may have dropped data (low watermarks 0, sum of highs = N);
#   a. smm-raw-consume reads all N (fresh group);
#   b. FLUSHALL + SLOWLOG RESET + CONFIG RESETSTAT, then smm-processor (fresh group),
#      stopped with SIGTERM 5 s after Redis HVALS smm:offsets sums to N (so it ticks a
#      few times after the last event); Redis commands per event (INFO commandstats),
#      Redis CPU per event (INFO cpu, main thread and all threads), the longest Redis
#      calls (SLOWLOG, read every second), Redis memory (INFO memory) and key count
#      (DBSIZE); peak RSS (ru_maxrss) and CPU of the processor;
#   c. the same for python_baseline.py (fresh group, its own key prefix; it exits by
#      itself after N events).
# With --high-cardinality the ids are uniform over 2M posts, 200k accounts and 5M users.
# and prints a table per round and medians (min-max) over the rounds, also written as
# markdown to bench/results.md. Every process it starts is stopped on exit, also on
# Ctrl-C and on a failed step.
#
# Usage: bench/run.sh [--events N] [--rounds R] [--partitions P] [--build DIR] [--quick]
#                     [--keyed] [--high-cardinality] [--compression C] [--no-python]
#                     [--check] [--keep] [--smm-set K=V]... [--gen-arg A]... [--out FILE]
set -euo pipefail

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$BENCH_DIR/.." && pwd)
CMDLINE="bench/run.sh${*:+ $*}"

EVENTS=1000000
ROUNDS=3
PARTITIONS=64
BUILD=./build
KEYED=0
PYTHON_RUN=1
CHECK=0
KEEP_LOGS=0
OUT="$BENCH_DIR/results.md"
SEED=20261126
EVENTS_SET=0
HIGH_CARD=0
CONTENTS=100000
ZIPF=1.1
ACCOUNTS=1000     # smm-gen's defaults, given explicitly so the summary can name them
USERS=1000000
USER_ZIPF=0
COMPRESSION=lz4
FLUSH_MS=250
# The processor ticks (window retirement, reach refresh, viral detection) every tick_ms
# (1000 ms) of wall time, also while idle. The harness stops it with SIGTERM this long
# after it caught up, so about five ticks run after the last event (and their Redis cost
# is part of the step's figures), then its shutdown flush and tick.
IDLE_S=5
SLOWLOG_US=1000   # SLOWLOG threshold during the steps
PY=${PYTHON:-python3}
SMM_SET=() # extra --set KEY=VALUE for smm-processor (--smm-set)
GEN_ARGS=() # extra smm-gen arguments (--gen-arg)

usage() {
    cat <<'EOF'
Usage: bench/run.sh [options]

Measures, in one run on the same topic, (a) a plain librdkafka consumer
(smm-raw-consume), (b) smm-processor end to end into Redis and (c) a plain Python
consumer doing a subset of the same job (bench/python_baseline.py), and prints
events/s of each, the ratios smm/raw and smm/python, Redis CPU per event (INFO cpu;
main thread first), Redis commands per event (INFO commandstats), the longest Redis
calls (SLOWLOG), Redis memory and keys, and the processor's peak RSS and CPU, per
round and as medians (min-max).

Options:
  --events N       events per round (default 1000000)
  --rounds R       rounds (default 3)
  --partitions P   topic partitions (default 64: the mock broker keeps only ~5 MiB
                   per partition, and 1M events of ~180-260 B need >= 40)
  --build DIR      build directory with processor/, tools/ and bench/ (default ./build)
  --quick          100000 events, 1 round (a smoke test)
  --keyed          produce with smm-gen's own key partitioning (key = content_id).
                   The hottest post then lands in one partition (~13% of all events
                   under Zipf 1.1); with lz4 (the default --compression) 600k events
                   fit (300k without compression), 1M do not. Default:
                   partitioner=random, which spreads events evenly.
  --high-cardinality
                   ids as a large platform produces them: uniform over 2,000,000
                   posts, 200,000 accounts and 5,000,000 users, all smm-gen
                   families (--families all, --reply-median-s 20); default 300000
                   events (--events overrides)
  --compression C  producer compression.type of smm-gen: lz4 (default), none,
                   gzip, snappy or zstd. The mock broker stores the batches as
                   produced: one partition kept ~21k default events uncompressed,
                   ~125k with lz4
  --no-python      skip the Python baseline
  --check          exit 3 if a target is missed (smm/raw >= 0.15, smm/python >= 2.5,
                   Redis main-thread CPU <= 2.5 us/event, processor >= 400k msgs per
                   CPU-second, peak RSS <= 200 MB)
  --out FILE       markdown summary (default bench/results.md, overwritten)
  --keep           keep the temp dir (logs of every step, per-command stats as JSON)
  --smm-set K=V    extra smm-processor --set (repeatable), for what-if runs, e.g.
                   --smm-set kafka.queued.max.messages.kbytes=65536; recorded in
                   the summary. The Python baseline is not affected.
  --gen-arg ARG    extra smm-gen argument (repeatable), e.g. --gen-arg --families
                   for the insight families (messages/replies, mentions, referrals,
                   sources, segments); recorded in the summary.
  -h, --help       this text

Needs: redis-server, python3 (or $PYTHON) with the packages of
bench/requirements.txt, and the build (smm-processor, smm-gen, smm-mock-kafka;
smm-raw-consume is compiled into the temp dir with cc and pkg-config if
DIR/bench/smm-raw-consume is missing).
Exit status: 0 measured, 1 a step failed, 2 bad usage, 3 a floor missed (--check).
EOF
}

while [ $# -gt 0 ]; do
    case "$1" in
    --events) EVENTS=${2:?}; EVENTS_SET=1; shift 2 ;;
    --events=*) EVENTS=${1#*=}; EVENTS_SET=1; shift ;;
    --rounds) ROUNDS=${2:?}; shift 2 ;;
    --rounds=*) ROUNDS=${1#*=}; shift ;;
    --partitions) PARTITIONS=${2:?}; shift 2 ;;
    --partitions=*) PARTITIONS=${1#*=}; shift ;;
    --build) BUILD=${2:?}; shift 2 ;;
    --build=*) BUILD=${1#*=}; shift ;;
    --out) OUT=${2:?}; shift 2 ;;
    --out=*) OUT=${1#*=}; shift ;;
    --quick) EVENTS=100000; EVENTS_SET=1; ROUNDS=1; shift ;;
    --keyed) KEYED=1; shift ;;
    --high-cardinality) HIGH_CARD=1; shift ;;
    --compression) COMPRESSION=${2:?}; shift 2 ;;
    --compression=*) COMPRESSION=${1#*=}; shift ;;
    --no-python) PYTHON_RUN=0; shift ;;
    --keep) KEEP_LOGS=1; shift ;;
    --smm-set) SMM_SET+=(-s "${2:?}"); shift 2 ;;
    --smm-set=*) SMM_SET+=(-s "${1#*=}"); shift ;;
    --gen-arg) GEN_ARGS+=("${2:?}"); shift 2 ;;
    --gen-arg=*) GEN_ARGS+=("${1#*=}"); shift ;;
    --check) CHECK=1; shift ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run.sh: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    esac
done
case "$COMPRESSION" in
none | lz4 | gzip | snappy | zstd) ;;
*) echo "run.sh: --compression must be none, lz4, gzip, snappy or zstd, got '$COMPRESSION'" >&2; exit 2 ;;
esac
FAMILY_ARGS=()
if [ "$HIGH_CARD" = 1 ]; then
    CONTENTS=2000000
    ZIPF=0
    ACCOUNTS=200000
    USERS=5000000
    USER_ZIPF=0
    FAMILY_ARGS=(--families all --reply-median-s 20)
    [ "$EVENTS_SET" = 1 ] || EVENTS=300000
fi
for v in EVENTS ROUNDS PARTITIONS; do
    if ! [[ ${!v} =~ ^[1-9][0-9]*$ ]]; then
        echo "run.sh: --${v,,} must be a positive integer, got '${!v}'" >&2
        exit 2
    fi
done

BUILD=$(cd "$BUILD" 2>/dev/null && pwd) || { echo "run.sh: no build directory '$BUILD'" >&2; exit 2; }
PROC=$BUILD/processor/smm-processor
GEN=$BUILD/tools/smm-gen
MOCK=$BUILD/tools/smm-mock-kafka
RAW=$BUILD/bench/smm-raw-consume
for b in "$PROC" "$GEN" "$MOCK"; do
    [ -x "$b" ] || { echo "run.sh: $b not built (cmake --build $BUILD)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "run.sh: redis-server not found" >&2; exit 2; }
if ! "$PY" -c 'import confluent_kafka, redis' 2>/dev/null; then
    echo "run.sh: $PY lacks confluent-kafka or redis: pip install -r bench/requirements.txt" >&2
    exit 2
fi

# ---- processes and cleanup ----
TMP=$(mktemp -d "${TMPDIR:-/tmp}/smm-bench.XXXXXX")
PIDS=()
KEEP_TMP=0
# stop_pid PID - TERM, up to 5 s of grace, then KILL.
stop_pid() {
    kill -TERM "$1" 2>/dev/null || return 0
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    # The consumer under test first (the harness leaves its pid in a file), while Redis and
    # the broker still run: smm-processor retries its final flush for a while if Redis is
    # gone. Then our own children (steps, then services) in reverse order of start.
    for f in "$TMP"/*.childpid; do
        if [ -f "$f" ]; then
            stop_pid "$(cat "$f")"
        fi
    done
    local i
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        stop_pid "${PIDS[i]}"
        wait "${PIDS[i]}" 2>/dev/null || true
    done
    if { [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ]; } || [ "$KEEP_LOGS" = 1 ]; then
        KEEP_TMP=1
    fi
    if [ "$KEEP_TMP" = 1 ]; then
        echo "run.sh: logs kept in $TMP" >&2
    else
        rm -rf "$TMP"
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

die() {
    echo "run.sh: $*" >&2
    exit 1
}

# run_bg SECONDS LOG CMD... - run a bounded step in the background (so a signal to us is
# handled at once) and wait for it; returns its exit status.
run_bg() {
    local secs=$1 log=$2
    shift 2
    timeout -k 5 "$secs" "$@" >"$log" 2>&1 &
    local pid=$!
    PIDS+=("$pid")
    local rc=0
    wait "$pid" || rc=$?
    unset 'PIDS[-1]'
    return "$rc"
}

log() {
    printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# partial JSON - what a failed step measured before it failed (the harness writes it).
partial() {
    [ -s "$1" ] || return 0
    "$PY" -c '
import json, sys
x = json.load(open(sys.argv[1]))
print("measured until then: longest Redis call %.1f ms (%s), %d call(s) >= 10 ms, %d BUSY "
      "replies to the harness (waited up to %.1f s), Redis CPU %.1f s (main thread %.1f s), "
      "Redis +%.1f MB, %d keys, peak RSS %s MB" % (x["slow_max_ms"], x["slow_max_cmd"],
      x["slow_ge10"], x["busy_replies"], x["busy_max_wait_s"], x["redis_cpu_s"],
      x.get("redis_cpu_main_s") or 0, x["redis_used_memory_delta"] / 1048576.0, x["dbsize"],
      "%.1f" % (x["maxrss_kb"] / 1024.0) if x.get("maxrss_kb") else "-"))' "$1" || true
}

if [ ! -x "$RAW" ]; then
    log "$RAW not built; compiling bench/raw_consume.c into $TMP"
    RAW=$TMP/smm-raw-consume
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    cc -O2 -std=c11 -D_POSIX_C_SOURCE=200809L -o "$RAW" "$BENCH_DIR/raw_consume.c" \
        $(pkg-config --cflags --libs rdkafka) || die "cannot compile raw_consume.c"
fi

# The harness: launches one consumer, polls Redis on one persistent connection until the
# offsets sum to N, waits for the consumer to exit, and reports spans, ru_maxrss/CPU
# (wait4), INFO commandstats, cpu and memory, DBSIZE and SLOWLOG.
cat >"$TMP/harness.py" <<'PYEOF'
import json, os, signal, subprocess, sys, time
import redis

a = json.loads(sys.argv[1])
cmd = sys.argv[2:]
busy = {"replies": 0, "s": 0.0}

class Patient:
    """A redis.Redis whose calls wait while Redis answers BUSY (a script has run longer than
    busy-reply-threshold, 5 s): counted, they are a measurement too. Rejected commands are
    not in INFO commandstats' calls."""
    def __init__(self, conn):
        self.conn = conn
    def __getattr__(self, name):
        f = getattr(self.conn, name)
        def call(*args, **kw):
            t0 = time.monotonic()
            while True:
                try:
                    return f(*args, **kw)
                except redis.exceptions.ResponseError as err:
                    if not str(err).startswith("BUSY") or time.monotonic() - t0 > 600:
                        raise
                    busy["replies"] += 1
                    time.sleep(0.05)
                    busy["s"] = max(busy["s"], time.monotonic() - t0)
        return call

r = Patient(redis.Redis(host="127.0.0.1", port=a["port"], socket_timeout=30))
r.flushall()  # synchronous (lazyfree-lazy-user-flush is off): memory is back before mem0
# SLOWLOG records the execution time of a command: an EVALSHA's includes everything its
# script runs; time queued behind other clients and network time are not in it. Redis 7
# also logs each slow command a script calls, from client "?:0": those are inside their
# EVALSHA's time and are counted apart below.
r.config_set("slowlog-max-len", 1024)
# Entry ids keep counting across a reset: log the reset itself to learn where they stand.
r.config_set("slowlog-log-slower-than", 0)
r.slowlog_reset()
slow_base = r.slowlog_get(1)[0]["id"] + 1  # the reset's id; the GET above got the next one
r.config_set("slowlog-log-slower-than", a["slowlog_us"])
# SLOWLOG logs the commands a MULTI/EXEC runs one by one, and not the EXEC: the latency
# monitor's "command" event does time an EXEC whole (whole ms), so the longest call is
# the larger of the two.
r.config_set("latency-monitor-threshold", max(1, a["slowlog_us"] // 1000))
r.execute_command("LATENCY", "RESET")
r.config_resetstat()  # after our connection handshake, so it is not counted
own = {"hlen": 0, "hvals": 0}  # our polling commands, subtracted exactly below
cpu0 = r.info("cpu")
mem0 = r.info("memory")["used_memory"]
evalsha_at_done = None  # EVALSHA calls when the consumer had caught up
# SLOWLOG holds 1024 entries, and the commands scripts run can fill it within seconds, so
# it is read every second and at the end; entry ids are consecutive, so a gap is entries
# that were pushed out unread (reported).
harness_cmds = {"SLOWLOG", "CONFIG", "INFO", "DBSIZE", "HVALS", "HLEN"}  # ours
slow_state = {"last_id": slow_base, "lost": 0, "calls": [], "inner_ge10": 0, "phase2_from": None}

def slow_entry(e):
    # "EVALSHA <sha> <numkeys> <mode> ...": the script mode of smm-processor's calls.
    words = (e.get("command") or b"").split(b" ", 4)
    name = words[0].decode("latin-1").upper()
    mode = words[3].decode("latin-1")[:16] if name == "EVALSHA" and len(words) > 3 else ""
    inner = e.get("client_address") in (b"?:0", "?:0")
    return e["id"], e.get("duration", 0) / 1000.0, name, mode, inner

def slow_poll():
    new = [slow_entry(e) for e in r.slowlog_get(1024)]
    new = sorted(x for x in new if x[0] > slow_state["last_id"])
    if new:
        slow_state["lost"] += new[0][0] - slow_state["last_id"] - 1
        slow_state["last_id"] = new[-1][0]
    for i, ms, name, mode, inner in new:
        if name in harness_cmds or ms * 1000 < a["slowlog_us"]:
            continue
        if inner:
            slow_state["inner_ge10"] += ms >= 10.0
        else:
            slow_state["calls"].append([i, ms, name, mode])
child = None
rusage = None

def stop(signum, frame):
    # Let the consumer stop (smm-processor flushes on SIGTERM) while Redis still runs.
    if child is not None and rusage is None:
        child.terminate()
        try:
            child.wait(5)
        except subprocess.TimeoutExpired:
            child.kill()
    sys.exit(128 + signum)

signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
out = open(a["log"], "wb")
t0 = time.monotonic()
child = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
with open(a["pidfile"], "w") as f:
    f.write(str(child.pid))
deadline = t0 + a["timeout"]
next_slow = t0 + 1.0
res = {"ok": False}
t_assign = t_first = t_done = None
rusage = None
status = None

def reap(block):
    global rusage, status
    if rusage is None:
        pid, st, ru = os.wait4(child.pid, 0 if block else os.WNOHANG)
        if pid == child.pid:
            rusage, status = ru, st
            child.returncode = os.waitstatus_to_exitcode(st)
    return rusage is not None

while time.monotonic() < deadline:
    now = time.monotonic()
    if a.get("owner_key") and t_assign is None:
        own["hlen"] += 1
        if r.hlen(a["owner_key"]) >= a["partitions"]:
            t_assign = time.monotonic()
    own["hvals"] += 1
    s = sum(int(v) for v in r.hvals(a["offsets_key"]))
    if s > 0 and t_first is None:
        t_first = time.monotonic()
    if s >= a["events"]:
        t_done = time.monotonic()
        res["offsets_sum"] = s
        break
    if reap(False):
        break
    if time.monotonic() >= next_slow:
        slow_poll()
        next_slow = time.monotonic() + 1.0
    time.sleep(0.01 if (a.get("owner_key") and t_assign is None) else 0.05)

if t_done is None:
    res["error"] = "offsets did not reach %d (%d stored; child %s)" % (
        a["events"], s, "exited %s" % child.returncode if rusage else "timed out")
    if rusage is None:
        child.terminate()
        try:
            child.wait(10)
        except subprocess.TimeoutExpired:
            child.kill()
        reap(True)
else:
    # Caught up: what the consumer sends from now on (smm-processor: its ticks and alert
    # relay polls while idle, then its shutdown flush and tick) is counted apart.
    evalsha_at_done = int(r.info("commandstats").get("cmdstat_evalsha", {}).get("calls", 0))
    slow_poll()
    slow_state["phase2_from"] = slow_state["last_id"]
    def wait_exit(secs):
        global next_slow
        end = time.monotonic() + secs
        while not reap(False) and time.monotonic() < end:
            time.sleep(0.05)
            if time.monotonic() >= next_slow:
                slow_poll()
                next_slow = time.monotonic() + 1.0
        return rusage is not None
    if a["stop_after_s"] > 0:
        # smm-processor keeps ticking while idle; SIGTERM then makes it flush, run its
        # shutdown tick and exit, as a deployment stops it.
        if wait_exit(a["stop_after_s"]):
            res["note"] = "exited by itself before SIGTERM"
        else:
            child.terminate()
    if not wait_exit(a["exit_wait"]):
        child.kill()
        res["note"] = "did not exit within %d s; killed" % a["exit_wait"]
        reap(True)
    res["ok"] = True
os.unlink(a["pidfile"])
t_exit = time.monotonic()
cpu1 = r.info("cpu")
slow_poll()
r.slowlog_reset()  # as empty as at mem0
mem1 = r.info("memory")["used_memory"]
dbsize = r.dbsize()

# EVALSHA calls after catching up that took >= slowlog_us, with their script mode.
p2 = slow_state["phase2_from"]
idle_calls = [[mode, ms] for i, ms, name, mode in slow_state["calls"]
              if p2 is not None and i > p2 and name == "EVALSHA"]
slow = sorted(([ms, name, mode] for i, ms, name, mode in slow_state["calls"]),
              key=lambda x: -x[0])
res["slowlog_lost"] = slow_state["lost"]
res["slow_inner_ge10"] = slow_state["inner_ge10"]
res["slow_max_ms"] = slow[0][0] if slow else 0.0
res["slow_max_cmd"] = (slow[0][1] + (" " + slow[0][2] if slow[0][2] else "")) if slow else "-"
lat_max = max([float(e[3]) for e in r.execute_command("LATENCY", "LATEST")
               if e[0] in (b"command", "command")] or [0.0])
if lat_max > res["slow_max_ms"] + 1.0:  # an EXEC (whole ms), longer than any one command
    res["slow_max_ms"] = lat_max
    res["slow_max_cmd"] = "MULTI/EXEC"
res["slow_ge10"] = sum(1 for x in slow if x[0] >= 10.0)
res["slow_ge1"] = len(slow)
res["slow_top"] = slow[:10]
res["busy_replies"] = busy["replies"]
res["busy_max_wait_s"] = busy["s"]
res["idle_s"] = (t_exit - t_done) if t_done else None
res["idle_calls"] = idle_calls
res["idle_ticks_slow"] = sum(1 for m, _ in idle_calls if m == "tick")
stats = r.info("commandstats")
if evalsha_at_done is not None:
    res["idle_evalsha"] = (int(stats.get("cmdstat_evalsha", {}).get("calls", 0))
                           - evalsha_at_done)
cmds = {}
for k, v in stats.items():
    name = k[len("cmdstat_"):] if k.startswith("cmdstat_") else k
    cmds[name] = {"calls": int(v["calls"]), "usec": int(v["usec"])}
for name, n in own.items():
    if name in cmds:
        cmds[name]["calls"] -= n
        if cmds[name]["calls"] <= 0:
            del cmds[name]
# Excluded: the harness's own CONFIG RESETSTAT and INFO calls, and the connection
# handshake of redis-py (HELLO, CLIENT SETINFO) when a client sends it; everything the
# consumer sends, EVALSHA and each command its script runs, is counted.
excluded = {"config|resetstat", "config|set", "info", "hello", "client|setinfo", "dbsize",
            "slowlog|get", "slowlog|reset"}
res["excluded"] = {k: cmds.pop(k)["calls"] for k in list(cmds) if k in excluded}
res["commands"] = cmds
res["calls"] = sum(v["calls"] for v in cmds.values())
res["exit"] = child.returncode
res["span_launch"] = (t_done - t0) if t_done else None
res["span_assign"] = (t_done - t_assign) if (t_done and t_assign) else None
res["span_first_flush"] = (t_done - t_first) if (t_done and t_first) else None
res["maxrss_kb"] = rusage.ru_maxrss if rusage else None
res["cpu_s"] = (rusage.ru_utime + rusage.ru_stime) if rusage else None
res["redis_cpu_s"] = (cpu1["used_cpu_user"] + cpu1["used_cpu_sys"]
                      - cpu0["used_cpu_user"] - cpu0["used_cpu_sys"])
# Redis 7 also reports the main thread alone (no I/O threads, no lazy-free background
# threads): the thread that runs commands and scripts, the one a slow call blocks.
if "used_cpu_user_main_thread" in cpu1:
    res["redis_cpu_main_s"] = (cpu1["used_cpu_user_main_thread"]
                               + cpu1["used_cpu_sys_main_thread"]
                               - cpu0["used_cpu_user_main_thread"]
                               - cpu0["used_cpu_sys_main_thread"])
res["redis_used_memory"] = mem1
res["redis_used_memory_delta"] = mem1 - mem0
res["dbsize"] = dbsize
json.dump(res, open(a["out"], "w"))
sys.exit(0 if res["ok"] else 1)
PYEOF

# ---- services ----
PORT=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
redis-server --bind 127.0.0.1 --port "$PORT" --save '' --appendonly no --dir "$TMP" \
    --logfile "$TMP/redis.log" --daemonize no --protected-mode yes &
PIDS+=("$!")
for _ in $(seq 100); do
    redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
    sleep 0.05
done
redis-cli -p "$PORT" ping >/dev/null 2>&1 || die "redis-server did not start (see $TMP/redis.log)"

TOPIC_ARGS=()
for r in $(seq "$ROUNDS"); do
    TOPIC_ARGS+=(--topic "bench-$r:$PARTITIONS")
done
"$MOCK" "${TOPIC_ARGS[@]}" >"$TMP/mock.bs" 2>"$TMP/mock.err" &
PIDS+=("$!")
for _ in $(seq 100); do
    [ -s "$TMP/mock.bs" ] && break
    sleep 0.1
done
BOOT=$(head -1 "$TMP/mock.bs" 2>/dev/null)
[ -n "$BOOT" ] || die "smm-mock-kafka did not start (see $TMP/mock.err)"
case "$BOOT" in 127.0.0.1:* | localhost:*) ;; *) die "mock broker is not on loopback: $BOOT" ;; esac
log "redis-server on 127.0.0.1:$PORT, mock Kafka at $BOOT, $EVENTS events x $ROUNDS round(s), $PARTITIONS partitions"

# Generous bounds: 60 s plus 1 s per 2,000 events (a processor at 2k events/s would fail).
STEP_TIMEOUT=$((60 + EVENTS / 2000))
# High cardinality: 1 s per 500 events (Redis' scripts run for seconds there).
[ "$HIGH_CARD" = 0 ] || STEP_TIMEOUT=$((60 + EVENTS / 500))
GEN_X=(-X "compression.type=$COMPRESSION")
[ "$KEYED" = 1 ] || GEN_X+=(-X partitioner=random)
# The stream's flags, shared by the producer and the distinct-post count below.
GEN_STREAM=(--count "$EVENTS" --contents "$CONTENTS" --zipf "$ZIPF" --accounts "$ACCOUNTS"
    --users "$USERS" --user-zipf "$USER_ZIPF" --seed "$SEED" --span-ms 120000
    ${FAMILY_ARGS[@]+"${FAMILY_ARGS[@]}"} ${GEN_ARGS[@]+"${GEN_ARGS[@]}"})

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
RESULTS=$TMP/rounds.jsonl
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
    TOPIC=bench-$r
    START_MS=$(($(date +%s%3N) - 120000))
    log "round $r: producing $EVENTS events into $TOPIC"
    run_bg "$STEP_TIMEOUT" "$TMP/gen-$r.log" "$GEN" --brokers "$BOOT" --topic "$TOPIC" \
        "${GEN_STREAM[@]}" --start-ms "$START_MS" --quiet "${GEN_X[@]}" ||
        die "smm-gen failed: $(tail -3 "$TMP/gen-$r.log")"
    # Distinct posts of the stream: the same flags write the same events to stdout.
    run_bg "$STEP_TIMEOUT" "$TMP/posts-$r.log" bash -c \
        'set -o pipefail; "$@" | grep -o "\"content_id\":\"[^\"]*\"" | sort -u | wc -l' _ \
        "$GEN" --stdout "${GEN_STREAM[@]}" --start-ms "$START_MS" --quiet ||
        die "counting the distinct posts failed: $(tail -3 "$TMP/posts-$r.log")"
    run_bg 60 "$TMP/wm-$r.log" "$RAW" -b "$BOOT" -t "$TOPIC" --watermarks ||
        die "watermark query failed: $(tail -3 "$TMP/wm-$r.log")"
    read -r _ _ wm_parts _ wm_low _ wm_high _ wm_nzlow _ wm_max \
        <<<"$(grep '^watermarks:' "$TMP/wm-$r.log")"
    if [ "$wm_low" != 0 ] || [ "$wm_high" != "$EVENTS" ] || [ "$wm_nzlow" != 0 ]; then
        die "the mock broker dropped data in $TOPIC: low sum $wm_low, high sum $wm_high (want $EVENTS), largest partition $wm_max; use more --partitions (or no --keyed)"
    fi
    log "round $r: watermarks ok ($wm_parts partitions, sum of highs $wm_high, largest $wm_max)"

    log "round $r: (a) raw librdkafka consume"
    run_bg "$STEP_TIMEOUT" "$TMP/raw-$r.log" "$RAW" -b "$BOOT" -t "$TOPIC" -n "$EVENTS" \
        -g "bench-raw-$r-$$" --timeout-ms $((STEP_TIMEOUT * 1000 - 5000)) ||
        die "smm-raw-consume failed: $(tail -3 "$TMP/raw-$r.log")"

    log "round $r: (b) smm-processor into Redis"
    HARGS=$(printf '{"port":%d,"events":%d,"partitions":%d,"timeout":%d,"stop_after_s":%d,"exit_wait":60,"slowlog_us":%d,"owner_key":"smm:owner","offsets_key":"smm:offsets","log":"%s","pidfile":"%s","out":"%s"}' \
        "$PORT" "$EVENTS" "$PARTITIONS" "$STEP_TIMEOUT" "$IDLE_S" "$SLOWLOG_US" \
        "$TMP/smm-$r.log" "$TMP/smm-$r.childpid" "$TMP/smm-$r.json")
    run_bg $((STEP_TIMEOUT + 120)) "$TMP/harness-smm-$r.log" "$PY" "$TMP/harness.py" "$HARGS" \
        "$PROC" -b "$BOOT" -t "$TOPIC" -r "127.0.0.1:$PORT" -s "group_id=bench-smm-$r-$$" -s http.port=0 \
        -s "flush.interval_ms=$FLUSH_MS" ${SMM_SET[@]+"${SMM_SET[@]}"} ||
        die "smm-processor step failed: $(tail -3 "$TMP/harness-smm-$r.log") $(tail -3 "$TMP/smm-$r.log")
$(partial "$TMP/smm-$r.json")"
    SMM_MSGS=$(redis-cli -p "$PORT" hget smm:stats messages)
    [ "$SMM_MSGS" = "$EVENTS" ] || die "smm:stats messages = $SMM_MSGS, want $EVENTS"

    if [ "$PYTHON_RUN" = 1 ]; then
        log "round $r: (c) Python baseline into Redis"
        HARGS=$(printf '{"port":%d,"events":%d,"partitions":%d,"timeout":%d,"stop_after_s":0,"exit_wait":30,"slowlog_us":%d,"owner_key":"","offsets_key":"py:offsets","log":"%s","pidfile":"%s","out":"%s"}' \
            "$PORT" "$EVENTS" "$PARTITIONS" "$STEP_TIMEOUT" "$SLOWLOG_US" \
            "$TMP/py-$r.log" "$TMP/py-$r.childpid" "$TMP/py-$r.json")
        run_bg $((STEP_TIMEOUT + 60)) "$TMP/harness-py-$r.log" "$PY" "$TMP/harness.py" "$HARGS" \
            "$PY" "$BENCH_DIR/python_baseline.py" -b "$BOOT" -t "$TOPIC" -n "$EVENTS" \
            -g "bench-py-$r-$$" --redis-port "$PORT" --flush-ms "$FLUSH_MS" \
            --timeout-s "$STEP_TIMEOUT" ||
            die "python baseline failed: $(tail -3 "$TMP/harness-py-$r.log") $(tail -3 "$TMP/py-$r.log")"
    fi
    "$PY" - "$r" "$TMP" "$PYTHON_RUN" >>"$RESULTS" <<'PYEOF'
import json, re, sys
r, tmp, py = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
def num(line, label):
    m = re.search(label + r" ([0-9.]+) s = ([0-9]+) msg/s", line)
    return (float(m.group(1)), float(m.group(2))) if m else (None, None)
raw = open("%s/raw-%s.log" % (tmp, r)).read()
raw_line = [l for l in raw.splitlines() if l.startswith("raw:")][0]
n = int(re.search(r"raw: (\d+) msgs", raw_line).group(1))
row = {"round": int(r), "events": n}
row["raw_s"], row["raw_rate"] = num(raw_line, "from assignment")
row["raw_launch_s"], row["raw_launch_rate"] = num(raw_line, "from start")
row["raw_cpu_rate"] = float(re.search(r"= ([0-9]+) msg/cpu-s", raw_line).group(1))
s = json.load(open("%s/smm-%s.json" % (tmp, r)))
row["smm_s"] = s["span_assign"]
row["smm_rate"] = n / s["span_assign"]
row["smm_launch_rate"] = n / s["span_launch"]
row["smm_cpu_rate"] = n / s["cpu_s"]
row["smm_rss_mb"] = s["maxrss_kb"] / 1024.0
row["smm_cmds_per_event"] = s["calls"] / n
row["smm_commands"] = s["commands"]
row["smm_excluded"] = s["excluded"]
row["redis_cpu_s_smm"] = s["redis_cpu_s"]
row["redis_us_all_smm"] = s["redis_cpu_s"] * 1e6 / n
if s.get("redis_cpu_main_s") is not None:
    row["redis_us_main_smm"] = s["redis_cpu_main_s"] * 1e6 / n
row["redis_used_memory_mb"] = s["redis_used_memory"] / 1048576.0
posts = int(open("%s/posts-%s.log" % (tmp, r)).read().split()[-1])
row["distinct_posts"] = posts
row["mem_delta_mb"] = s["redis_used_memory_delta"] / 1048576.0
row["mem_per_post_b"] = s["redis_used_memory_delta"] / posts if posts else None
row["mem_per_event_b"] = s["redis_used_memory_delta"] / n
row["dbsize"] = s["dbsize"]
for k in ("busy_replies", "busy_max_wait_s", "slow_max_ms", "slow_max_cmd", "slow_ge10", "slow_ge1", "slowlog_lost",
          "slow_top", "slow_inner_ge10", "idle_s", "idle_evalsha", "idle_ticks_slow", "idle_calls"):
    row["smm_" + k] = s.get(k)
row["ratio_smm_raw"] = row["smm_rate"] / row["raw_rate"]
if py:
    p = json.load(open("%s/py-%s.json" % (tmp, r)))
    pl = [l for l in open("%s/py-%s.log" % (tmp, r)).read().splitlines() if l.startswith("python:")][0]
    row["py_s"], row["py_rate"] = num(pl, "from assignment")
    row["py_launch_rate"] = n / p["span_launch"]
    row["py_cpu_rate"] = n / p["cpu_s"]
    row["py_rss_mb"] = p["maxrss_kb"] / 1024.0
    row["py_cmds_per_event"] = p["calls"] / n
    row["redis_cpu_s_py"] = p["redis_cpu_s"]
    row["redis_us_all_py"] = p["redis_cpu_s"] * 1e6 / n
    if p.get("redis_cpu_main_s") is not None:
        row["redis_us_main_py"] = p["redis_cpu_main_s"] * 1e6 / n
    row["py_slow_max_ms"] = p.get("slow_max_ms")
    row["ratio_smm_py"] = row["smm_rate"] / row["py_rate"]
print(json.dumps(row))
PYEOF
    tail -1 "$RESULTS" | "$PY" -c '
import json, sys
x = json.loads(sys.stdin.read())
f = lambda k, fmt: (fmt % x[k]) if x.get(k) is not None else "-"
print("round %d: raw %s msg/s | smm %s msg/s (ratio %s) | python %s msg/s (smm/python %s) | "
      "Redis %s us/event (main thread; python %s) | %s Redis cmds/event | longest Redis call "
      "%s ms (%s), %s >= 10 ms | Redis +%s MB, %s keys | smm peak RSS %s MB, %s msg/CPU-s | "
      "%s EVALSHA after catching up" % (x["round"], f("raw_rate", "%.0f"),
      f("smm_rate", "%.0f"), f("ratio_smm_raw", "%.3f"), f("py_rate", "%.0f"),
      f("ratio_smm_py", "%.2f"), f("redis_us_main_smm", "%.2f"), f("redis_us_main_py", "%.2f"),
      f("smm_cmds_per_event", "%.4f"), f("smm_slow_max_ms", "%.1f"), x.get("smm_slow_max_cmd"),
      f("smm_slow_ge10", "%d"), f("mem_delta_mb", "%.1f"), f("dbsize", "%d"),
      f("smm_rss_mb", "%.1f"), f("smm_cpu_rate", "%.0f"), f("smm_idle_evalsha", "%d")))'
done

# ---- summary ----
MACHINE_CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MACHINE_RAM=$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)
V_RDKAFKA=$(pkg-config --modversion rdkafka 2>/dev/null || echo '?')
V_REDIS=$(redis-server --version | sed -n 's/.*v=\([^ ]*\).*/\1/p')
V_PY=$("$PY" -c 'import sys, confluent_kafka, redis; print("%s (confluent-kafka %s with librdkafka %s, redis-py %s)" % (sys.version.split()[0], confluent_kafka.__version__, confluent_kafka.libversion()[0], redis.__version__))')
V_SMM=$("$PROC" --version 2>/dev/null | head -1)
# What was measured: the source tree the build directory was configured from.
SRC_DIR=$(sed -n 's/^CMAKE_HOME_DIRECTORY:INTERNAL=//p' "$BUILD/CMakeCache.txt" 2>/dev/null)
SRC_DIR=${SRC_DIR:-$REPO}
if V_GIT=$(git -C "$SRC_DIR" rev-parse --short HEAD 2>/dev/null); then
    V_GIT="commit $V_GIT"
    if [ -n "$(git -C "$SRC_DIR" status --porcelain -- processor connectors metrics tools 2>/dev/null)" ]; then
        V_GIT="$V_GIT + uncommitted changes in processor/ connectors/ metrics/ tools/"
    fi
else
    V_GIT="source $SRC_DIR (not a git checkout)"
fi
if [ -n "$(find "$SRC_DIR/processor" "$SRC_DIR/connectors" "$SRC_DIR/metrics" -newer "$PROC" -type f 2>/dev/null | head -1)" ]; then
    V_GIT="$V_GIT; WARNING: smm-processor is older than its sources"
fi
export SMM_SET_DESC="${SMM_SET[*]+${SMM_SET[*]}}"
export GEN_ARGS_DESC="${GEN_ARGS[*]+${GEN_ARGS[*]}}"
export FAMILY_ARGS_DESC="${FAMILY_ARGS[*]+${FAMILY_ARGS[*]}}"
export MACHINE_CPU MACHINE_RAM V_RDKAFKA V_REDIS V_PY V_SMM V_GIT CMDLINE EVENTS ROUNDS \
    PARTITIONS KEYED SEED CONTENTS ZIPF ACCOUNTS USERS USER_ZIPF COMPRESSION FLUSH_MS CHECK \
    PYTHON_RUN HIGH_CARD IDLE_S SLOWLOG_US
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)
MACHINE_NPROC=$(nproc)
MACHINE_KERNEL=$(uname -r)
RUN_DATE=$(date -u '+%Y-%m-%d %H:%M UTC')
export LOAD_START LOAD_END MACHINE_NPROC MACHINE_KERNEL RUN_DATE
rc=0
"$PY" - "$RESULTS" "$OUT" <<'PYEOF' || rc=$?
import json, os, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
e = os.environ
py = e["PYTHON_RUN"] == "1"
def stat(k):
    v = [x[k] for x in rows if x.get(k) is not None]
    if not v:
        return None
    return statistics.median(v), min(v), max(v)
def fmt(k, f):
    s = stat(k)
    if s is None:
        return "-"
    if len(rows) == 1:
        return f % s[0]
    return (f + " (" + f + "-" + f + ")") % s
metrics = [
    ("raw librdkafka consume, msg/s", "raw_rate", "%.0f"),
    ("smm-processor end to end into Redis, msg/s", "smm_rate", "%.0f"),
    ("ratio smm / raw", "ratio_smm_raw", "%.3f"),
]
if py:
    metrics += [("Python baseline (subset of the job), msg/s", "py_rate", "%.0f"),
                ("ratio smm / python", "ratio_smm_py", "%.2f")]
metrics += [
    ("**Redis CPU per event (smm), main thread, µs**", "redis_us_main_smm", "%.2f"),
    ("-- Redis CPU per event (smm), all threads, µs", "redis_us_all_smm", "%.2f"),
    ("Redis commands per event (smm)", "smm_cmds_per_event", "%.4f"),
    ("longest Redis call (SLOWLOG; a MULTI/EXEC whole: LATENCY), ms", "smm_slow_max_ms", "%.1f"),
    ("Redis calls >= 10 ms (SLOWLOG)", "smm_slow_ge10", "%d"),
    ("-- Redis calls >= 1 ms (SLOWLOG)", "smm_slow_ge1", "%d"),
    ("-- commands run by scripts >= 10 ms (inside those calls)", "smm_slow_inner_ge10", "%d"),
    ("-- BUSY replies to the harness's polling (a script ran > 5 s)", "smm_busy_replies", "%d"),
    ("Redis used_memory growth during the smm step, MB", "mem_delta_mb", "%.1f"),
    ("-- per distinct post, bytes", "mem_per_post_b", "%.0f"),
    ("-- per event, bytes", "mem_per_event_b", "%.0f"),
    ("-- distinct posts in the stream", "distinct_posts", "%d"),
    ("Redis keys after the smm step (DBSIZE)", "dbsize", "%d"),
    ("peak RSS of smm-processor, MB", "smm_rss_mb", "%.1f"),
    ("msgs per CPU-second of smm-processor (its process only)", "smm_cpu_rate", "%.0f"),
    ("-- seconds smm-processor ran after catching up (idle, ticking)", "smm_idle_s", "%.1f"),
    ("-- EVALSHA calls in that time (ticks, alert relay polls, shutdown)", "smm_idle_evalsha",
     "%d"),
    ("-- from launch (group join included): raw msg/s", "raw_launch_rate", "%.0f"),
    ("-- from launch: smm msg/s", "smm_launch_rate", "%.0f"),
    ("-- msgs per CPU-second: raw", "raw_cpu_rate", "%.0f"),
    ("-- redis-server CPU seconds during the smm step", "redis_cpu_s_smm", "%.2f"),
]
if py:
    metrics += [
        ("-- from launch: python msg/s", "py_launch_rate", "%.0f"),
        ("-- msgs per CPU-second: python (its process only)", "py_cpu_rate", "%.0f"),
        ("-- redis-server CPU seconds during the python step", "redis_cpu_s_py", "%.2f"),
        ("-- Redis CPU per event (python), main thread, µs", "redis_us_main_py", "%.2f"),
        ("-- Redis CPU per event (python), all threads, µs", "redis_us_all_py", "%.2f"),
        ("-- longest Redis call (python), ms", "py_slow_max_ms", "%.1f"),
        ("-- Redis commands per event (python)", "py_cmds_per_event", "%.4f"),
        ("-- peak RSS of python, MB", "py_rss_mb", "%.1f"),
    ]
n = rows[0]["events"]
floors = []
def floor(name, k, ok):
    s = stat(k)
    if s is None:
        return
    floors.append((name, "%.4g" % s[0], "PASS" if ok(s[0]) else "MISS"))
floor("ratio smm/raw >= 0.15", "ratio_smm_raw", lambda v: v >= 0.15)
floor("ratio smm/python >= 2.5", "ratio_smm_py", lambda v: v >= 2.5)
floor("Redis CPU per event (main thread) <= 2.5 µs", "redis_us_main_smm", lambda v: v <= 2.5)
floor("processor msgs per CPU-second >= 400k", "smm_cpu_rate", lambda v: v >= 400000)
floor("peak RSS <= 200 MB" + ("" if n >= 1000000 else " (floor is set at 1M events)"),
      "smm_rss_mb", lambda v: v <= 200)

# Per-command breakdown of the median round by commands/event.
mid = sorted(rows, key=lambda x: x["smm_cmds_per_event"])[len(rows) // 2]
cmds = sorted(mid["smm_commands"].items(), key=lambda kv: -kv[1]["calls"])

L = []
L.append("# smm-stream benchmark results\n")
L.append("Generated by `%s` on %s. Medians over %d round(s)%s.\n"
         % (e["CMDLINE"], e["RUN_DATE"], len(rows), ", (min-max) in brackets" if len(rows) > 1 else ""))
L.append("- **Machine:** %s vCPU, %s, %s RAM, Linux %s; Kafka = smm-mock-kafka (librdkafka's mock "
         "cluster, 1 broker) and redis-server on the same machine, loopback only; load average "
         "(1, 5, 15 min) %s at the start, %s at the end."
         % (e["MACHINE_NPROC"], e["MACHINE_CPU"], e["MACHINE_RAM"], e["MACHINE_KERNEL"],
            e["LOAD_START"], e["LOAD_END"]))
L.append("- **Versions:** %s (%s); librdkafka %s; redis-server %s; Python %s."
         % (e["V_SMM"], e["V_GIT"], e["V_RDKAFKA"], e["V_REDIS"], e["V_PY"]))
L.append("- **Workload:** %d events per round (%ssmm-gen --seed %s --contents %s --zipf %s "
         "--accounts %s --users %s --user-zipf %s%s, timestamps over the 2 min before each "
         "round), %s partitions, %s, compression.type=%s; a fresh topic per round, read by "
         "all three consumers; flush.interval_ms=%s for smm-processor and the Python "
         "baseline; smm-processor stopped with SIGTERM %s s after catching up (it ticks every "
         "second meanwhile)."
         % (n, "high cardinality: " if e["HIGH_CARD"] == "1" else "", e["SEED"],
            e["CONTENTS"], e["ZIPF"], e["ACCOUNTS"], e["USERS"], e["USER_ZIPF"],
            (" " + e["FAMILY_ARGS_DESC"]) if e.get("FAMILY_ARGS_DESC") else "",
            e["PARTITIONS"], "keyed by content_id" if e["KEYED"] == "1" else "partitioner=random",
            e["COMPRESSION"], e["FLUSH_MS"], e["IDLE_S"]))
L.append("- **Redis figures:** CPU from INFO cpu before and after each step (main thread = "
         "`used_cpu_*_main_thread`, the thread that runs commands and scripts; all threads = "
         "`used_cpu_sys` + `used_cpu_user`), the step ends when the consumer has exited; "
         "SLOWLOG (threshold %s µs) measures execution time only, not time queued behind "
         "other clients; a call is a command a client sent (an EVALSHA with all its script "
         "did), the commands a script runs are counted apart; SLOWLOG logs the commands of a "
         "MULTI/EXEC one by one, so the longest call is also taken from the latency monitor "
         "(`LATENCY LATEST`, event `command`, whole ms), which times an EXEC whole, and the "
         "calls >= 10 ms count an EXEC by its EVALSHA; memory = `used_memory` once the consumer has exited minus right after the step's FLUSHALL.\n"
         % e["SLOWLOG_US"])
if e.get("GEN_ARGS_DESC"):
    L.append("- **Extra smm-gen arguments:** `%s`\n" % e["GEN_ARGS_DESC"])
if e.get("SMM_SET_DESC"):
    L.append("- **Non-default smm-processor settings (what-if run):** `%s`\n" % e["SMM_SET_DESC"])
L.append("| Metric | Median%s |" % (" (min-max)" if len(rows) > 1 else ""))
L.append("|---|---|")
for name, k, f in metrics:
    L.append("| %s | %s |" % (name, fmt(k, f)))
L.append("")
L.append("| Target | Median | |")
L.append("|---|---|---|")
for name, v, ok in floors:
    L.append("| %s | %s | %s |" % (name, v, ok))
L.append("")
L.append("Per round:\n")
hdr = "| Round | raw msg/s | smm msg/s | smm/raw | "
hdr += "python msg/s | smm/python | " if py else ""
hdr += "Redis µs/event (main) | cmds/event | longest call ms | calls >= 10 ms | "
hdr += "Redis MB | keys | smm RSS MB | smm CPU msg/s | Redis CPU s |"
L.append(hdr)
L.append("|" + "---|" * (hdr.count("|") - 1))
opt = lambda x, k, f: (f % x[k]) if x.get(k) is not None else "-"
for x in rows:
    c = ["%d" % x["round"], "%.0f" % x["raw_rate"], "%.0f" % x["smm_rate"],
         "%.3f" % x["ratio_smm_raw"]]
    if py:
        c += ["%.0f" % x["py_rate"], "%.2f" % x["ratio_smm_py"]]
    c += [opt(x, "redis_us_main_smm", "%.2f"), "%.4f" % x["smm_cmds_per_event"],
          "%.1f (%s)" % (x["smm_slow_max_ms"], x["smm_slow_max_cmd"]), "%d" % x["smm_slow_ge10"],
          "%.1f" % x["mem_delta_mb"], "%d" % x["dbsize"],
          "%.1f" % x["smm_rss_mb"], "%.0f" % x["smm_cpu_rate"], "%.2f" % x["redis_cpu_s_smm"]]
    L.append("| " + " | ".join(c) + " |")
L.append("")
L.append("Longest Redis calls of smm-processor, round %d (SLOWLOG, ms, command and script "
         "mode)%s: %s\n" % (mid["round"],
         "; %d entries were pushed out of the log before they were read, so the counts are "
         "lower bounds" % mid["smm_slowlog_lost"] if mid.get("smm_slowlog_lost") else "",
         ", ".join("%.1f %s%s" % (ms, name, (" " + mode) if mode else "")
                   for ms, name, mode in (mid.get("smm_slow_top") or [])) or "none"))
L.append("After catching up, smm-processor ran %s s more (its ticks, alert relay polls, "
         "then its shutdown flush and tick) and made %s EVALSHA call(s); those of >= %s µs, "
         "oldest first (script mode or key, ms): %s.\n"
         % (opt(mid, "smm_idle_s", "%.1f"), opt(mid, "smm_idle_evalsha", "%d"), e["SLOWLOG_US"],
            ", ".join("%s %.1f" % (m, ms) for m, ms in (mid.get("smm_idle_calls") or []))
            or "none"))
L.append("Redis commands of smm-processor, round %d (calls, calls/event, total usec in Redis; "
         "commands run by the Lua script are counted, and so is the EVALSHA that ran them):\n"
         % mid["round"])
L.append("| Command | Calls | Per event | usec |")
L.append("|---|---|---|---|")
for name, v in cmds:
    L.append("| %s | %d | %.4f | %d |" % (name, v["calls"], v["calls"] / n, v["usec"]))
L.append("")
L.append("Excluded from the count: the harness's own `CONFIG RESETSTAT`, `CONFIG SET`, `INFO`, "
         "`SLOWLOG` and `DBSIZE`, and its polling `HLEN smm:owner` / `HVALS smm:offsets` "
         "(subtracted by exact count).")
L.append("Rates are N / (time from the consumer's partition assignment to its last event): for "
         "raw, to the N-th message; for smm-processor and Python, until Redis holds all N "
         "offsets (polled every 50 ms). The mock's group join (~3 s) is excluded, as it "
         "would dominate short runs; the from-launch figures include it.")
text = "\n".join(L) + "\n"
open(sys.argv[2], "w").write(text)
print()
print(text)
if e["CHECK"] == "1" and any(ok == "MISS" for _, _, ok in floors):
    sys.exit(3)
PYEOF
log "summary written to $OUT"
exit "$rc"
