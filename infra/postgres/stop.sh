#!/usr/bin/env bash
# Stop the local PostgreSQL started by infra/postgres/start.sh.
#
#   bash infra/postgres/stop.sh          # fast shutdown, keep the data
#   bash infra/postgres/stop.sh --wipe   # ... and delete $JOURNEY_PG_DIR (default /tmp/mbc-postgres)
#
# Bounded: a fast shutdown that does not finish within $JOURNEY_PG_TIMEOUT seconds
# (default 60) is escalated to an immediate one.  Not running is not an error.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/postgres/common.sh
source "$HERE/common.sh"

wipe=0
for arg in "$@"; do
    case "$arg" in
        --wipe) wipe=1 ;;
        -h|--help) sed -n '2,8p' "${BASH_SOURCE[0]}"; exit 0 ;;
        *) die "unknown argument '$arg' (usage: stop.sh [--wipe])" ;;
    esac
done

# Wait (bounded, polling) until process $1 has exited.
wait_gone() {
    local pid="$1" deadline=$((SECONDS + PG_TIMEOUT))
    while [[ -d "/proc/$pid" ]]; do
        (( SECONDS < deadline )) || return 1
        sleep 0.2
    done
}

pid="$(running_pid)"
if [[ -n "$pid" ]]; then
    pick_osuser
    BINDIR="$(find_bindir "$(cat "$PG_DATA/PG_VERSION" 2>/dev/null || true)")"
    log "stopping server pid $pid (data $PG_DATA)"
    if [[ -n "$BINDIR" ]]; then
        # fast: roll back open transactions, disconnect clients, clean shutdown.
        if ! run_as_owner "$BINDIR/pg_ctl" -D "$PG_DATA" -m fast -w -t "$PG_TIMEOUT" stop >&2; then
            log "fast shutdown did not finish in ${PG_TIMEOUT}s; trying immediate"
            run_as_owner "$BINDIR/pg_ctl" -D "$PG_DATA" -m immediate -w -t "$PG_TIMEOUT" stop >&2 \
                || die "could not stop server pid $pid"
        fi
    else
        # Binaries gone (package removed?): SIGINT is PostgreSQL's "fast shutdown".
        kill -INT "$pid"
        wait_gone "$pid" || { kill -QUIT "$pid" 2>/dev/null || true; wait_gone "$pid"; } \
            || die "could not stop server pid $pid"
    fi
    log "stopped in ${SECONDS}s"
else
    log "not running (data $PG_DATA)"
fi

if (( wipe )) && [[ -e "$PG_DIR" ]]; then
    # Only delete a folder start.sh made (it holds the marker file), never "/" or similar.
    [[ "$(realpath -m "$PG_DIR")" != / ]] || die "refusing to wipe /"
    [[ -e "$PG_MARKER" ]] || die "refusing to wipe $PG_DIR: no $(basename "$PG_MARKER") marker, not made by start.sh"
    rm -rf "$PG_DIR"
    log "wiped $PG_DIR"
fi
