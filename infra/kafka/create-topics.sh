#!/usr/bin/env bash
# Create the topics of infra/topics.txt that are missing on a broker (start.sh already
# does this for the local broker; use this for another broker or after editing the file).
# Usage: bash infra/kafka/create-topics.sh [BOOTSTRAP]   (default 127.0.0.1:$JOURNEY_KAFKA_PORT)
set -euo pipefail

# shellcheck source=infra/kafka/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

bootstrap=${1:-${JOURNEY_KAFKA_BOOTSTRAP:-$KAFKA_BOOTSTRAP}}
PYTHON=$(pick_python)
"$PYTHON" "$KAFKA_INFRA_DIR/kafkactl.py" wait --bootstrap "$bootstrap" --timeout "${JOURNEY_KAFKA_START_TIMEOUT:-90}"
"$PYTHON" "$KAFKA_INFRA_DIR/kafkactl.py" ensure --bootstrap "$bootstrap" --topics "$TOPICS_FILE"
