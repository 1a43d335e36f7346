#!/usr/bin/env bash
# Real single-node Apache Kafka broker (KRaft combined mode: broker + controller in one JVM),
# run from Maven Central jars. Loopback only. See docs/kafka-broker.md.
#
#   broker.sh fetch                               resolve the jars into the cache (skipped when cached)
#   broker.sh start DIR [PORT] [CONTROLLER_PORT]  format DIR/data (first time only), start in the
#                                                 background, wait until ready (max 120 s); prints
#                                                 "sasl=127.0.0.1:N" (SASL only) then 127.0.0.1:PORT last
#   broker.sh create-topic BOOTSTRAP NAME PARTITIONS   RF 1; ok if it exists with PARTITIONS (rc 3 if not)
#   broker.sh stop DIR                            SIGTERM, 30 s grace, then SIGKILL; ok if not running
#   broker.sh status DIR                          rc 0 + addresses if running, rc 3 "stopped" if not
#   broker.sh classpath | version                 java classpath (quoted lib/* wildcard) | Kafka version
#
# Environment (all optional):
#   SMM_KAFKA_VERSION         default: <kafka.version> in pom.xml (4.1.1); 3.9.1 is the tested fallback
#   SMM_KAFKA_CACHE           default ~/.cache/smm-stream/kafka-<version>; jars in $SMM_KAFKA_CACHE/lib
#                             (one version per cache dir)
#   SMM_KAFKA_SASL_USER       with SMM_KAFKA_SASL_PASSWORD: add a SASL_PLAINTEXT listener
#   SMM_KAFKA_SASL_PASSWORD     (mechanisms PLAIN and SCRAM-SHA-256; SCRAM only at first format)
#   SMM_KAFKA_SASL_PORT       port of that listener (default: a free port)
#   SMM_KAFKA_NUM_PARTITIONS  partitions of auto-created topics (default 1)
#   SMM_KAFKA_EXTRA_CONFIG    extra server.properties lines (newline separated), appended last (win)
#   SMM_KAFKA_HEAP_OPTS       default "-Xms256m -Xmx512m"
#   SMM_KAFKA_READY_TIMEOUT   seconds to wait for readiness (default 120)
# Progress and errors go to stderr; stdout carries only results.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
POM="$SCRIPT_DIR/pom.xml"
POM_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$POM" | head -n1)
KAFKA_VERSION=${SMM_KAFKA_VERSION:-$POM_VERSION}
[[ $KAFKA_VERSION =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]] || { echo "broker.sh: bad Kafka version '$KAFKA_VERSION'" >&2; exit 2; }
case $KAFKA_VERSION in
  3.*) LOGGING=reload4j ;;   # Kafka 3.9.x: SLF4J 1.7 -> slf4j-reload4j -> reload4j (log4j 1 syntax)
  *) LOGGING=log4j2 ;;       # Kafka 4.x:   SLF4J 1.7 -> log4j-slf4j-impl -> Log4j 2
esac
CACHE=${SMM_KAFKA_CACHE:-${HOME:-/tmp}/.cache/smm-stream/kafka-$KAFKA_VERSION}
LIB="$CACHE/lib"
MARKER="$LIB/.complete"
CP="$LIB/*"                  # keep quoted everywhere: the JVM expands the wildcard
HOST=127.0.0.1

log() { printf 'broker.sh: %s\n' "$*" >&2; }
die() { printf 'broker.sh: error: %s\n' "$*" >&2; exit 1; }
hint() {
  case $1 in
    java) echo 'apt-get install -y openjdk-17-jre-headless' ;;
    javac) echo 'apt-get install -y openjdk-17-jdk-headless' ;;
    mvn) echo 'apt-get install -y maven' ;;
    setsid|flock) echo 'apt-get install -y util-linux' ;;
    *) echo "apt-get install -y $1" ;;
  esac
}
need() {
  local t
  for t in "$@"; do
    command -v "$t" >/dev/null 2>&1 || die "required tool '$t' not found in PATH (Debian 12: $(hint "$t"))"
  done
}
need_java17() {
  need java
  local v
  v=$(java -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n1)
  [ -n "$v" ] && [ "$v" -ge 17 ] || die "Kafka needs Java 17+, 'java' is version '${v:-unknown}' (Debian 12: $(hint java))"
}
now() { date +%s.%N; }
elapsed() { python3 -c 'import sys; print("%.2f" % (float(sys.argv[2]) - float(sys.argv[1])))' "$1" "$(now)"; }

