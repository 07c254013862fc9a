# shellcheck shell=bash
# shellcheck disable=SC2034  # APT_INSTALLED is read by the scripts that source this file
# Install missing Debian packages for the infra scripts (Kafka's JDK and Maven, Chromium),
# the way infra/postgres/start.sh installs PostgreSQL.  Sourced, not executed.
#
#   source infra/apt.sh
#   apt_install WHAT PACKAGE-CHOICE...   # e.g. apt_install "a JDK and Maven" "openjdk-17-jdk-headless|default-jdk-headless" maven
#
# Each PACKAGE-CHOICE is one package name or alternatives separated by "|": the first
# that the package lists know is installed (openjdk-17 on Debian 12, the default JDK on
# releases without it).  Rules:
#   * only as root, or through a sudo that needs no password (`sudo -n`); otherwise a
#     clear error naming the packages to install;
#   * the current package lists are tried first; `apt-get update` runs at most once per
#     script (a fresh image has no lists; a stale one names versions no longer served);
#   * --no-install-recommends, --no-upgrade (what is installed is left as it is),
#     non-interactive, waiting (bounded) for another apt run to release the dpkg lock;
#     apt's output goes to stderr, so a caller's stdout stays machine-readable.

APT_UPDATED=${APT_UPDATED:-0}
APT_INSTALLED=""  # what apt_install installed last, for the caller's messages

apt__say() { printf '%s\n' "$*" >&2; }
apt__fail() { printf 'apt: ERROR: %s\n' "$*" >&2; exit 1; }

# "a|b" "c" -> "a (or b), c": the choices as a person reads them.
apt__describe() {
    local choice out=()
    for choice in "$@"; do
        if [[ "$choice" == *"|"* ]]; then
            out+=("${choice%%|*} (or ${choice#*|})")
        else
            out+=("$choice")
        fi
    done
    local IFS=,
    printf '%s\n' "${out[*]}" | sed 's/,/, /g; s/|/ or /g'
}

# The command prefix that makes apt-get run as root ("" when we are root), or fail.
apt__privilege() {
    local what="$1" packages="$2"
    if [[ "$(id -u)" -eq 0 ]]; then
        APT_AS=()
    elif command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1; then
        APT_AS=(sudo -n)
    else
        apt__fail "$what is missing; install the Debian packages: $packages (needs root or sudo; this script runs as $(id -un) without either)"
    fi
}

apt__update_once() {
    if (( APT_UPDATED == 0 )); then
        apt__say "apt: refreshing the package lists (apt-get update)"
        "${APT_AS[@]}" env DEBIAN_FRONTEND=noninteractive \
            apt-get -q -o DPkg::Lock::Timeout=300 update >&2 || apt__fail "apt-get update failed"
        APT_UPDATED=1
    fi
}

# Echo the first alternative of "a|b|c" that the package lists offer, or nothing.
apt__pick() {
    local choice="$1" name
    local IFS='|'
    for name in $choice; do
        # (not grep -q: an early exit could fail the pipeline under pipefail)
        # shellcheck disable=SC2143
        if [[ -n "$(apt-cache policy "$name" 2>/dev/null | sed -n 's/^ *Candidate: *//p' | grep -v '(none)')" ]]; then
            printf '%s\n' "$name"
            return 0
        fi
    done
    return 0
}

apt_install() {
    local what="$1"
    shift
    command -v apt-get >/dev/null 2>&1 \
        || apt__fail "$what is missing and there is no apt-get; install it by hand: $*"
    apt__privilege "$what" "$(apt__describe "$@")"
    local choice name packages=() tried_update=0
    for choice in "$@"; do
        name="$(apt__pick "$choice")"
        if [[ -z "$name" ]] && (( tried_update == 0 )); then
            apt__update_once
            tried_update=1
            name="$(apt__pick "$choice")"
        fi
        [[ -n "$name" ]] || apt__fail "no Debian package for $what among: ${choice//|/, }"
        packages+=("$name")
    done
    apt__say "apt: $what is missing: installing ${packages[*]}"
    APT_INSTALLED="${packages[*]}"
    # --no-upgrade: a package already installed (its program merely off PATH) is left as
    # it is, never upgraded under a running service.
    local install=("${APT_AS[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q
                   --no-install-recommends --no-upgrade -o DPkg::Lock::Timeout=300
                   "${packages[@]}")
    if ! "${install[@]}" >&2; then
        # The lists named a version the mirror no longer serves: refresh once, retry.
        (( APT_UPDATED == 0 )) || apt__fail "apt-get install ${packages[*]} failed"
        apt__update_once
        "${install[@]}" >&2 || apt__fail "apt-get install ${packages[*]} failed"
    fi
}
