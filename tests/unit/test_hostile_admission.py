"""Issue #19, the admission items: each defect as a named regression test.

Items 3, 4, 5, 7, 10, 11, 13 and 16 here; item 12 (keyless Kafka records) and the
all-paths comparison are in ``tests/integration/test_admission_paths.py``.
"""

from __future__ import annotations

import io
import logging
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
import structlog

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import InvalidEvent
from mbcjourney.events import decode_event
from mbcjourney.events.catalogue import ClinicalExamRecordedPayload, LabRecordedPayload
from mbcjourney.events.limits import MAX_EVENT_BYTES
from mbcjourney.events.upcasters import MAX_HER2_TEXT, parse_her2_text
from mbcjourney.processors.admission import BEFORE_BIRTH
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog
from mbcjourney.processors.histories import Histories, Offer, encode_deltas
from mbcjourney.processors.ingest import ingest_lines
from mbcjourney.projections.findings import FindingKind
from tests.support.builders import PatientBuilder, dumps

RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)


def reject(raw: bytes) -> InvalidEvent:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw, received_at=RECEIVED)
    return caught.value


@pytest.fixture
def log(tmp_path: Path) -> Iterator[SqlEventLog]:
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    event_log = SqlEventLog(engine)
    event_log.create()
    yield event_log
    engine.dispose()


def inclusion(p: PatientBuilder, on: str = "2024-01-10", birth_year: int = 1950) -> bytes:
    return dumps(p.raw("patient.included", on, {
        "birth_year": birth_year, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["bone"]}))


def test_item03_a_recorded_at_beyond_year_9999_in_utc_is_one_rejection_and_costs_no_line(
        log: SqlEventLog) -> None:
    p = PatientBuilder("P-000003")
    lines = [inclusion(p),
             dumps(p.raw("clinical_exam.recorded", "2024-02-01", {"ecog": 1},
                         recorded="9999-12-31T23:00:00-05:00")),
             dumps(p.raw("clinical_exam.recorded", "2024-03-01", {"ecog": 0}))]
    summary = ingest_lines(enumerate(lines, 1), log, origin="f", received_at=RECEIVED)
    assert (summary.accepted, summary.rejected_total) == (2, 1)
    (reason,) = summary.rejected
    assert reason.startswith("recorded_at: year must be between 1900 and 2100")
    assert [d.original for d in log.dead_letters()] == [lines[1]]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_item04_non_finite_numbers_are_refused_where_a_number_is_expected(literal: str) -> None:
    p = PatientBuilder("P-000004")
    lab = dumps(p.raw("lab.recorded", "2024-01-02", {"test": "CEA", "value": 1.5,
                                                     "unit": "ng/mL"}))
    error = reject(lab.replace(b'"value":1.5', f'"value":{literal}'.encode()))
    assert error.errors[0].field in {"$", "payload.value"}
    quest = dumps(p.raw("questionnaire.recorded", "2024-01-02", {"instrument": "Q",
                                                                 "items": {"q1": 2}}))
    error = reject(quest.replace(b'"q1":2', f'"q1":{literal}'.encode()))
    assert error.errors[0].field.startswith(("$", "payload.items."))


def test_item05_a_restored_history_knows_an_upper_case_id_so_its_twin_is_a_conflict() -> None:
    p = PatientBuilder("P-000005")
    raw = p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1})
    upper = dumps(dict(raw, event_id=raw["event_id"].upper()))
    restored = Histories()
    for value in encode_deltas(0, [upper]):
        restored.restore(0, value)
    twin = decode_event(dumps(dict(raw, payload={"ecog": 3})), received_at=RECEIVED)
    same = decode_event(dumps(raw), received_at=RECEIVED)
    assert restored.offer(0, twin, dumps(dict(raw, payload={"ecog": 3}))) is Offer.CONFLICT
    assert restored.offer(0, same, dumps(raw)) is Offer.DUPLICATE


def test_item07_a_fact_before_birth_gives_the_same_results_whatever_the_arrival_order(
        tmp_path: Path) -> None:
    p = PatientBuilder("P-000007")
    included = inclusion(p, birth_year=1950)
    line = dumps(p.raw("line.started", "2024-01-15", {"line_ref": "L1",
                                                      "drugs": ["paclitaxel"]}))
    death = dumps(p.raw("death.recorded", "1933-05-01", {"cause": "unknown"}))
    exports = []
    for name, order in (("first", [included, line, death]), ("last", [death, included, line])):
        engine = EmbeddedEngine(f"sqlite:///{tmp_path / name}.db")
        try:
            summary = engine.ingest(enumerate(order, 1), origin=name, received_at=RECEIVED)
            engine.catch_up()
            exports.append((engine.store.patient_rows(), engine.store.line_rows()))
            findings = {f.finding for f in engine.store.finding_rows()}
        finally:
            engine.close()
        if name == "first":  # the inclusion is known: refused at admission
            assert dict(summary.rejected) == {str(BEFORE_BIRTH): 1}
        else:  # cannot be judged on arrival: stored, then left out with a finding
            assert summary.rejected_total == 0
            assert FindingKind.FACT_BEFORE_BIRTH in findings
    assert exports[0] == exports[1]
    assert exports[0][0][0].status == "on_treatment"  # the 1933 death did not count


