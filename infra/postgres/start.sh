#!/usr/bin/env bash
# Start the local PostgreSQL used for development and by the test suite (when neither
# JOURNEY_PG_URL nor a Docker engine is available), and print its SQLAlchemy URL.
#
#   bash infra/postgres/start.sh            # stdout: postgresql+psycopg://journey@127.0.0.1:15432/journey
#   URL="$(bash infra/postgres/start.sh)"   # stdout holds only the URL; progress goes to stderr
#
# What it does, each step skipped when already done (so running it twice is harmless):
#   1. finds PostgreSQL server binaries (newest /usr/lib/postgresql/*/bin), installing the
#      Debian `postgresql` package when there are none;
#   2. initialises a cluster in $JOURNEY_PG_DIR/data (default /tmp/mbc-postgres) with trust
#      authentication for local connections, owned by an unprivileged OS user (initdb and
#      postgres refuse to run as root);
#   3. starts it on 127.0.0.1:$JOURNEY_PG_PORT (default 15432) plus a unix socket in
#      $JOURNEY_PG_DIR/socket, waiting (bounded) until it accepts connections;
#   4. creates the role $JOURNEY_PG_USER (LOGIN CREATEDB, so tests can make scratch
#      databases) and the database $JOURNEY_PG_DB owned by it (both default `journey`).
# If the server is already running it only checks the role and database and prints the URL.
# A machine-readable `journey-pg: state=started|running` line on stderr tells which case
# happened (the test fixture uses it to stop only a server it started).
# See common.sh for every environment knob.  Stop with infra/postgres/stop.sh [--wipe].
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/postgres/common.sh
source "$HERE/common.sh"

# Names go into SQL and the URL unquoted: keep them to plain identifiers.
[[ "$PG_PORT" =~ ^[0-9]+$ ]] || die "JOURNEY_PG_PORT must be a number, got '$PG_PORT'"
[[ "$PG_DB" =~ ^[a-z_][a-z0-9_]*$ ]] || die "JOURNEY_PG_DB must match [a-z_][a-z0-9_]*"
[[ "$PG_USER" =~ ^[a-z_][a-z0-9_]*$ ]] || die "JOURNEY_PG_USER must match [a-z_][a-z0-9_]*"
[[ "$PG_TIMEOUT" =~ ^[0-9]+$ ]] || die "JOURNEY_PG_TIMEOUT must be a number of seconds"
# A unix socket path is limited to 107 bytes (".s.PGSQL.<port>" included).
(( ${#PG_SOCKET_DIR} + 20 < 107 )) || die "JOURNEY_PG_DIR is too long for a unix socket path"

url() { printf 'postgresql+psycopg://%s@127.0.0.1:%s/%s\n' "$PG_USER" "$1" "$PG_DB"; }

# Install the Debian server package.  A temporary policy-rc.d stops the package's
# postinst from starting the default "main" cluster on port 5432, which nobody here uses.
apt_install_postgresql() {
    [[ "$(id -u)" -eq 0 ]] || die "no PostgreSQL server binaries found; install the 'postgresql' package (needs root)"
    command -v apt-get >/dev/null 2>&1 || die "no PostgreSQL server binaries and no apt-get; set JOURNEY_PG_BINDIR"
    local policy=/usr/sbin/policy-rc.d made_policy=0
    if [[ ! -e "$policy" ]]; then
        printf '#!/bin/sh\n# temporary, from infra/postgres/start.sh: do not start services\nexit 101\n' >"$policy"
        chmod 0755 "$policy"
        made_policy=1
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    log "no PostgreSQL server binaries found: installing the Debian 'postgresql' package"
    export DEBIAN_FRONTEND=noninteractive
    # Try with the current package lists first; refresh them once if that fails.
    if ! apt-get install -y -q --no-install-recommends postgresql >&2; then
        apt-get update -q >&2
        apt-get install -y -q --no-install-recommends postgresql >&2
    fi
    if (( made_policy )); then
        rm -f "$policy"
        trap - EXIT
    fi
}

# Wait (bounded, polling) until the server accepts TCP connections on 127.0.0.1:$1.
wait_ready() {
    local port="$1" deadline=$((SECONDS + PG_TIMEOUT))
    until "$BINDIR/pg_isready" -q -h 127.0.0.1 -p "$port" -t 2; do
        (( SECONDS < deadline )) || die "server not accepting connections on 127.0.0.1:$port after ${PG_TIMEOUT}s (log: $PG_LOG)"
        sleep 0.2
    done
}

# Create the application role and database when missing.  psql runs as the cluster
# owner over the unix socket, as the bootstrap superuser `postgres` (trust auth).
ensure_role_and_db() {
    local port="$1" socket_dir="$2"
    psql_admin() {
        run_as_owner "$BINDIR/psql" -X -q -t -A -v ON_ERROR_STOP=1 \
            -h "$socket_dir" -p "$port" -U postgres -d postgres "$@"
    }
    if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_roles WHERE rolname = '$PG_USER'")" ]]; then
        log "creating role $PG_USER"
        psql_admin -c "CREATE ROLE \"$PG_USER\" LOGIN CREATEDB"
    elif [[ "$PG_USER" != postgres ]]; then
        psql_admin -c "ALTER ROLE \"$PG_USER\" LOGIN CREATEDB"
    fi
    # DROP DATABASE ... WITH (FORCE) (test fixtures, benchmarks) must also end an
    # autovacuum worker busy in that database, which runs as no role at all: without
    # pg_signal_backend the drop then fails ("must be a member of the role whose
    # process is being terminated"), seen after a bulk COPY set autoanalyze going.
    local granted
    if [[ "$PG_USER" != postgres ]] \
            && ! granted="$(psql_admin -c "GRANT pg_signal_backend TO \"$PG_USER\"" 2>&1)"; then
        log "warning: could not grant pg_signal_backend to $PG_USER: $granted"
    fi
    if [[ -z "$(psql_admin -c "SELECT 1 FROM pg_database WHERE datname = '$PG_DB'")" ]]; then
        log "creating database $PG_DB"
        psql_admin -c "CREATE DATABASE \"$PG_DB\" OWNER \"$PG_USER\""
    fi
}

