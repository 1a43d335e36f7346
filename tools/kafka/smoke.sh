#!/usr/bin/env bash
# End-to-end smoke test of the real Kafka broker started by tools/kafka/broker.sh, driven by
# kcat (librdkafka, the same library the daemon links). Exits non-zero on any failure.
#
#   tools/kafka/smoke.sh [STATE_DIR]      (default: <repo>/build/kafka-smoke, wiped first)
#
# Checks: metadata; produce/consume; auto-create; gzip really compressed on disk; create-topic
# (8 partitions, idempotent); consumer group (kcat -G) over 8 partitions incl. committed offsets;
# idempotent producer (producer id on disk); SASL_PLAINTEXT/PLAIN good + wrong password;
# status; stop + start on the same data dir (no re-format, data and group offsets survive); stop.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BROKER="$HERE/broker.sh"
STATE=${1:-$ROOT/build/kafka-smoke}

for t in kcat java python3 timeout; do
  command -v "$t" >/dev/null 2>&1 || { echo "smoke: required tool '$t' not found" >&2; exit 1; }
done

PASS=0 FAIL=0
ok()   { PASS=$((PASS + 1)); printf 'ok   %s\n' "$*"; }
bad()  { FAIL=$((FAIL + 1)); printf 'FAIL %s\n' "$*"; }
# check DESC CMD...: run CMD, pass if exit 0
check() { local d=$1; shift; if "$@"; then ok "$d"; else bad "$d"; fi; }
quiet() { "$@" </dev/null >/dev/null; }   # for kcat -L, which ignores -q
fatal() { bad "$*"; summary; exit 1; }
summary() { echo "kafka-smoke: $PASS passed, $FAIL failed"; }
now() { date +%s.%N; }
secs() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$(now)"; }

# alive PID: exists and is not a zombie (the reaper may collect the exited broker a bit later)
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  [ "$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)" != Z ]
}

cleanup() { "$BROKER" stop "$STATE" >/dev/null 2>&1 || true; }
trap cleanup EXIT

# Clean state dir (stop a leftover broker from an earlier run first). Refuse to wipe a
# non-empty dir that is neither an earlier smoke state dir nor a broker state dir.
if [ -d "$STATE" ] && [ -n "$(ls -A "$STATE")" ] && [ ! -f "$STATE/.kafka-smoke" ] \
   && [ ! -f "$STATE/server.properties" ]; then
  echo "smoke: refusing to wipe $STATE (not a kafka state dir)" >&2; exit 1
fi
if [ -d "$STATE" ]; then "$BROKER" stop "$STATE" >&2 || true; fi
rm -rf "$STATE"
mkdir -p "$STATE"
touch "$STATE/.kafka-smoke"

"$BROKER" fetch >&2 || fatal "fetch jars"
CP=$("$BROKER" classpath)
KV=$("$BROKER" version)
echo "# Kafka $KV, $(kcat -V 2>&1 | grep -o 'librdkafka [^ ]*' | head -n1 || true), state $STATE"

SASL_USER=smm-smoke
SASL_PASS=$(python3 -c 'import secrets; print(secrets.token_hex(12))')
export SMM_KAFKA_SASL_USER=$SASL_USER SMM_KAFKA_SASL_PASSWORD=$SASL_PASS

t0=$(now)
OUT=$("$BROKER" start "$STATE") || fatal "broker start"
echo "# first start (format + start + ready): $(secs "$t0") s"
B=$(printf '%s\n' "$OUT" | tail -n1)
S=$(printf '%s\n' "$OUT" | sed -n 's/^sasl=//p')
[[ $B =~ ^127\.0\.0\.1:[0-9]+$ ]] || fatal "bootstrap address on the last line (got '$B')"
ok "start printed bootstrap $B"
[[ $S =~ ^127\.0\.0\.1:[0-9]+$ ]] && ok "start printed sasl=$S" || bad "start printed a sasl= line (got '$S')"
PID=$(cat "$STATE/kafka.pid")
echo "# broker RSS after start: $(( $(ps -o rss= -p "$PID") / 1024 )) MiB"
CID1=$(sed -n 's/^cluster.id=//p' "$STATE/data/meta.properties")

K() { timeout 60 kcat -b "$B" "$@" </dev/null; }
KP() { timeout 60 kcat -b "$B" -P "$@"; }       # producer reads stdin
count() { { K -C -t "$1" -o beginning -e -q -f 'x\n' || true; } | wc -l; }
dump() { java -Xmx128m -Dlog4j2.configurationFile="$STATE/log4j2-tools.properties" \
           -Dlog4j.configuration="file:$STATE/log4j-tools.properties" -cp "$CP" \
           kafka.tools.DumpLogSegments --files "$STATE/data/$1/00000000000000000000.log" 2>/dev/null; }