def test_item07_an_inclusion_before_its_own_birth_year_is_refused() -> None:
    from mbcjourney.processors.admission import BirthYears

    event = decode_event(inclusion(PatientBuilder("P-000071"), "1940-01-01", 1950),
                         received_at=RECEIVED)
    with pytest.raises(InvalidEvent, match="before the patient's birth year"):
        BirthYears().admit(event)


@pytest.mark.parametrize("occurred", ["20240115", "1705276800", "2024-01-15 10"])
def test_item10_numeric_strings_are_not_read_as_unix_timestamps(occurred: str) -> None:
    p = PatientBuilder("P-000010")
    error = reject(dumps(p.raw("clinical_exam.recorded", occurred, {"ecog": 1})))
    assert error.errors[0].field == "occurred_at"


@pytest.mark.parametrize("recorded", [1700000000, "1700000000", "2024-01-15"])
def test_item10_recorded_at_must_be_an_iso_date_time(recorded: object) -> None:
    p = PatientBuilder("P-000010")
    raw = p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1})
    raw["recorded_at"] = recorded
    assert reject(dumps(raw)).errors[0].field == "recorded_at"


def test_item11_a_repeated_key_is_refused_not_resolved(log: SqlEventLog) -> None:
    p = PatientBuilder("P-000011")
    body = dumps(p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1}))
    nested = body.replace(b'"payload":{', b'"payload":{"ecog":4,')
    top = body.replace(b'{"event_id"', b'{"patient_id":"P-999999","event_id"', 1)
    for raw in (nested, top):
        error = reject(raw)
        assert str(error) == "$: an object repeats a key"
        assert "ecog" not in str(error)
        assert "patient_id" not in str(error)
    summary = ingest_lines(enumerate([nested, top], 1), log, origin="f", received_at=RECEIVED)
    assert (summary.accepted, summary.rejected_total) == (0, 2)


def test_item13_the_her2_v0_text_is_bounded_and_parsed_in_linear_time() -> None:
    worst = "2+" + " " * (MAX_HER2_TEXT - 3) + "x"  # the old pattern backtracked on this
    with pytest.raises(ValueError, match="ISH part not understood"):
        parse_her2_text(worst)
    with pytest.raises(ValueError, match=f"longer than {MAX_HER2_TEXT}"):
        parse_her2_text("2+" + " " * 200_000 + "x")
    assert parse_her2_text("  IHC 2+   FISH neg  ") == ("2+", "not_amplified")


def test_item13_a_line_over_the_size_limit_is_refused_before_parsing() -> None:
    p = PatientBuilder("P-000013")
    raw = dumps(p.raw("lab.recorded", "2024-01-02", {"test": "x" * MAX_EVENT_BYTES,
                                                     "value": 1.0, "unit": "U"}))
    assert str(reject(raw)) == f"$: longer than {MAX_EVENT_BYTES} bytes"


FREE_TEXT = "Mrs Smith feels low since her husband left"


def test_item16_input_keys_never_reach_a_reason_or_a_log_line(log: SqlEventLog) -> None:
    p = PatientBuilder("P-000016")
    lines = [
        dumps(p.raw("questionnaire.recorded", "2024-01-02", {
            "instrument": "Q", "items": {FREE_TEXT * 2: "y" * 5000}})),  # key over 64
        dumps(p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1, FREE_TEXT: 1})),
        dumps(dict(p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1}),
                   **{FREE_TEXT: True})),
    ]
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(stream),
                        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG))
    try:
        summary = ingest_lines(enumerate(lines, 1), log, origin="f", received_at=RECEIVED)
    finally:
        structlog.reset_defaults()
        handler.close()
    assert summary.rejected_total == 3
    reasons = [d.reason for d in log.dead_letters()] + list(summary.rejected)
    assert all(part not in text for text in [*reasons, stream.getvalue()]
               for part in ("Smith", "husband", "low since"))
    assert all("#" in r for r in summary.rejected), summary.rejected
    assert "event.rejected" in stream.getvalue()  # the log was captured at all


def test_item16_a_dead_letter_keeps_the_original_bytes(log: SqlEventLog) -> None:
    raw = orjson.dumps({"event_id": str(uuid.uuid4()), FREE_TEXT: 1})
    ingest_lines(enumerate([raw], 1), log, origin="f", received_at=RECEIVED)
    (letter,) = log.dead_letters()
    assert letter.original == raw
    assert FREE_TEXT not in letter.reason