# --- 0. the folder and a lock against two start-ups at once -----------------------------
if [[ -d "$PG_DIR" && ! -e "$PG_MARKER" && -n "$(ls -A "$PG_DIR")" ]]; then
    die "$PG_DIR exists, is not empty and was not made by this script; pick another JOURNEY_PG_DIR"
fi
mkdir -p "$PG_DIR"
touch "$PG_MARKER"
exec 9>>"$PG_DIR/.start.lock"
flock -w "$PG_TIMEOUT" 9 || die "another start.sh has held $PG_DIR/.start.lock for ${PG_TIMEOUT}s"

pick_osuser

# --- 1. already running? ---------------------------------------------------------------
pid="$(running_pid)"
if [[ -n "$pid" ]]; then
    # postmaster.pid lines: 1 pid, 2 data dir, 3 start time, 4 port, 5 socket dir, ...
    port="$(sed -n 4p "$PG_DATA/postmaster.pid")"
    socket_dir="$(sed -n 5p "$PG_DATA/postmaster.pid")"
    [[ "$port" == "$PG_PORT" ]] || log "note: already running on port $port, not $PG_PORT"
    BINDIR="$(find_bindir "$(cat "$PG_DATA/PG_VERSION")")"
    [[ -n "$BINDIR" ]] || die "server running (pid $pid) but its binaries are gone"
    wait_ready "$port"
    ensure_role_and_db "$port" "$socket_dir"
    log "state=running (pid $pid, data $PG_DATA)"
    url "$port"
    exit 0
fi

# --- 2. server binaries ----------------------------------------------------------------
if [[ -f "$PG_DATA/PG_VERSION" ]]; then
    # An existing cluster can only be started by its own major version.
    major="$(cat "$PG_DATA/PG_VERSION")"
    BINDIR="$(find_bindir "$major")"
    [[ -n "$BINDIR" ]] || die "cluster in $PG_DATA is PostgreSQL $major, whose binaries are missing; run stop.sh --wipe"