group() { # group GROUP TOPIC -> prints "partition value" per consumed message
  timeout 90 kcat -b "$B" -G "$1" -X auto.offset.reset=earliest -X session.timeout.ms=6000 \
    -e -q -f '%p %s\n' "$2" </dev/null
}

# 1. metadata round trip
check "metadata (kcat -L)" quiet K -L -m 5

# 2. produce / consume on an auto-created topic
printf 'k1:v1\nk2:v2\n' | KP -t smoke -K: && ok "produce 2 keyed messages (auto-creates 'smoke')" || bad "produce to smoke"
c=$(count smoke); [ "$c" -eq 2 ] && ok "consume 'smoke' from beginning: 2" || bad "consume 'smoke': got $c, want 2"

# 3. gzip: must really be compressed on disk (librdkafka sends tiny batches uncompressed when
#    compression does not shrink them, so use a compressible 200-message batch)
gz_err=$(seq 1 200 | sed 's/^/gz:payload-payload-payload-payload-/' | KP -t smoke -K: -z gzip -X linger.ms=50 2>&1) \
  && ok "gzip produce of 200 messages" || bad "gzip produce: $gz_err"
if printf '%s' "$gz_err" | grep -qi 'compression'; then bad "gzip produce warned: $gz_err"; fi
# sum the record counts of the gzip batches (librdkafka may split the 200 into several batches)
gz=$(dump smoke-0 | awk '/compresscodec: gzip/ { for (i = 1; i < NF; i++) if ($i == "count:") n += $(i + 1) } END { print n + 0 }')
[ "$gz" -eq 200 ] && ok "all 200 gzip messages stored in compresscodec=gzip batches" \
  || bad "gzip batches on disk hold $gz messages, want 200 (compression silently disabled?)"
c=$(count smoke); [ "$c" -eq 202 ] && ok "consume gzip batch back: 202 total" || bad "consume after gzip: got $c, want 202"

# 4. create-topic: 8 partitions, RF 1, idempotent
t1=$(now)
check "create-topic events 8" "$BROKER" create-topic "$B" events 8
echo "# create-topic: $(secs "$t1") s"
check "create-topic events 8 again (idempotent)" "$BROKER" create-topic "$B" events 8
rc=0; "$BROKER" create-topic "$B" events 3 2>/dev/null || rc=$?
[ "$rc" -eq 3 ] && ok "create-topic with another partition count is refused (rc 3)" || bad "create-topic events 3: rc $rc, want 3"
np=$(K -L -t events | grep -c 'partition [0-9]*, leader 1' || true)
[ "$np" -eq 8 ] && ok "metadata shows 8 partitions with leader 1" || bad "events partitions: $np, want 8"

# 5. consumer group over the 8 partitions
seq 1 400 | awk '{print "key" $1 ":val" $1}' | KP -t events -K: && ok "produce 400 keyed messages to 'events'" || bad "produce to events"
t1=$(now)
group smoke-grp events > "$STATE/group1.txt" || true
echo "# first group consume (JoinGroup, creates __consumer_offsets): $(secs "$t1") s"
n=$(wc -l < "$STATE/group1.txt"); parts=$(cut -d' ' -f1 "$STATE/group1.txt" | sort -u | wc -l)
[ "$n" -eq 400 ] && ok "group consume (kcat -G) got 400 messages" || bad "group consume: $n messages, want 400"
[ "$parts" -eq 8 ] && ok "group consume covered all 8 partitions" || bad "group consume: $parts partitions, want 8"
[ "$(cut -d' ' -f2 "$STATE/group1.txt" | sort -u | wc -l)" -eq 400 ] && ok "no duplicates in group consume" || bad "duplicates in group consume"
n=$(group smoke-grp events | wc -l || true)
[ "$n" -eq 0 ] && ok "group re-consume after commit: 0 messages" || bad "group re-consume: $n, want 0 (offsets not committed?)"
printf 'late:after-commit\n' | KP -t events -K: || bad "produce late message"
got=$(group smoke-grp events | cut -d' ' -f2- || true)
[ "$got" = "after-commit" ] && ok "group resumes from committed offsets: exactly the new message" || bad "group resume: got '$got'"

# 6. idempotent producer
idem_err=$(seq 1 100 | sed 's/^/i:idem-/' | KP -t idem -K: -X enable.idempotence=true 2>&1) \
  && ok "idempotent produce (enable.idempotence=true)" || bad "idempotent produce: $idem_err"
c=$(count idem); [ "$c" -eq 100 ] && ok "idempotent messages consumed: 100" || bad "idem: got $c, want 100"
dump idem-0 | grep -Eq 'producerId: [0-9]+ ' && ok "idempotent batches carry a producer id on disk" \
  || bad "no producer id on idempotent batches"