# ---------------------------------------------------------------- fetch
cache_key() { printf '%s %s\n' "$(sha256sum "$POM" | cut -d' ' -f1)" "$KAFKA_VERSION"; }
cached() { [ -f "$MARKER" ] && [ "$(cat "$MARKER")" = "$(cache_key)" ]; }

cmd_fetch() {
  [ $# -eq 0 ] || die "usage: broker.sh fetch"
  if cached; then log "jars for Kafka $KAFKA_VERSION already cached in $LIB"; return 0; fi
  need mvn flock
  need_java17
  mkdir -p "$CACHE"
  exec 9>"$CACHE/.fetch.lock"
  flock 9                                      # parallel callers: one fetches, the others wait
  if cached; then exec 9>&-; return 0; fi
  local t0 tmp j binding
  t0=$(now)
  tmp="$CACHE/lib.tmp.$$"
  rm -rf "$tmp"
  log "fetching Kafka $KAFKA_VERSION jars with Maven into $LIB ..."
  local -a mvn_props=(-Dkafka.version="$KAFKA_VERSION")
  [ "$LOGGING" = log4j2 ] || mvn_props+=(-Dkafka.logging="$LOGGING")
  # -f: any cwd; the dependency plugin writes nothing next to the POM. Maven 3.8's -q still
  # prints bare ANSI resets on stdout, so keep its output in a file and show it only on failure.
  if ! mvn -B -q -f "$POM" "${mvn_props[@]}" \
      org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$tmp" -Dmdep.prependGroupId=true \
      >"$CACHE/mvn.log" 2>&1 </dev/null; then
    cat "$CACHE/mvn.log" >&2
    rm -rf "$tmp"
    die "Maven could not resolve the Kafka $KAFKA_VERSION jars (is Maven Central reachable?)"
  fi
  # sanity: server jar, clients jar, SLF4J 1.7 API + a 1.x binding, no SLF4J 2 API (=> NOP logging)
  binding=org.apache.logging.log4j.log4j-slf4j-impl-
  [ "$LOGGING" = log4j2 ] || binding=org.slf4j.slf4j-reload4j-
  for j in "org.apache.kafka.kafka_2.13-$KAFKA_VERSION.jar" "org.apache.kafka.kafka-clients-$KAFKA_VERSION.jar" \
           org.slf4j.slf4j-api-1.7.36.jar "$(cd "$tmp" && ls "$binding"*.jar 2>/dev/null | head -n1)"; do
    [ -n "$j" ] && [ -f "$tmp/$j" ] || { rm -rf "$tmp"; die "fetched classpath lacks ${j:-an SLF4J 1.x binding ($binding*)}"; }
  done
  if compgen -G "$tmp/*slf4j-api-2.*" >/dev/null; then rm -rf "$tmp"; die "slf4j-api 2.x on the classpath: broker logging would go NOP"; fi
  rm -rf "$LIB"
  mv "$tmp" "$LIB"
  cache_key > "$MARKER"
  log "fetched $(ls "$LIB"/*.jar | wc -l) jars, $(du -sk "$LIB" | cut -f1) KiB in $(elapsed "$t0") s"
  exec 9>&-
}
ensure_lib() { cached || cmd_fetch; }

# ---------------------------------------------------------------- helpers
# free_ports N -> N distinct free TCP ports on 127.0.0.1, one per line. Random below the kernel's
# ephemeral range (ip_local_port_range): a port from bind(port 0) is one any client's connect()
# may take before the broker binds it, or while a stopped broker is down and a restart wants it.
free_ports() {
  python3 - "$1" <<'PY'
import random, socket, sys
try:
    lo = int(open("/proc/sys/net/ipv4/ip_local_port_range").read().split()[0])
except (OSError, ValueError, IndexError):
    lo = 32768
socks = []
ports = range(15000, max(lo, 16000))
for port in random.sample(ports, min(len(ports), 2000)):
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        s.close(); continue
    socks.append(s)
    if len(socks) == int(sys.argv[1]):
        break
print("\n".join(str(s.getsockname()[1]) for s in socks))
for s in socks: s.close()
PY
}
port_free() {
  python3 - "$1" <<'PY'
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try: s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError: sys.exit(1)
PY
}
valid_port() { [[ $1 =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le 65535 ]; }

# alive PID: exists and is not a zombie (a container whose PID 1 does not reap would keep zombies)
alive() {
  kill -0 "$1" 2>/dev/null || return 1
  local st
  st=$(sed -n 's/^[0-9]* (.*) \([A-Za-z]\).*/\1/p' "/proc/$1/stat" 2>/dev/null || true)
  [ "$st" != Z ]
}

# running_pid DIR -> pid of the broker started for DIR, or nothing (drops a stale pid file)
running_pid() {
  local dir=$1 pid
  [ -f "$dir/kafka.pid" ] || return 0
  pid=$(cat "$dir/kafka.pid" 2>/dev/null || true)
  if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" \
     && tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null | grep -qF "kafka.Kafka $dir/server.properties"; then
    echo "$pid"
  else
    rm -f "$dir/kafka.pid"
  fi
}

abs_dir() { mkdir -p "$1" && (cd "$1" && pwd -P); }

# write_logcfg DIR SUFFIX OUT|ERR LEVEL: Log4j 2 (Kafka 4.x) and log4j 1 (3.9 + reload4j) configs
write_logcfg() {
  local dir=$1 sfx=$2 target=$3 level=$4 t=out
  [ "$target" = OUT ] || t=err
  cat > "$dir/log4j2$sfx.properties" <<EOF
appender.out.type = Console
appender.out.name = OUT
appender.out.target = SYSTEM_$target
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $level
rootLogger.appenderRef.out.ref = OUT
logger.req.name = kafka.request.logger
logger.req.level = WARN
EOF
  cat > "$dir/log4j$sfx.properties" <<EOF
log4j.rootLogger=$level, out
log4j.appender.out=org.apache.log4j.ConsoleAppender
log4j.appender.out.Target=System.$t
log4j.appender.out.layout=org.apache.log4j.PatternLayout
log4j.appender.out.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
EOF
}
# log_opts DIR SUFFIX -> LOGOPTS: JVM flags naming those configs (each backend reads only its own)
log_opts() { LOGOPTS=("-Dlog4j2.configurationFile=$1/log4j2$2.properties" "-Dlog4j.configuration=file:$1/log4j$2.properties"); }

# ---------------------------------------------------------------- start
# globals used by the start helpers
S_DIR="" S_PORT="" S_CPORT="" S_SPORT="" S_USER="" S_PASS="" S_PID=""

# pick_ports ARG_PORT ARG_CPORT: explicit > remembered from the last start in DIR (if free) > free
pick_ports() {
  local port=$1 cport=$2 sport="" old_port="" old_cport="" old_sasl="" k v p want=0
  if [ -f "$S_DIR/ports" ]; then
    while IFS='=' read -r k v; do
      case $k in port) old_port=$v ;; controller) old_cport=$v ;; sasl) old_sasl=$v ;; esac
    done < "$S_DIR/ports"
    if [ -z "$port" ] && [ -n "$old_port" ] && port_free "$old_port"; then port=$old_port; fi
    if [ -z "$cport" ] && [ -n "$old_cport" ] && port_free "$old_cport"; then cport=$old_cport; fi
    if [ -n "$S_USER" ] && [ -n "$old_sasl" ] && port_free "$old_sasl"; then sport=$old_sasl; fi
  fi
  if [ -n "$S_USER" ] && [ -n "${SMM_KAFKA_SASL_PORT:-}" ]; then sport=$SMM_KAFKA_SASL_PORT; fi
  [ -n "$port" ] || want=$((want + 1))
  [ -n "$cport" ] || want=$((want + 1))
  [ -z "$S_USER" ] || [ -n "$sport" ] || want=$((want + 1))
  if [ "$want" -gt 0 ]; then
    for p in $(free_ports "$want"); do
      if [ -z "$port" ]; then port=$p
      elif [ -z "$cport" ]; then cport=$p
      else sport=$p; fi
    done
  fi
  for p in "$port" "$cport" ${sport:+"$sport"}; do
    valid_port "$p" || die "invalid port '$p'"
    port_free "$p" || die "port $HOST:$p is already in use"
  done
  [ "$port" != "$cport" ] && [ "$port" != "$sport" ] && [ "$cport" != "$sport" ] || die "the ports must differ"
  S_PORT=$port S_CPORT=$cport S_SPORT=$sport
}