else
    BINDIR="$(find_bindir)"
    if [[ -z "$BINDIR" ]]; then
        apt_install_postgresql
        BINDIR="$(find_bindir)"
        [[ -n "$BINDIR" ]] || die "installed 'postgresql' but found no /usr/lib/postgresql/*/bin"
    fi
fi
log "using $("$BINDIR/postgres" --version) from $BINDIR"

# --- 3. the unprivileged OS user and folder ownership ------------------------------------
if [[ "$(id -u)" -eq 0 ]]; then
    [[ "$PG_OSUSER" != root ]] || die "$PG_DATA is owned by root; the server cannot run as root (stop.sh --wipe)"
    if ! id -u "$PG_OSUSER" >/dev/null 2>&1; then
        log "creating system user $PG_OSUSER"
        useradd --system --user-group --no-create-home --home-dir /var/lib/postgresql \
            --shell /usr/sbin/nologin "$PG_OSUSER"
    fi
    chown "$PG_OSUSER:" "$PG_DIR" "$PG_MARKER" "$PG_DIR/.start.lock"
    run_as_owner test -w "$PG_DIR" -a -x "$PG_DIR" \
        || die "user $PG_OSUSER cannot reach $PG_DIR (a parent folder is private?); set JOURNEY_PG_DIR under /tmp"
fi
run_as_owner mkdir -p "$PG_SOCKET_DIR"

# --- 4. initialise the cluster -----------------------------------------------------------
if [[ ! -f "$PG_DATA/PG_VERSION" ]]; then
    # A half-made data dir (interrupted initdb) would make initdb refuse: start over.
    rm -rf "$PG_DATA"
    log "initialising a cluster in $PG_DATA"
    # trust for local socket and 127.0.0.1/::1 connections: a throw-away dev/test cluster
    # reachable only from this machine.  --no-sync: nothing here needs to survive a crash.
    run_as_owner "$BINDIR/initdb" -D "$PG_DATA" --username=postgres --auth=trust \
        --encoding=UTF8 --no-locale --no-sync >"$PG_DIR/initdb.log" 2>&1 \
        || { tail -n 20 "$PG_DIR/initdb.log" >&2; die "initdb failed"; }
    printf "\n# Settings owned by infra/postgres/start.sh (rewritten at every start).\ninclude_if_exists = 'journey.conf'\n" \
        | run_as_owner tee -a "$PG_DATA/postgresql.conf" >/dev/null
fi

# Network and speed settings, rewritten each start so a new JOURNEY_PG_PORT takes effect.
# fsync/synchronous_commit/full_page_writes off: fast tests, and this cluster is disposable.
run_as_owner tee "$PG_DATA/journey.conf" >/dev/null <<EOF
listen_addresses = '127.0.0.1'
port = $PG_PORT
unix_socket_directories = '$PG_SOCKET_DIR'
max_connections = 200
fsync = off
synchronous_commit = off
full_page_writes = off
EOF

# --- 5. start and wait ---------------------------------------------------------------------
log "starting on 127.0.0.1:$PG_PORT (log: $PG_LOG)"
# 9>&-: the server must not inherit the lock descriptor, or it would hold the lock forever.
if ! run_as_owner "$BINDIR/pg_ctl" -D "$PG_DATA" -l "$PG_LOG" -w -t "$PG_TIMEOUT" start >&2 9>&-; then
    tail -n 20 "$PG_LOG" >&2 || true
    die "pg_ctl start failed (is port $PG_PORT taken?)"
fi
wait_ready "$PG_PORT"

# --- 6. application role and database -----------------------------------------------------
ensure_role_and_db "$PG_PORT" "$PG_SOCKET_DIR"
log "state=started in ${SECONDS}s (data $PG_DATA)"
url "$PG_PORT"
