# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared helpers for infra/postgres/start.sh and stop.sh.  Sourced, not executed.
#
# Layout of the local, throw-away PostgreSQL used by development and the test suite:
#
#   $JOURNEY_PG_DIR/                (default /tmp/mbc-postgres; owned by the server user)
#     .journey-pg                   marker: stop.sh --wipe only deletes a folder that has it
#     data/                         the cluster (PGDATA)
#     socket/                       unix socket directory
#     postgres.log                  server log
#
# Environment knobs (all optional):
#   JOURNEY_PG_DIR     folder above (default /tmp/mbc-postgres)
#   JOURNEY_PG_PORT    TCP port on 127.0.0.1 (default 15432)
#   JOURNEY_PG_DB      application database (default journey)
#   JOURNEY_PG_USER    application role (default journey)
#   JOURNEY_PG_BINDIR  PostgreSQL server bin dir; default: newest /usr/lib/postgresql/*/bin
#   JOURNEY_PG_OSUSER  unprivileged OS user that runs the server when we are root
#                      (default postgres, created when missing)
#   JOURNEY_PG_TIMEOUT seconds to wait for start/stop (default 60)

PG_DIR="${JOURNEY_PG_DIR:-/tmp/mbc-postgres}"
PG_PORT="${JOURNEY_PG_PORT:-15432}"
PG_DB="${JOURNEY_PG_DB:-journey}"
PG_USER="${JOURNEY_PG_USER:-journey}"
PG_TIMEOUT="${JOURNEY_PG_TIMEOUT:-60}"
PG_DATA="$PG_DIR/data"
PG_SOCKET_DIR="$PG_DIR/socket"
PG_LOG="$PG_DIR/postgres.log"
PG_MARKER="$PG_DIR/.journey-pg"

# Progress messages go to stderr so that stdout carries only the URL.
log() { printf 'journey-pg: %s\n' "$*" >&2; }
die() { printf 'journey-pg: ERROR: %s\n' "$*" >&2; exit 1; }

# Echo the newest PostgreSQL server bin dir (one with initdb, pg_ctl and postgres), or
# nothing.  JOURNEY_PG_BINDIR wins; a cluster that already exists needs its own major.
find_bindir() {
    local wanted_major="${1:-}" dir
    if [[ -n "${JOURNEY_PG_BINDIR:-}" ]]; then
        printf '%s\n' "$JOURNEY_PG_BINDIR"
        return 0
    fi
    if [[ -n "$wanted_major" ]]; then
        dir="/usr/lib/postgresql/$wanted_major/bin"
        [[ -x "$dir/pg_ctl" && -x "$dir/postgres" ]] && printf '%s\n' "$dir"
        return 0
    fi
    # Version-sort so that 9.6 < 15 < 16; keep the last complete one.
    local best=""
    while IFS= read -r dir; do
        [[ -x "$dir/initdb" && -x "$dir/pg_ctl" && -x "$dir/postgres" ]] && best="$dir"
    done < <(compgen -G '/usr/lib/postgresql/*/bin' | sort -V)
    [[ -n "$best" ]] && printf '%s\n' "$best"
    return 0
}

# Run a command as the OS user that owns the cluster.  initdb, pg_ctl and postgres
# refuse to run as root, so root hands over to an unprivileged account; any other
# user simply runs the command itself.
run_as_owner() {
    if [[ "$(id -u)" -eq 0 ]]; then
        if command -v runuser >/dev/null 2>&1; then
            runuser -u "$PG_OSUSER" -- "$@"
        else
            setpriv --reuid="$PG_OSUSER" --regid="$(id -g "$PG_OSUSER")" --init-groups -- "$@"
        fi
    else
        "$@"
    fi
}

# The OS user that runs the server: the owner of an existing data dir, else the
# configured one when root, else ourselves.
pick_osuser() {
    if [[ -d "$PG_DATA" ]]; then
        PG_OSUSER="$(stat -c %U "$PG_DATA")"
    elif [[ "$(id -u)" -eq 0 ]]; then
        PG_OSUSER="${JOURNEY_PG_OSUSER:-postgres}"
    else
        PG_OSUSER="$(id -un)"
    fi
}

# PID of the running postmaster of our data dir, or nothing.  postmaster.pid's first
# line is the PID; a stale file (crash, reboot) names a dead or foreign process.
running_pid() {
    local pid
    [[ -f "$PG_DATA/postmaster.pid" ]] || return 0
    pid="$(head -n 1 "$PG_DATA/postmaster.pid" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 0
    # /proc rather than kill -0: works even when the server belongs to another user.
    if [[ -d "/proc/$pid" ]] && grep -qa postgres "/proc/$pid/cmdline" 2>/dev/null; then
        printf '%s\n' "$pid"
    fi
    return 0
}
