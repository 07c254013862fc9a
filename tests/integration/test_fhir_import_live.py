"""``journey fhir import --bootstrap`` on a real broker: every event published sealed with its
patient's key in the deployment's key store, and the same events as an embedded import.

A hospital's FHIR export goes to Kafka the way ``journey publish`` sends JSON Lines:
keyed by patient, each value sealed (no clinical value in clear on the topic), and
readable by the workers with the keys in their PostgreSQL database.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from mbcjourney.bootstrap import open_sealer
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.sealing import SEALED_PREFIX
from tests.support.cohorts import embedded_log, simulated_cohort
from tests.support.live import journey, read_topic

pytestmark = pytest.mark.integration

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


def test_a_fhir_export_is_published_sealed_and_opens_with_the_deployment_keys(
        kafka_bootstrap: str, kafka_topic_factory: Callable[..., str], postgres_db_url: str,
        tmp_path: Path) -> None:
    source = embedded_log(simulated_cohort(tmp_path / "cohort.jsonl", patients=12, seed=5),
                          tmp_path / "source.db", received_at=RECEIVED)
    export = tmp_path / "export"
    journey("fhir", "export", "--db", f"sqlite:///{source}", "--output", str(export),
            "--ndjson", cwd=tmp_path)
    topic = kafka_topic_factory(2, prefix="test.fhir")
    dead = kafka_topic_factory(1, prefix="test.fhir-dl")

    done = journey("fhir", "import", str(export), "--bootstrap", kafka_bootstrap,
                   "--topic", topic, "--dead-letter-topic", dead, "--keys", postgres_db_url,
                   cwd=tmp_path, ok=(0, 1))
    found = re.search(r"(\d+) events: (\d+) published", done.stdout)
    assert found, done.stdout
    published = int(found.group(2))
    assert published > 100

    # the same export into an embedded log, by the same command (received now, as above)
    journey("fhir", "import", str(export), "--db", f"sqlite:///{tmp_path / 'embedded.db'}",
            cwd=tmp_path, ok=(0, 1))
    embedded = EmbeddedEngine(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        expected = {e.event_id.hex for _, events in embedded.log.histories() for e in events}
    finally:
        embedded.close()
    assert len(expected) == published

    records = read_topic(kafka_bootstrap, topic, published)
    assert len(records) == published
    sealer = open_sealer(keys_url=postgres_db_url)
    opened = set()
    for record in records:
        assert record.value.startswith(SEALED_PREFIX.encode()), "a value in clear on the topic"
        patient_id = record.key.decode()
        event = orjson.loads(sealer.open(patient_id, record.value))
        assert event["patient_id"] == patient_id  # keyed by its patient
        opened.add(event["event_id"].replace("-", ""))
    assert opened == expected


def test_bootstrap_without_a_key_store_is_refused_before_anything_is_sent(
        kafka_bootstrap: str, tmp_path: Path) -> None:
    export = tmp_path / "empty"
    export.mkdir()
    (export / "Patient.ndjson").write_text("")
    result = journey("fhir", "import", str(export), "--bootstrap", kafka_bootstrap,
                     cwd=tmp_path, ok=(2,), unset=("JOURNEY_KEYS_URL",))
    assert "--keys" in result.stderr
