#!/usr/bin/env bash
# The whole test suite, as CI runs it: real PostgreSQL and real Kafka (KRaft) from
# this repo's own scripts, Chromium from Debian, then lint, type checks, import contracts
# and pytest.  Services this script started are stopped on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=.venv/bin

started_pg=""
started_kafka=""
cleanup() {
    [ -n "$started_kafka" ] && bash infra/kafka/stop.sh >/dev/null 2>&1 || true
    [ -n "$started_pg" ] && bash infra/postgres/stop.sh >/dev/null 2>&1 || true
}
trap cleanup EXIT

if [ -z "${JOURNEY_PG_URL:-}" ]; then
    pg_log=$(mktemp)
    JOURNEY_PG_URL=$(bash infra/postgres/start.sh 2>"$pg_log" | tail -n 1)
    grep -q "state=started" "$pg_log" && started_pg=1
    rm -f "$pg_log"
    export JOURNEY_PG_URL
fi
if [ -z "${JOURNEY_KAFKA_BOOTSTRAP:-}" ]; then
    kafka_log=$(mktemp)
    JOURNEY_KAFKA_BOOTSTRAP=$(bash infra/kafka/start.sh 2>"$kafka_log" | tail -n 1)
    grep -q "already running" "$kafka_log" || started_kafka=1
    rm -f "$kafka_log"
    export JOURNEY_KAFKA_BOOTSTRAP
fi
# The browser tests' Chromium, from Debian (installed when missing, never by `playwright
# install`); a JOURNEY_CHROMIUM already set is checked and kept.
JOURNEY_CHROMIUM=$(bash infra/chromium/ensure.sh | tail -n 1)
export JOURNEY_CHROMIUM
echo "services: postgres=${JOURNEY_PG_URL} kafka=${JOURNEY_KAFKA_BOOTSTRAP} chromium=${JOURNEY_CHROMIUM}"

echo "== ruff"
$BIN/ruff check .
echo "== mypy (strict)"
$BIN/python infra/typecheck.py
echo "== lint-imports (layering contracts)"
$BIN/python infra/lint_imports.py --no-logo
echo "== pytest"
$BIN/python -m pytest --durations=30 "$@"  # the slowest tests, for whoever trims the suite
