#!/usr/bin/env bash
# Stop the local Kafka broker started by infra/kafka/start.sh: SIGTERM (controlled
# shutdown), wait up to JOURNEY_KAFKA_STOP_TIMEOUT seconds (30), then SIGKILL.
# Usage: bash infra/kafka/stop.sh [--wipe]
#   --wipe   also delete the data dir (JOURNEY_KAFKA_DIR, default /tmp/mbc-kafka)
# Succeeds when nothing is running.  Only the pid recorded in the data dir is signalled.
set -euo pipefail

# shellcheck source=infra/kafka/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

wipe=false
for arg in "$@"; do
    case "$arg" in
        --wipe) wipe=true ;;
        -h|--help) sed -n '2,6p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument: $arg (usage: stop.sh [--wipe])" ;;
    esac
done

if pid=$(running_pid); then
    log "stopping broker (pid $pid)"
    kill -TERM "$pid" 2>/dev/null || true
    deadline=$((SECONDS + ${JOURNEY_KAFKA_STOP_TIMEOUT:-30}))
    while kill -0 "$pid" 2>/dev/null && (( SECONDS < deadline )); do
        sleep 0.2   # polling for exit, not synchronisation by a fixed delay
    done
    if kill -0 "$pid" 2>/dev/null; then
        log "still running after ${JOURNEY_KAFKA_STOP_TIMEOUT:-30}s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        while kill -0 "$pid" 2>/dev/null; do sleep 0.1; done
    fi
    log "stopped"
else
    log "not running (data dir $KAFKA_DIR)"
fi
rm -f "$KAFKA_PID_FILE"

if $wipe && [[ -e "$KAFKA_DIR" ]]; then
    # Refuse to delete anything that start.sh did not create.
    [[ -f "$KAFKA_MARKER" ]] || die "$KAFKA_DIR has no $(basename "$KAFKA_MARKER") marker; not deleting it"
    rm -rf -- "$KAFKA_DIR"
    log "wiped $KAFKA_DIR"
fi