# 7. SASL_PLAINTEXT / PLAIN
sasl() { local mech=$1 pw=$2; shift 2
  timeout 60 kcat -b "$S" -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms="$mech" \
    -X sasl.username="$SASL_USER" -X sasl.password="$pw" "$@"; }
check "SASL PLAIN metadata with the right password" quiet sasl PLAIN "$SASL_PASS" -L -m 10
printf 'sasl:via-sasl\n' | sasl PLAIN "$SASL_PASS" -P -t sasl-topic -K: && ok "SASL PLAIN produce" || bad "SASL PLAIN produce"
c=$(sasl PLAIN "$SASL_PASS" -C -t sasl-topic -o beginning -e -q </dev/null | grep -c via-sasl || true)
[ "$c" -eq 1 ] && ok "SASL PLAIN consume" || bad "SASL PLAIN consume: $c"
if sasl PLAIN "wrong-$SASL_PASS" -L -m 5 </dev/null >/dev/null 2>"$STATE/sasl-wrong.err"; then
  bad "SASL PLAIN with a wrong password was accepted"
elif grep -q 'Authentication failed' "$STATE/sasl-wrong.err"; then
  ok "SASL PLAIN with a wrong password is rejected (Authentication failed)"
else
  bad "SASL PLAIN wrong password failed, but not with an authentication error: $(head -c 300 "$STATE/sasl-wrong.err")"
fi
# SCRAM-SHA-256 is informational only: librdkafka < 2.6.1 fails SCRAM against Kafka 4.x brokers.
if sasl SCRAM-SHA-256 "$SASL_PASS" -L -m 5 </dev/null >/dev/null 2>&1; then
  echo "# info: SCRAM-SHA-256 via librdkafka: works"
else
  echo "# info: SCRAM-SHA-256 via librdkafka: fails (expected for librdkafka < 2.6.1 against Kafka 4.x)"
fi

# 8. status
check "status reports running" quiet "$BROKER" status "$STATE"

# 9. restart on the same data dir
t1=$(now)
"$BROKER" stop "$STATE" >&2 && ok "stop" || bad "stop"
echo "# stop (SIGTERM to exit): $(secs "$t1") s"
! alive "$PID" && ok "broker process gone after stop" || bad "pid $PID still alive after stop"
rc=0; "$BROKER" status "$STATE" >/dev/null || rc=$?
[ "$rc" -eq 3 ] && ok "status reports stopped (rc 3)" || bad "status after stop: rc $rc, want 3"
t1=$(now)
OUT2=$("$BROKER" start "$STATE" 2>"$STATE/restart.err") || { cat "$STATE/restart.err" >&2; fatal "restart"; }
cat "$STATE/restart.err" >&2
echo "# restart (no format): $(secs "$t1") s"
B2=$(printf '%s\n' "$OUT2" | tail -n1)
grep -q 'reusing formatted' "$STATE/restart.err" && ! grep -q 'Formatting' "$STATE/restart.err" \
  && ok "restart did not re-format" || bad "restart re-formatted the data dir"
grep -q 'clean shutdown file was found' "$STATE/server.out" && ok "restart found the clean-shutdown marker (SIGTERM stop was clean)" \
  || bad "restart did not find a clean shutdown marker (log recovery ran)"
[ "$(sed -n 's/^cluster.id=//p' "$STATE/data/meta.properties")" = "$CID1" ] && ok "cluster id unchanged" || bad "cluster id changed"
[ "$B2" = "$B" ] && ok "restart kept the same bootstrap address" || { bad "bootstrap changed $B -> $B2"; B=$B2; }
c=$(count smoke); [ "$c" -eq 202 ] && ok "after restart: 'smoke' still has 202 messages" || bad "after restart: smoke $c, want 202"
c=$(count events); [ "$c" -eq 401 ] && ok "after restart: 'events' still has 401 messages" || bad "after restart: events $c, want 401"
n=$(group smoke-grp events | wc -l || true)
[ "$n" -eq 0 ] && ok "after restart: group offsets survived (0 new messages)" || bad "after restart: group got $n, want 0"
check "after restart: SASL PLAIN still works" quiet sasl PLAIN "$SASL_PASS" -L -m 10
printf 'k:after-restart\n' | KP -t smoke -K: && ok "after restart: produce" || bad "after restart: produce"

# 10. final stop, twice (second is a no-op)
PID=$(cat "$STATE/kafka.pid")
check "final stop" "$BROKER" stop "$STATE"
check "stop when not running is a no-op" "$BROKER" stop "$STATE"
! alive "$PID" && ok "no broker process left" || bad "pid $PID still alive"

summary
[ "$FAIL" -eq 0 ]
