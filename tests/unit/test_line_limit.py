"""Issue 19 item 9: one maximum line size; ingest and publish dead-letter a longer line alike."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mbcjourney.events.codec import TOO_LONG_REASON
from mbcjourney.events.limits import MAX_EVENT_BYTES, MAX_RECORD_BYTES
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.ingest import ingest_lines
from mbcjourney.processors.kafkaio import (
    BROKER_MESSAGE_MAX_BYTES,
    MAX_REQUEST_BYTES,
    header,
)
from mbcjourney.processors.publisher import publish_lines
from tests.support.builders import PatientBuilder, dumps

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)  # after the builders' recorded_at
REASON = f"$: longer than {MAX_EVENT_BYTES} bytes"


class Sent:
    def get(self, timeout: float | None = None) -> Any:
        return None


class FakeProducer:
    """Refuses, as the real producer does, a record larger than its max_request_size."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, list[tuple[str, bytes]]]] = []

    def send(self, topic: str, value: bytes | None = None, key: bytes | None = None,
             headers: list[tuple[str, bytes]] | None = None) -> Sent:
        size = len(value or b"") + len(key or b"") + sum(
            len(k) + len(v) for k, v in headers or [])
        assert size <= MAX_REQUEST_BYTES, "MessageSizeTooLargeError"
        self.sent.append((topic, key, value, headers or []))
        return Sent()

    def flush(self, timeout: float | None = None) -> None:
        pass


def _lines(long_size: int) -> list[tuple[int, bytes]]:
    p = PatientBuilder("P-000001")
    included = p.raw("patient.included", "2024-01-02", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]})
    exam = p.raw("clinical_exam.recorded", "2024-02-01", {"ecog": 0})
    # A valid event, only long: a questionnaire with a long free-text answer.
    long = dumps(p.raw("questionnaire.recorded", "2024-02-01", {
        "instrument": "EORTC QLQ-C30", "items": {"comment": "x" * long_size}}))
    return [(1, dumps(included)), (2, long), (3, dumps(exam))]


def test_the_limits_fit_the_producer_and_the_broker() -> None:
    assert f"longer than {MAX_EVENT_BYTES} bytes" == TOO_LONG_REASON
    assert MAX_EVENT_BYTES < MAX_RECORD_BYTES <= MAX_REQUEST_BYTES <= BROKER_MESSAGE_MAX_BYTES


def test_issue19_item9_publish_dead_letters_a_line_over_the_limit_and_goes_on() -> None:
    lines = _lines(2 * 1024 * 1024)  # over 1 MB: the MessageSizeTooLargeError of the issue
    producer = FakeProducer()
    summary = publish_lines(lines, producer, origin="big.jsonl", received_at=RECEIVED,
                            topic="events", dead_letter_topic="dead")
    assert (summary.read, summary.published, dict(summary.rejected)) == (3, 2, {REASON: 1})
    (dead,) = [s for s in producer.sent if s[0] == "dead"]
    _, _, value, headers = dead
    original = lines[1][1]
    assert value == original[:MAX_EVENT_BYTES]
    assert header(headers, "reason") == REASON
    assert header(headers, "truncated_from_bytes") == str(len(original))
    assert header(headers, "original_sha256") == hashlib.sha256(original).hexdigest()


def test_issue19_item9_ingest_agrees_and_keeps_the_whole_line(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        log = SqlEventLog(engine)
        log.create()
        lines = _lines(MAX_EVENT_BYTES)  # just over the limit, far below 1 MB
        summary = ingest_lines(lines, log, origin="big.jsonl", received_at=RECEIVED)
        assert (summary.accepted, dict(summary.rejected)) == (2, {REASON: 1})
        (letter,) = log.dead_letters()
        assert (letter.reason, letter.original) == (REASON, lines[1][1])
    finally:
        engine.dispose()


def test_a_line_at_the_limit_is_judged_on_its_content() -> None:
    lines = _lines(0)
    (_, exam) = lines[2]
    padded = exam[:-1] + b"," + b'"pad":"' + b"y" * (MAX_EVENT_BYTES - len(exam) - 9) + b'"}'
    assert len(padded) == MAX_EVENT_BYTES
    summary = publish_lines([(1, padded)], FakeProducer(), origin="f", received_at=RECEIVED,
                            topic="events", dead_letter_topic="dead")
    assert REASON not in summary.rejected
