#!/usr/bin/env bash
# scripts/demo.sh - the whole product on embedded defaults, from a fresh Debian 12 machine.
#
# Installs what is missing, builds, starts a private redis-server and an embedded Kafka
# (librdkafka's mock cluster: real protocol over TCP on 127.0.0.1, no Java), streams
# realistic generated events (1% malformed) through smm-processor and shows the metrics
# moving, read back from Redis, under the processor's live --top view when run on a
# terminal. Stops after --seconds N (default: until Ctrl-C).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=0
rate=3000
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) seconds=$2; shift 2 ;;
    --rate) rate=$2; shift 2 ;;
    -h|--help)
      echo "usage: scripts/demo.sh [--seconds N] [--rate EVENTS_PER_S]"; exit 0 ;;
    *) echo "demo.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

scripts/install-deps.sh
echo "Building..."
B=${SMM_BUILD_DIR:-build}
# The processor refuses unknown SMM_* environment variables: keep ours out of its way.
unset SMM_BUILD_DIR
SMM_BUILD_DIR=$B scripts/build.sh >/dev/null

work=$(mktemp -d /tmp/smm-demo.XXXXXX)
pids=()
cleanup() {
  # Newest first: generator and processor (final flush) stop before Kafka and Redis.
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    kill "${pids[$i]}" 2>/dev/null || true
    wait "${pids[$i]}" 2>/dev/null || true
  done
  echo "Logs kept in $work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$work" \
  > "$work/redis.log" 2>&1 &
pids+=($!)
"$B/tools/smm-mock-kafka" --topic smm.events:8 --topic smm.events.dlq:1 --quiet \
  > "$work/bootstrap" 2> "$work/kafka.log" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/bootstrap" ] && redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
brokers=$(head -1 "$work/bootstrap")
# The dashboard on 8080 when it is free, else on any free port.
http_port=$(python3 -c 'import socket
s=socket.socket()
try: s.bind(("127.0.0.1",8080))
except OSError: s.bind(("127.0.0.1",0))
print(s.getsockname()[1])')

# On a terminal the processor's --top view owns the top rows of the screen (events/s, dead
# letters by reason, flush latency, Redis, lag per partition) and the account table below
# scrolls under it; only errors are logged there (per-message dead-letter warnings would
# drown the table). Otherwise the processor logs to a file and its plain "top:" line is shown.
tty=0
[ -t 1 ] && [ -t 2 ] && [ "${TERM:-dumb}" != dumb ] && tty=1
# The competitor sets that match the generator's mentions (share of voice).
sov=()
while read -r line; do sov+=(--set "$line"); done < <("$B/tools/smm-gen" --print-config)
if [ "$tty" = 1 ]; then
  "$B/processor/smm-processor" "${sov[@]}" --brokers "$brokers" --topic smm.events --redis "127.0.0.1:$port" \
    --set kafka.session.timeout.ms=6000 --set http.port="$http_port" --set log.level=error --top > "$work/processor.log" &
else
  "$B/processor/smm-processor" "${sov[@]}" --brokers "$brokers" --topic smm.events --redis "127.0.0.1:$port" \
    --set kafka.session.timeout.ms=6000 --set http.port="$http_port" --top > "$work/processor.log" 2>&1 &
fi
pids+=($!)
"$B/tools/smm-gen" --brokers "$brokers" --topic smm.events --rate "$rate" --count 0 \
  --contents 20000 --accounts 50 --malformed-rate 0.01 --families all --reply-median-s 20 \
  --quiet > "$work/gen.log" 2>&1 &
pids+=($!)

cat <<MSG
Kafka (mock) at $brokers, Redis at 127.0.0.1:$port, generator at $rate events/s.
Dashboard: http://127.0.0.1:$http_port/   (metrics: /metrics, API: /api/v1/summary)
Read the same values yourself:  redis-cli -p $port HGETALL smm:stats
                                redis-cli -p $port FCALL smm_mget 0 smm: 5m '' impression,engagement a:acct-1
MSG
start=$(date +%s)
r() { redis-cli -p "$port" "$@" 2>/dev/null; }
# mget WINDOW M1,M2,... ENTITY...: the window's values in one line, through the Function
# library smm (docs/redis-keys.md); "-" for a rate or reach that is not defined (nil).
mget() {
  local w=$1 m=$2
  shift 2
  r FCALL smm_mget 0 smm: "$w" '' "$m" "$@" | sed 's/^$/-/' | tr '\n' ' '
}
[ "$tty" = 1 ] && sleep 2 # let --top set up its screen first
while :; do
  now=$(date +%s)
  if [ "$seconds" -gt 0 ] && [ $((now - start)) -ge "$seconds" ]; then break; fi
  echo
  echo "smm-stream demo - $(date -u +%H:%M:%S) UTC - $((now - start)) s (Ctrl-C stops)"
  read -r msgs counted dead <<<"$(r HMGET smm:stats messages events_counted dead_letter | tr '\n' ' ')"
  printf 'messages %-10s counted %-10s dead-lettered %-8s\n' "${msgs:-0}" "${counted:-0}" "${dead:-0}"
  printf '%-9s %12s %10s %10s %10s %9s %9s\n' account impressions "impr 5m" "eng 5m" "eng 1h" er_impr reach
  for a in 1 2 3 4 5; do
    read -r li le lr lre <<<"$(mget total impression,engagement,er_impr,reach "a:acct-$a")"
    read -r wi we <<<"$(mget 5m impression,engagement "a:acct-$a")"
    read -r he <<<"$(mget 1h engagement "a:acct-$a")"
    printf '%-9s %12s %10s %10s %10s %9s %9s\n' "acct-$a" "${li:-0}" "${wi:-0}" "${we:-0}" "${he:-0}" "${lr:--}" "${lre:--}"
  done
  read -r th an fm <<<"$(mget 1h threads,answered,frt_ms a:acct-1)"
  read -r m1 mt <<<"$(mget 1h mention 'v:cat-1|acct-1' v:cat-1)"
  awk -v th="${th:-0}" -v an="${an:-0}" -v fm="${fm:-0}" -v m1="${m1:-0}" -v mt="${mt:-0}" 'BEGIN {
    printf "acct-1, 1h: %d threads, %d answered (%.1f%%), mean first response %.1f s; share of voice in cat-1 %.1f%%\n",
      th, an, th ? 100 * an / th : 0, an ? fm / an / 1000 : 0, mt ? 100 * m1 / mt : 0 }'
  if [ "$tty" = 0 ]; then
    echo "processor: $(grep 'top:' "$work/processor.log" | tail -1 | cut -c32-300)"
  fi
  sleep 3
done
