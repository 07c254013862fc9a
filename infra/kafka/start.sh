#!/usr/bin/env bash
# Start a real single-node Apache Kafka broker in KRaft mode (broker + controller in one
# JVM, no Docker, no ZooKeeper) listening on 127.0.0.1 only, create the topics of
# infra/topics.txt, and print the bootstrap address "127.0.0.1:PORT" as the last line
# of stdout (progress goes to stderr, so BOOTSTRAP=$(bash infra/kafka/start.sh) works).
#
# Idempotent: when the broker of this data dir is already running it only prints the
# address.  Settings: see infra/kafka/common.sh (JOURNEY_KAFKA_PORT, JOURNEY_KAFKA_DIR...).
# Stop with infra/kafka/stop.sh [--wipe].
set -euo pipefail

# shellcheck source=infra/kafka/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

if pid=$(running_pid); then
    log "already running (pid $pid, data dir $KAFKA_DIR)"
    echo "$KAFKA_BOOTSTRAP"
    exit 0
fi

# A JDK (and Maven, when the jars still have to be fetched) from Debian when missing:
# both in one apt run on a fresh machine.  See ensure_tools in common.sh.
if [[ -f "$KAFKA_LIBS/.complete" ]]; then
    ensure_tools java
else
    ensure_tools java mvn
fi
PYTHON=$(pick_python)

# 1. Jars (no-op when cached).
bash "$KAFKA_INFRA_DIR/fetch.sh" >/dev/null

mkdir -p "$KAFKA_DIR"
touch "$KAFKA_MARKER"
# Serialise concurrent starts on the same data dir.  The lock fd is closed for the
# broker below, so the lock is released when this script exits.
exec 9>"$KAFKA_DIR/start.lock"
flock -w 300 9 || die "timed out waiting for another start.sh on $KAFKA_DIR"
if pid=$(running_pid); then
    log "started concurrently (pid $pid)"
    echo "$KAFKA_BOOTSTRAP"
    exit 0
fi
rm -f "$KAFKA_PID_FILE"

# A KRaft data dir formatted by one Kafka version is not guaranteed to work with another.
if [[ -f "$KAFKA_DIR/kafka.version" && "$(<"$KAFKA_DIR/kafka.version")" != "$KAFKA_VERSION" ]]; then
    die "$KAFKA_DIR was formatted by Kafka $(<"$KAFKA_DIR/kafka.version"), not $KAFKA_VERSION; run infra/kafka/stop.sh --wipe or set JOURNEY_KAFKA_DIR"
fi

# Fail clearly (instead of via a bind error deep in the broker log) when a port is taken.
port_in_use() { (exec 3<>"/dev/tcp/$KAFKA_HOST/$1") 2>/dev/null; }
for port in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    if port_in_use "$port"; then
        die "port $KAFKA_HOST:$port is already in use (another broker? set JOURNEY_KAFKA_PORT / JOURNEY_KAFKA_CONTROLLER_PORT)"
    fi
done

# 2. Broker configuration (rewritten on every start; the storage itself is kept).
cat >"$KAFKA_PROPS" <<EOF
# Written by infra/kafka/start.sh -- edits are overwritten on the next start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,CONTROLLER://$KAFKA_HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
log.dirs=$KAFKA_DIR/data

# Single node: every replication factor is 1.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1

# faust creates its changelog/repartition topics itself.
auto.create.topics.enable=true
delete.topic.enable=true
# No point waiting for more group members on a development broker.
group.initial.rebalance.delay.ms=0
EOF

# Logging: console appender, redirected to $KAFKA_LOG_FILE below.
if (( KAFKA_MAJOR >= 4 )); then
    log_config="$KAFKA_DIR/log4j2.properties"
    cat >"$log_config" <<'EOF'
status = warn
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
EOF
    log_opts=("-Dlog4j2.configurationFile=file:$log_config")
else
    log_config="$KAFKA_DIR/log4j.properties"
    cat >"$log_config" <<'EOF'
log4j.rootLogger=INFO, stdout
log4j.appender.stdout=org.apache.log4j.ConsoleAppender
log4j.appender.stdout.layout=org.apache.log4j.PatternLayout
log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n
log4j.logger.kafka.request.logger=WARN
log4j.logger.state.change.logger=WARN
EOF
    log_opts=("-Dlog4j.configuration=file:$log_config")
fi

classpath="$KAFKA_LIBS/*"
read -r -a heap_opts <<<"${JOURNEY_KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
jvm_opts=("${heap_opts[@]}" -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true
          "-Dkafka.logs.dir=$KAFKA_DIR" "${log_opts[@]}")

# 3. Format the KRaft storage once (meta.properties marks a formatted log dir).
# With a static controller.quorum.voters line, StorageTool must not get --standalone.
if [[ ! -f "$KAFKA_DIR/data/meta.properties" ]]; then
    cluster_id=$("$PYTHON" -c '
import base64, uuid
while True:  # Kafka Uuid text form: url-safe base64, no padding, not starting with "-"
    s = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    if not s.startswith("-"):
        print(s)
        break
')
    log "formatting storage in $KAFKA_DIR/data (cluster id $cluster_id)"
    java "${jvm_opts[@]}" -cp "$classpath" kafka.tools.StorageTool format \
        -t "$cluster_id" -c "$KAFKA_PROPS" >>"$KAFKA_DIR/format.log" 2>&1 \
        || { cat "$KAFKA_DIR/format.log" >&2; die "storage format failed"; }
    echo "$KAFKA_VERSION" >"$KAFKA_DIR/kafka.version"
fi

# 4. Launch in the background, in its own session (setsid) so that it outlives the
# calling shell or test run; lock fds closed so no lock is held by the broker.
if [[ -f "$KAFKA_LOG_FILE" ]]; then mv -f "$KAFKA_LOG_FILE" "$KAFKA_LOG_FILE.1"; fi
log "starting Kafka $KAFKA_VERSION on $KAFKA_BOOTSTRAP (controller :$KAFKA_CONTROLLER_PORT, log $KAFKA_LOG_FILE)"
setsid java "${jvm_opts[@]}" -cp "$classpath" kafka.Kafka "$KAFKA_PROPS" \
    </dev/null >"$KAFKA_LOG_FILE" 2>&1 9>&- &
pid=$!
echo "$pid" >"$KAFKA_PID_FILE"

# 5. Wait (bounded) until it answers metadata requests; abort early if it died.
if ! "$PYTHON" "$KAFKA_INFRA_DIR/kafkactl.py" wait --bootstrap "$KAFKA_BOOTSTRAP" \
        --timeout "${JOURNEY_KAFKA_START_TIMEOUT:-90}" --pid "$pid"; then
    log "broker did not become ready; last lines of $KAFKA_LOG_FILE:"
    tail -n 40 "$KAFKA_LOG_FILE" >&2 || true
    kill -TERM "$pid" 2>/dev/null || true
    # The most telling line: the innermost "Caused by", else the last ERROR.
    cause=$(grep -E '^Caused by:' "$KAFKA_LOG_FILE" | tail -n 1 || true)
    [[ -n "$cause" ]] || cause=$(grep -E ' ERROR ' "$KAFKA_LOG_FILE" | tail -n 1 || true)
    die "start failed${cause:+: $cause} (see $KAFKA_LOG_FILE)"
fi

# 6. Topics from infra/topics.txt.
"$PYTHON" "$KAFKA_INFRA_DIR/kafkactl.py" ensure --bootstrap "$KAFKA_BOOTSTRAP" --topics "$TOPICS_FILE"

echo "$KAFKA_BOOTSTRAP"
