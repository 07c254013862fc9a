#!/usr/bin/env bash
# Make sure a Chromium for the browser tests is installed, and print its path.
#
#   bash infra/chromium/ensure.sh            # stdout: /usr/bin/chromium
#   CHROMIUM="$(bash infra/chromium/ensure.sh)"
#
# The browser comes from Debian's `chromium` package, installed when missing (root or
# password-less sudo; a clear error otherwise), as infra/postgres/start.sh installs
# PostgreSQL.  Never `playwright install`: no browser build is downloaded.  Playwright
# is pointed at this executable (JOURNEY_CHROMIUM, exported by infra/run-tests.sh).
#
# Knob: JOURNEY_CHROMIUM  an existing Chromium executable to use instead (not installed).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=infra/apt.sh
source "$HERE/../apt.sh"

log() { printf 'chromium: %s\n' "$*" >&2; }
die() { printf 'chromium: ERROR: %s\n' "$*" >&2; exit 1; }

if [[ -n "${JOURNEY_CHROMIUM:-}" ]]; then
    [[ -x "$JOURNEY_CHROMIUM" ]] || die "JOURNEY_CHROMIUM=$JOURNEY_CHROMIUM is not an executable"
    printf '%s\n' "$JOURNEY_CHROMIUM"
    exit 0
fi

CHROMIUM=/usr/bin/chromium
if [[ ! -x "$CHROMIUM" ]]; then
    apt_install "Chromium (for the browser tests)" chromium
    [[ -x "$CHROMIUM" ]] || die "installed the 'chromium' package but $CHROMIUM is missing"
fi
# --version starts no browser; it proves the executable and its libraries load.
version="$("$CHROMIUM" --version 2>/dev/null)" || die "$CHROMIUM --version failed"
log "using $version"
printf '%s\n' "$CHROMIUM"
