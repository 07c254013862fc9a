#!/usr/bin/env bash
# Make sure wrk (the HTTP load generator of bench.service) is installed, and print its path.
#
#   bash infra/wrk/ensure.sh                 # stdout: /usr/bin/wrk
#   WRK="$(bash infra/wrk/ensure.sh)"
#
# wrk comes from Debian's `wrk` package, installed when missing (root or password-less
# sudo; a clear error otherwise), as infra/chromium/ensure.sh installs Chromium.  It is
# written in C with LuaJIT scripting: one thread drives many connections, so the load
# generator is not what a Python service's benchmark measures.
#
# Knob: JOURNEY_WRK  an existing wrk executable to use instead (not installed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/apt.sh
source "$HERE/../apt.sh"

log() { printf 'wrk: %s\n' "$*" >&2; }
die() { printf 'wrk: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -n "${JOURNEY_WRK:-}" ]]; then
    [[ -x "$JOURNEY_WRK" ]] || die "JOURNEY_WRK=$JOURNEY_WRK is not an executable"
    printf '%s\n' "$JOURNEY_WRK"
    exit 0
fi

WRK="$(command -v wrk || true)"
if [[ -z "$WRK" ]]; then
    apt_install "wrk (the HTTP load generator of bench.service)" wrk
    WRK="$(command -v wrk || true)"
    [[ -n "$WRK" ]] || die "installed the 'wrk' package but no wrk is on PATH"
fi
# wrk has no --version; -v prints its version and exits (status 1 on some builds).
version="$("$WRK" -v 2>&1 | head -n 1 || true)"
[[ "$version" == wrk* ]] || die "$WRK -v did not answer as wrk: $version"
log "using $version"
printf '%s\n' "$WRK"