def test_fuzzed_a_huge_integer_in_an_event_without_recorded_at_is_a_rejection() -> None:
    """Found by tests/property/test_admission_properties.py: a TypeError escaped."""
    p = PatientBuilder("P-000020")
    raw = p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1})
    del raw["recorded_at"]
    error = reject(dumps(raw).replace(b'"ecog":1', b'"ecog":99999999999999999999999'))
    assert str(error) == "$: an integer does not fit in 64 bits"


def test_a_nul_character_anywhere_is_refused_before_it_can_reach_a_text_column() -> None:
    """PostgreSQL text cannot hold U+0000 (issue #19 item 6: it failed a whole batch)."""
    p = PatientBuilder("P-000006")
    lab = p.raw("lab.recorded", "2024-01-02", {"test": "CA\u000015-3", "value": 1.0,
                                              "unit": "U/mL"})
    assert str(reject(dumps(lab))) == "$: a NUL character (U+0000) is not allowed"
    key = dumps(p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1})).replace(
        b'"ecog"', b'"ec\\u0000og"')
    assert str(reject(key)) == "$: a NUL character (U+0000) is not allowed"


@pytest.mark.parametrize("name", ["pacli\ntaxel", "Taxol\r", "a\tb", "x\x7f"])
def test_item17_a_drug_name_with_a_control_character_is_refused(name: str) -> None:
    p = PatientBuilder("P-000017")
    raw = dumps(p.raw("line.started", "2024-01-02", {"line_ref": "L1", "drugs": [name]}))
    assert reject(raw).errors[0].field == "payload.drugs.0"


def test_item07_a_stored_fact_before_birth_sent_again_is_a_duplicate(log: SqlEventLog) -> None:
    """Sent before its inclusion it is stored; sent again after it, a duplicate, not a
    rejection: a rerun after a kill, or a file published twice, adds nothing."""
    p = PatientBuilder("P-000072")
    death = dumps(p.raw("death.recorded", "1933-05-01", {"cause": "unknown"}))
    lines = [death, inclusion(p, birth_year=1950), death]
    first = ingest_lines(enumerate(lines, 1), log, origin="f", received_at=RECEIVED)
    assert (first.accepted, first.duplicates, first.rejected_total) == (2, 1, 0)
    again = ingest_lines(enumerate(lines, 1), log, origin="f", received_at=RECEIVED)
    assert (again.accepted, again.duplicates, again.rejected_total) == (0, 3, 0)


@pytest.mark.parametrize("edit", [
    (b'"payload":{', b'"payload":{"ecog" :4,'),  # the repeat spaced: the strict path
    (b'"payload":{', b'"payload":{"ecog":4,'),  # a plain repeat: the counts differ
])
def test_item11_a_repeated_key_is_refused_however_it_is_written(edit: tuple[bytes, bytes]
                                                                ) -> None:
    p = PatientBuilder("P-000111")
    body = dumps(p.raw("lab.recorded", "2024-01-02", {"test": "CEA", "value": 1.0,
                                                      "unit": "ng/mL"}))
    body = body.replace(b'"payload":{', b'"payload":{"ecog":1,').replace(b"lab.recorded",
                                                                       b"clinical_exam.recorded")
    body = body.replace(b'"test":"CEA","value":1.0,"unit":"ng/mL"', b'"weight_kg":60.0')
    base = decode_event(body, received_at=RECEIVED)  # the unedited line is valid
    assert isinstance(base.payload, ClinicalExamRecordedPayload)
    assert base.payload.ecog == 1
    assert str(reject(body.replace(*edit))) == "$: an object repeats a key"


def test_item11_text_that_looks_like_a_key_is_not_a_repeat() -> None:
    """A value holding '\\":' makes the plain path's count differ: the strict path decides."""
    p = PatientBuilder("P-000112")
    raw = dumps(p.raw("lab.recorded", "2024-01-02", {"test": 'CA "15":3', "value": 1.0,
                                                     "unit": "U/mL"}))
    assert b'\\":' in raw
    lab = decode_event(raw, received_at=RECEIVED)
    assert isinstance(lab.payload, LabRecordedPayload)
    assert lab.payload.test == 'CA "15":3'


def test_a_conflict_is_an_event_conflict_dead_lettered_like_any_refusal(
        log: SqlEventLog) -> None:
    from mbcjourney.errors import EventConflict

    p = PatientBuilder("P-000019")
    raw = p.raw("clinical_exam.recorded", "2024-01-02", {"ecog": 1})
    twin = dict(raw, payload={"ecog": 2})
    summary = ingest_lines(enumerate([dumps(raw), dumps(twin)], 1), log, origin="f",
                           received_at=RECEIVED)
    assert dict(summary.rejected) == {str(EventConflict.REASON): 1}
    assert issubclass(EventConflict, InvalidEvent)
    assert [d.reason for d in log.dead_letters()] == [str(EventConflict.REASON)]
