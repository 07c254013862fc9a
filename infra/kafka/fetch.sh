#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (and a logging backend) with Maven into
# ${JOURNEY_CACHE:-$HOME/.cache/mbc-journey}/kafka-<version>/libs; the JDK and Maven
# themselves are installed from Debian when missing.
# Idempotent: does nothing when the libs are already complete.
# Usage: bash infra/kafka/fetch.sh        (prints the libs directory on stdout)
set -euo pipefail

# shellcheck source=infra/kafka/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# A ".complete" stamp is written last, so an interrupted fetch is simply redone.
if [[ -f "$KAFKA_LIBS/.complete" ]]; then
    echo "$KAFKA_LIBS"
    exit 0
fi

# Maven and a JDK from Debian when missing (see ensure_tools in common.sh).
ensure_tools java mvn

mkdir -p "$KAFKA_HOME"
# Serialise concurrent fetches of the same version (e.g. parallel test sessions).
exec 8>"$KAFKA_HOME/.fetch.lock"
flock -w 600 8 || die "timed out waiting for another fetch of Kafka $KAFKA_VERSION"
if [[ -f "$KAFKA_LIBS/.complete" ]]; then   # another process finished it meanwhile
    echo "$KAFKA_LIBS"
    exit 0
fi

# Kafka 4.x logs through log4j2 instead of reload4j: switch the pom profile.
profile_args=()
if (( KAFKA_MAJOR >= 4 )); then
    profile_args=(-P log4j2)
fi

log "fetching Kafka $KAFKA_VERSION jars with Maven into $KAFKA_LIBS"
tmp="$KAFKA_HOME/libs.tmp.$$"
rm -rf "$tmp"
trap 'rm -rf "$tmp"' EXIT
mvn -q -B -f "$KAFKA_INFRA_DIR/pom.xml" \
    "-Dkafka.version=$KAFKA_VERSION" "${profile_args[@]}" \
    dependency:copy-dependencies -DincludeScope=runtime "-DoutputDirectory=$tmp" 2>&1 \
    | sed 's/\x1b\[[0-9;]*m//g' >&2   # Maven 3.8 emits stray ANSI resets even with -q -B

[[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || die "Maven did not produce kafka_2.13-$KAFKA_VERSION.jar"
rm -rf "$KAFKA_LIBS"
mv "$tmp" "$KAFKA_LIBS"
trap - EXIT
date -u +%Y-%m-%dT%H:%M:%SZ >"$KAFKA_LIBS/.complete"
log "fetched $(find "$KAFKA_LIBS" -name '*.jar' | wc -l) jars ($(du -sh "$KAFKA_LIBS" | cut -f1))"
echo "$KAFKA_LIBS"