write_config() {
  local props="$S_DIR/server.properties" listeners advertised map
  listeners="PLAINTEXT://$HOST:$S_PORT,CONTROLLER://$HOST:$S_CPORT"
  advertised="PLAINTEXT://$HOST:$S_PORT"
  map="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT"
  if [ -n "$S_USER" ]; then
    listeners="$listeners,SASL_PLAINTEXT://$HOST:$S_SPORT"
    advertised="$advertised,SASL_PLAINTEXT://$HOST:$S_SPORT"
    map="$map,SASL_PLAINTEXT:SASL_PLAINTEXT"
  fi
  (
    umask 077   # may hold the SASL password
    cat > "$props" <<EOF
# generated by tools/kafka/broker.sh (Kafka $KAFKA_VERSION); rewritten on every start
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$S_CPORT
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$map
log.dirs=$S_DIR/data
auto.create.topics.enable=true
num.partitions=${SMM_KAFKA_NUM_PARTITIONS:-1}
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
offsets.topic.num.partitions=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.cleaner.dedupe.buffer.size=16777216
EOF
    if [ -n "$S_USER" ]; then
      cat >> "$props" <<EOF
sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256
listener.name.sasl_plaintext.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required user_$S_USER="$S_PASS";
listener.name.sasl_plaintext.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
EOF
    fi
    if [ -n "${SMM_KAFKA_EXTRA_CONFIG:-}" ]; then
      printf '# SMM_KAFKA_EXTRA_CONFIG\n%s\n' "$SMM_KAFKA_EXTRA_CONFIG" >> "$props"
    fi
  )
  write_logcfg "$S_DIR" "" OUT INFO
  write_logcfg "$S_DIR" -tools ERR WARN
  {
    echo "port=$S_PORT"
    echo "controller=$S_CPORT"
    [ -z "$S_USER" ] || echo "sasl=$S_SPORT"
  } > "$S_DIR/ports"
}

