"""``journey publish`` without a broker: a fake of the publisher's own Producer port."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import orjson
import pytest

from mbcjourney.errors import ServiceUnavailable
from mbcjourney.processors.kafkaio import header
from mbcjourney.processors.publisher import publish_lines
from tests.support.builders import PatientBuilder, dumps

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


class Sent:
    def __init__(self, error: Exception | None = None) -> None:
        self.error = error

    def get(self, timeout: float | None = None) -> Any:
        if self.error is not None:
            raise self.error
        return None


class FakeProducer:
    def __init__(self, fail_on: int | None = None) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []
        self.fail_on = fail_on
        self.flushed = False

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> Sent:
        self.sent.append((topic, key, value, headers or []))
        if self.fail_on is not None and len(self.sent) == self.fail_on:
            return Sent(TimeoutError("no ack"))
        return Sent()

    def flush(self, timeout: float | None = None) -> None:
        self.flushed = True


def lines() -> list[tuple[int, bytes]]:
    patient = PatientBuilder("P-000007")
    inclusion = patient.raw("patient.included", "2024-01-02", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]})
    before_birth = patient.raw("clinical_exam.recorded", "1950-03-01", {"ecog": 1})
    no_recorded_at = {k: v for k, v in patient.raw(
        "clinical_exam.recorded", "2024-02-01", {"ecog": 0}).items() if k != "recorded_at"}
    return list(enumerate([dumps(inclusion), b"{not json", dumps(before_birth),
                           dumps(no_recorded_at)], start=1))


def test_valid_events_keyed_by_patient_and_rejects_dead_lettered_with_reasons() -> None:
    producer = FakeProducer()
    summary = publish_lines(lines(), producer, origin="cohort.jsonl", received_at=RECEIVED,
                            topic="ev", dead_letter_topic="dl")

    assert (summary.read, summary.published, summary.rejected_total) == (4, 2, 2)
    assert dict(summary.rejected) == {"$: not valid JSON": 1,
                                      "occurred_at: before the patient's birth year": 1}
    events = [s for s in producer.sent if s[0] == "ev"]
    assert [key for _, key, _, _ in events] == [b"P-000007", b"P-000007"]
    stamped = orjson.loads(events[1][2] or b"")
    assert stamped["recorded_at"].startswith("2026-12-01T00:00:00")  # filled in, as ingest does
    letters = [s for s in producer.sent if s[0] == "dl"]
    assert [(key, header(h, "origin"), header(h, "reason")) for _, key, _, h in letters] == [
        (None, "cohort.jsonl:2", "$: not valid JSON"),
        (b"P-000007", "cohort.jsonl:3", "occurred_at: before the patient's birth year"),
    ]
    assert letters[0][2] == b"{not json"  # the original bytes
    assert producer.flushed


def test_a_send_that_failed_is_never_silent() -> None:
    with pytest.raises(ServiceUnavailable, match=r"cohort\.jsonl:4"):
        publish_lines(lines(), FakeProducer(fail_on=2), origin="cohort.jsonl",
                      received_at=RECEIVED)
