# shellcheck shell=bash
# shellcheck disable=SC2034  # variables are used by the scripts that source this file
# Shared settings for the local single-node Kafka scripts (fetch/start/stop/create-topics).
# Sourced, never executed.  Every value can be overridden through the environment:
#
#   JOURNEY_KAFKA_VERSION   broker version (default: <kafka.version> in infra/kafka/pom.xml)
#   JOURNEY_CACHE           jar cache root (default: $HOME/.cache/mbc-journey), outside the repo
#   JOURNEY_KAFKA_DIR       data dir: properties, KRaft log dirs, pid and log file (/tmp/mbc-kafka)
#   JOURNEY_KAFKA_PORT      client (PLAINTEXT) port on 127.0.0.1 (19092)
#   JOURNEY_KAFKA_CONTROLLER_PORT  KRaft controller port (client port + 1)
#   JOURNEY_KAFKA_HEAP_OPTS JVM heap options (-Xms128m -Xmx512m)
#   JOURNEY_KAFKA_START_TIMEOUT  seconds to wait for the broker to become ready (90)
#   JOURNEY_KAFKA_STOP_TIMEOUT   seconds to wait after SIGTERM before SIGKILL (30)
#   JOURNEY_PYTHON          Python with kafka-python (default: the repo's .venv, else python3)
#   JOURNEY_TOPICS_FILE     topic definitions (default: infra/topics.txt)

KAFKA_INFRA_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_ROOT=$(cd "$KAFKA_INFRA_DIR/../.." && pwd)
TOPICS_FILE=${JOURNEY_TOPICS_FILE:-$REPO_ROOT/infra/topics.txt}

# The pinned version lives in pom.xml only; read it from there.
pom_kafka_version() {
    sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$KAFKA_INFRA_DIR/pom.xml" | head -n 1
}
KAFKA_VERSION=${JOURNEY_KAFKA_VERSION:-$(pom_kafka_version)}
if [[ -z "$KAFKA_VERSION" ]]; then
    echo "kafka: cannot read <kafka.version> from $KAFKA_INFRA_DIR/pom.xml" >&2
    exit 1
fi
KAFKA_MAJOR=${KAFKA_VERSION%%.*}

CACHE_ROOT=${JOURNEY_CACHE:-$HOME/.cache/mbc-journey}
KAFKA_HOME=$CACHE_ROOT/kafka-$KAFKA_VERSION
KAFKA_LIBS=$KAFKA_HOME/libs

KAFKA_DIR=${JOURNEY_KAFKA_DIR:-/tmp/mbc-kafka}
KAFKA_HOST=127.0.0.1
KAFKA_PORT=${JOURNEY_KAFKA_PORT:-19092}
KAFKA_CONTROLLER_PORT=${JOURNEY_KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}
KAFKA_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT
KAFKA_PROPS=$KAFKA_DIR/server.properties
KAFKA_PID_FILE=$KAFKA_DIR/kafka.pid
KAFKA_LOG_FILE=$KAFKA_DIR/kafka.log
# Marker written into every data dir we create; stop.sh --wipe refuses to delete a
# directory without it.
KAFKA_MARKER=$KAFKA_DIR/.mbc-journey-kafka

log() { echo "kafka: $*" >&2; }
die() { log "error: $*"; exit 1; }

# shellcheck source=infra/apt.sh
source "$REPO_ROOT/infra/apt.sh"

# Make sure the named tools (java, mvn) are on PATH, installing the Debian JDK and Maven
# when one is missing (root or password-less sudo; a clear error otherwise), the way
# infra/postgres/start.sh installs PostgreSQL.  Both go in one apt run when both lack.
ensure_tools() {
    local tool choices=()
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 && continue
        case "$tool" in
            java) choices+=("openjdk-17-jdk-headless|default-jdk-headless") ;;
            mvn) choices+=(maven) ;;
            *) die "ensure_tools: unknown tool $tool" ;;
        esac
    done
    (( ${#choices[@]} )) || return 0
    apt_install "a JDK or Maven (for the Kafka broker)" "${choices[@]}"
    for tool in "$@"; do
        command -v "$tool" >/dev/null 2>&1 \
            || die "installed the Debian packages $APT_INSTALLED, but '$tool' is still not on PATH ($PATH)"
    done
    log "using $(java -version 2>&1 | head -n 1)"
}

# Print the pid of the broker recorded in the pid file if that process is alive and
# really is a Kafka broker (guards against a stale pid reused by another process).
running_pid() {
    local pid
    [[ -f "$KAFKA_PID_FILE" ]] || return 1
    pid=$(<"$KAFKA_PID_FILE")
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r "/proc/$pid/cmdline" ]]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'kafka\.Kafka' || return 1
    fi
    echo "$pid"
}

# Pick a Python interpreter that can import kafka-python (used for readiness and topics).
pick_python() {
    local candidates=() py
    [[ -n "${JOURNEY_PYTHON:-}" ]] && candidates+=("$JOURNEY_PYTHON")
    candidates+=("$REPO_ROOT/.venv/bin/python" python3)
    for py in "${candidates[@]}"; do
        if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import kafka' >/dev/null 2>&1; then
            echo "$py"
            return 0
        fi
    done
    die "no Python with kafka-python found (tried: ${candidates[*]}); create the venv or set JOURNEY_PYTHON"
}