# Format once; a restart on the same data dir keeps meta.properties (node + cluster id) and all data.
format_once() {
  if [ -f "$S_DIR/data/meta.properties" ]; then
    log "reusing formatted $S_DIR/data (cluster id $(sed -n 's/^cluster.id=//p' "$S_DIR/data/meta.properties"))"
    return 0
  fi
  local cid t0
  local -a scram=()
  # base64url of 16 random bytes without padding (what StorageTool random-uuid prints). Like
  # Kafka's own Uuid.randomUuid(), never one that starts with '-': the format command's
  # argument parser takes "-t -Abc..." for an option and fails (1 start in 64 did).
  cid=$(python3 -c 'import uuid,base64
while True:
    c = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
    if not c.startswith("-"):
        break
print(c)')
  [ -z "$S_USER" ] || scram=(--add-scram "SCRAM-SHA-256=[name=$S_USER,password=$S_PASS]")
  t0=$(now)
  log_opts "$S_DIR" -tools
  java -Xmx256m "${LOGOPTS[@]}" -cp "$CP" kafka.tools.StorageTool format \
      -t "$cid" -c "$S_DIR/server.properties" "${scram[@]}" >&2 </dev/null \
    || die "formatting $S_DIR/data failed"
  echo "$cid" > "$S_DIR/cluster-id"
  log "formatted $S_DIR/data (cluster id $cid) in $(elapsed "$t0") s"
}

# launch_and_wait -> 0 ready, 1 broker died (2 if it died on a port bind), exits on timeout
launch_and_wait() {
  local out="$S_DIR/server.out" heap=${SMM_KAFKA_HEAP_OPTS:--Xms256m -Xmx512m} t0 deadline started=0
  local timeout=${SMM_KAFKA_READY_TIMEOUT:-120}
  [ ! -f "$out" ] || mv -f "$out" "$S_DIR/server.out.prev"
  t0=$(now)
  log_opts "$S_DIR" ""
  # setsid: own session (the caller's Ctrl-C / job control does not reach it); all fds redirected,
  # so `$(broker.sh start ...)` returns as soon as the broker is ready.
  # shellcheck disable=SC2086
  setsid java $heap -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:+ExitOnOutOfMemoryError \
      -Djava.awt.headless=true -Dkafka.logs.dir="$S_DIR/logs" \
      "${LOGOPTS[@]}" -cp "$CP" kafka.Kafka "$S_DIR/server.properties" </dev/null >"$out" 2>&1 &
  S_PID=$!
  echo "$S_PID" > "$S_DIR/kafka.pid"
  echo "$HOST:$S_PORT" > "$S_DIR/bootstrap"
  deadline=$(( $(date +%s) + timeout ))
  while :; do
    if ! alive "$S_PID"; then
      rm -f "$S_DIR/kafka.pid"
      if grep -q 'Address already in use' "$out" 2>/dev/null; then return 2; fi
      log "broker exited during startup; last lines of $out:"
      tail -n 40 "$out" >&2 || true
      return 1
    fi
    # ready = the server's own ready line AND a librdkafka metadata round trip
    if [ "$started" = 0 ] && grep -q 'Kafka Server started' "$out" 2>/dev/null; then started=1; fi
    if [ "$started" = 1 ] && kcat -b "$HOST:$S_PORT" -L -m 5 >/dev/null 2>&1 </dev/null; then break; fi
    if [ "$(date +%s)" -ge "$deadline" ]; then
      log "broker not ready after ${timeout} s (ready line seen: $started); last lines of $out:"
      tail -n 40 "$out" >&2 || true
      kill -KILL "$S_PID" 2>/dev/null || true
      rm -f "$S_DIR/kafka.pid"
      exit 1
    fi
    sleep 0.2
  done
  local rss
  rss=$(ps -o rss= -p "$S_PID" | tr -d ' ')
  log "Kafka $KAFKA_VERSION ready in $(elapsed "$t0") s (pid $S_PID, RSS $((rss / 1024)) MiB, state $S_DIR)"
}

cmd_start() {
  [ $# -ge 1 ] && [ $# -le 3 ] || die "usage: broker.sh start DIR [PORT] [CONTROLLER_PORT]"
  need kcat python3 setsid
  need_java17
  S_DIR=$(abs_dir "$1")
  S_USER=${SMM_KAFKA_SASL_USER:-} S_PASS=${SMM_KAFKA_SASL_PASSWORD:-}
  local pid attempt rc
  pid=$(running_pid "$S_DIR")
  [ -z "$pid" ] || die "a broker is already running for $S_DIR (pid $pid, $(cat "$S_DIR/bootstrap" 2>/dev/null)); run: broker.sh stop $S_DIR"
  if [ -n "$S_USER$S_PASS" ]; then
    [ -n "$S_USER" ] && [ -n "$S_PASS" ] || die "set both SMM_KAFKA_SASL_USER and SMM_KAFKA_SASL_PASSWORD"
    # kept simple so that no JAAS / properties / --add-scram quoting is needed
    [[ $S_USER =~ ^[A-Za-z0-9._-]+$ ]] || die "SMM_KAFKA_SASL_USER may only contain [A-Za-z0-9._-]"
    [[ $S_PASS =~ ^[A-Za-z0-9._~@%+:/!^*-]+$ ]] || die "SMM_KAFKA_SASL_PASSWORD may only contain [A-Za-z0-9._~@%+:/!^*-]"
  fi
  ensure_lib
  mkdir -p "$S_DIR/data" "$S_DIR/logs"
  for attempt in 1 2 3; do
    pick_ports "${2:-}" "${3:-}"
    write_config
    format_once
    rc=0; launch_and_wait || rc=$?
    [ "$rc" -eq 0 ] && break
    # an automatically picked port can be taken between the check and the broker's bind: retry
    if [ "$rc" -eq 2 ] && { [ -z "${2:-}" ] || [ -z "${3:-}" ]; } && [ "$attempt" -lt 3 ]; then
      log "a port was taken while the broker started; retrying with new ports"
      rm -f "$S_DIR/ports"
      continue
    fi
    [ "$rc" -ne 2 ] || { log "last lines of $S_DIR/server.out:"; tail -n 20 "$S_DIR/server.out" >&2; }
    exit 1
  done
  [ -z "$S_USER" ] || echo "sasl=$HOST:$S_SPORT"
  echo "$HOST:$S_PORT"
}

# ---------------------------------------------------------------- stop / status / topics
cmd_stop() {
  [ $# -eq 1 ] || die "usage: broker.sh stop DIR"
  [ -d "$1" ] || { log "no state dir $1; nothing to stop"; return 0; }
  local dir pid i
  dir=$(cd "$1" && pwd -P)
  pid=$(running_pid "$dir")
  if [ -z "$pid" ]; then log "no broker running for $dir"; return 0; fi
  kill -TERM "$pid" 2>/dev/null || true        # shutdown hook: controlled shutdown, clean log close
  for ((i = 0; i < 300; i++)); do alive "$pid" || break; sleep 0.1; done
  if alive "$pid"; then
    log "broker pid $pid still alive after 30 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    for ((i = 0; i < 50; i++)); do alive "$pid" || break; sleep 0.1; done
  else
    log "broker pid $pid stopped"
  fi
  rm -f "$dir/kafka.pid"
}

cmd_status() {
  [ $# -eq 1 ] || die "usage: broker.sh status DIR"
  local dir pid
  if [ ! -d "$1" ]; then echo "stopped"; return 3; fi
  dir=$(cd "$1" && pwd -P)
  pid=$(running_pid "$dir")
  if [ -z "$pid" ]; then echo "stopped"; return 3; fi
  echo "running pid=$pid rss_kib=$(ps -o rss= -p "$pid" | tr -d ' ')"
  if grep -q '^sasl=' "$dir/ports" 2>/dev/null; then echo "sasl=$HOST:$(sed -n 's/^sasl=//p' "$dir/ports")"; fi
  cat "$dir/bootstrap"
}

cmd_create_topic() {
  [ $# -eq 3 ] || die "usage: broker.sh create-topic BOOTSTRAP NAME PARTITIONS"
  [[ $3 =~ ^[1-9][0-9]*$ ]] || die "PARTITIONS must be a positive integer"
  need_java17
  # the single-file source launcher compiles in memory: needs the jdk.compiler module (a JDK; on
  # Debian 12 the module image of openjdk-17-jre-headless already contains it)
  local mods
  mods=$(java --list-modules 2>/dev/null || true)
  grep -q '^jdk\.compiler@' <<<"$mods" \
    || die "create-topic needs a JDK (module jdk.compiler) (Debian 12: $(hint javac))"
  ensure_lib
  [ -f "$CACHE/log4j-tools.properties" ] || write_logcfg "$CACHE" -tools ERR WARN
  log_opts "$CACHE" -tools
  java -Xmx128m -XX:TieredStopAtLevel=1 "${LOGOPTS[@]}" -cp "$CP" \
      "$SCRIPT_DIR/CreateTopic.java" "$1" "$2" "$3" </dev/null
}

main() {
  local sub=${1:-}
  [ $# -gt 0 ] && shift
  case $sub in
    fetch) cmd_fetch "$@" ;;
    start) cmd_start "$@" ;;
    stop) cmd_stop "$@" ;;
    status) cmd_status "$@" ;;
    create-topic) cmd_create_topic "$@" ;;
    classpath) ensure_lib; echo "$CP" ;;
    version) echo "$KAFKA_VERSION" ;;
    *) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
  esac
}
main "$@"
