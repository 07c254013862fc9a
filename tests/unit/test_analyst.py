"""The analyst projection API: declaring, loading, checking rows, naming the failing event."""

from __future__ import annotations

import re
import textwrap
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mbcjourney.analyst import (
    Column,
    PatientHistory,
    Projection,
    ProjectionFailed,
    ProjectionLoadError,
    Row,
    erased,
    lines,
    load_projection,
    projection,
)
from mbcjourney.events.catalogue import ImagingPerformed
from mbcjourney.projections import build_history
from mbcjourney.settings import DEFAULT_CLINICAL, ClinicalSettings
from tests.support.builders import PatientBuilder

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "docs" / "examples"


def history() -> PatientHistory:
    b = PatientBuilder("P-000042")
    events = [b.included("2024-01-10"), b.ihc("2024-01-05"),
              b.line("2024-01-20", "L1", "Taxol"), b.imaging("2024-03-20", "PR"),
              b.progression("2024-06-01"), b.ended("2024-06-01", "L1"),
              b.biopsy("2024-06-20"), b.line("2024-07-01", "L2", "Xeloda"),
              b.imaging("2024-09-01", "SD")]
    return build_history("P-000042", events)


def write(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def returning(rows: list[tuple[object, ...]]) -> Callable[[PatientHistory, ClinicalSettings],
                                                           list[tuple[object, ...]]]:
    return lambda _h, _s: rows


# --- declaring and checking rows -----------------------------------------------------------


def test_rows_get_patient_id_first_and_accept_mappings_or_sequences() -> None:
    @projection("counts", columns=[Column("kind", str, key=True), Column("n", int),
                                   Column("share", float)])
    def counts(h: PatientHistory, s: ClinicalSettings) -> Iterator[Row]:
        yield {"kind": "imaging", "n": 2, "share": 1}  # an int is fine for a float column
        yield ("line", 2, 0.5)

    assert counts.rows(history(), DEFAULT_CLINICAL) == [
        ("P-000042", "imaging", 2, 1.0), ("P-000042", "line", 2, 0.5)]
    assert counts.column_names == ("patient_id", "kind", "n", "share")
    assert counts.key_names == ("patient_id", "kind")


@pytest.mark.parametrize(("row", "reason"), [
    ({"n": "3"}, "row 1, column 'n': expected int, got str"),
    ({"n": True}, "row 1, column 'n': expected int, got bool"),
    ({"n": 1, "m": 2}, "row 1: undeclared column(s) m"),
    ((1, 2), "row 1: 2 values for 1 declared columns"),
    (7, "row 1: a row must be a mapping or a sequence, not int"),
])
def test_a_row_that_breaks_its_columns_names_patient_and_event(row: object, reason: str) -> None:
    broken = Projection("broken", (Column("n", int),), lambda h, s: [row])  # type: ignore[list-item]
    h = history()
    with pytest.raises(ProjectionFailed) as caught:
        broken.rows(h, DEFAULT_CLINICAL)
    assert caught.value.patient_id == "P-000042"
    assert caught.value.event_id == str(h.events[-1].event_id)
    assert caught.value.reason == reason


def test_keys_none_and_dates_are_checked() -> None:
    cols = (Column("on", date, key=True), Column("at", datetime), Column("flag", bool,
                                                                         nullable=False))
    ok = Projection("ok", cols, lambda h, s: [(date(2024, 1, 1), datetime(2024, 1, 1, tzinfo=UTC),
                                               False)])
    assert ok.rows(history(), DEFAULT_CLINICAL)[0][1] == date(2024, 1, 1)
    cases: list[tuple[list[tuple[object, ...]], str]] = [
        ([(None, None, True)], "column 'on': must not be empty (None)"),
        ([(date(2024, 1, 1), None, None)], "column 'flag': must not be empty (None)"),
        ([(datetime(2024, 1, 1, tzinfo=UTC), None, True)], "expected date, got datetime"),
        ([(date(2024, 1, 1), datetime(2024, 1, 1), True)], "a datetime must carry a time zone"),
        ([(date(2024, 1, 1), None, True)] * 2, "row 2: repeated key (on)"),
    ]
    for rows, reason in cases:
        bad = Projection("bad", cols, returning(rows))
        with pytest.raises(ProjectionFailed, match=re.escape(reason)):
            bad.rows(history(), DEFAULT_CLINICAL)


def test_without_key_columns_at_most_one_row_per_patient() -> None:
    two = Projection("two", (Column("n", int),), lambda h, s: [(1,), (2,)])
    with pytest.raises(ProjectionFailed, match="declares no key column"):
        two.rows(history(), DEFAULT_CLINICAL)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: Column("patient_id", str), "added for you"),
    (lambda: Column("Bad Name", str), "lower-case"),
    (lambda: Column("n", list), "type must be one of"),  # type: ignore[arg-type]
    (lambda: Projection("Bad-Name", (Column("n", int),), lambda h, s: []), "projection name"),
    (lambda: Projection("empty", (), lambda h, s: []), "declares no columns"),
    (lambda: Projection("twice", (Column("n", int), Column("n", str)), lambda h, s: []),
     "repeated column"),
])
def test_declarations_are_checked(make: object, message: str) -> None:
    with pytest.raises(ProjectionLoadError, match=message):
        make()  # type: ignore[operator]


# --- which event a failure names ------------------------------------------------------


def test_exception_inside_the_event_loop_names_that_event() -> None:
    def fails_on_second_imaging(h: PatientHistory, s: ClinicalSettings) -> list[Row]:
        seen = 0
        for event in h.events:
            if isinstance(event, ImagingPerformed):
                seen += 1
                if seen == 2:
                    raise ValueError("no")
        return []

    h = history()
    second = [e for e in h.events if isinstance(e, ImagingPerformed)][1]
    with pytest.raises(ProjectionFailed) as caught:
        Projection("p", (Column("n", int),), fails_on_second_imaging).rows(h, DEFAULT_CLINICAL)
    assert caught.value.event_id == str(second.event_id)
    assert caught.value.reason == "ValueError: no"


def test_exception_after_the_loop_names_the_event_in_a_local_else_the_last() -> None:
    h = history()
    first = h.events[0]

    def holds_one_event(hh: PatientHistory, s: ClinicalSettings) -> list[Row]:
        chosen = hh.events[0]
        raise KeyError(str(chosen.event_id)[:4])

    def breaks_early(hh: PatientHistory, s: ClinicalSettings) -> list[Row]:
        for e in hh.events:
            if e is hh.events[0]:
                break
        return [(1 / 0,)]

    with pytest.raises(ProjectionFailed) as caught:
        Projection("p", (Column("n", int),), holds_one_event).rows(h, DEFAULT_CLINICAL)
    assert caught.value.event_id == str(first.event_id)
    with pytest.raises(ProjectionFailed) as caught:
        Projection("p", (Column("n", int),), breaks_early).rows(h, DEFAULT_CLINICAL)
    # after a break the loop is over; `e` is the only event local: it is named
    assert caught.value.event_id == str(first.event_id)

    def no_event_local(hh: PatientHistory, s: ClinicalSettings) -> list[Row]:
        total = sum(1 for _ in hh.events)
        return [(total / 0,)]

    with pytest.raises(ProjectionFailed) as caught:
        Projection("p", (Column("n", int),), no_event_local).rows(h, DEFAULT_CLINICAL)
    assert caught.value.event_id == str(h.events[-1].event_id)
    assert "ZeroDivisionError" in str(caught.value)


# --- loading files --------------------------------------------------------------------


def test_load_a_projection_file_by_path_and_by_object(tmp_path: Path) -> None:
    path = write(tmp_path, "two.py", """
        from mbcjourney.analyst import Column, projection

        @projection("first", columns=[Column("n", int)])
        def first(history, settings):
            return [(len(history.events),)]

        @projection("second", columns=[Column("n", int)])
        def second(history, settings):
            return []
    """)
    with pytest.raises(ProjectionLoadError, match="holds 2 projections; name one"):
        load_projection(str(path))
    loaded = load_projection(f"{path}:first")
    assert loaded.name == "first"
    assert loaded.rows(history(), DEFAULT_CLINICAL) == [("P-000042", 9)]
    assert loaded.source_file == str(path)


@pytest.mark.parametrize(("body", "message"), [
    ("import no_such_module_here\n",
     r"cannot import projection file .*bad\.py \(line 1\): ModuleNotFoundError: "
     r"No module named 'no_such_module_here'"),
    ("def broken(:\n", r"cannot import projection file .*bad\.py \(line 1\): SyntaxError"),
    ("x = 1\n", r"holds no projection: declare one with @projection"),
    ("from mbcjourney.analyst import Column, projection\n"
     "@projection('one', columns=[Column('n', int)])\n"
     "def one(history):\n    return []\n",
     r"projection 'one' must be a function of \(history, settings\); its signature is "
     r"one\(history\)"),
    ("from mbcjourney.analyst import Column\nbad = Column('patient_id', str)\n",
     r"bad\.py: column 'patient_id' is added for you"),
])
def test_unusable_files_fail_clearly(tmp_path: Path, body: str, message: str) -> None:
    path = write(tmp_path, "bad.py", body)
    with pytest.raises(ProjectionLoadError, match=message):
        load_projection(str(path))


def test_missing_file_and_wrong_object(tmp_path: Path) -> None:
    with pytest.raises(ProjectionLoadError, match="does not exist"):
        load_projection(str(tmp_path / "nope.py"))
    path = write(tmp_path, "f.py", "def plain(history, settings):\n    return []\n")
    with pytest.raises(ProjectionLoadError, match="is a function, not a Projection"):
        load_projection(f"{path}:plain")
    with pytest.raises(ProjectionLoadError, match="has no object 'other'"):
        load_projection(f"{path}:other")


# --- helpers and the shipped examples ---------------------------------------------------


def test_helpers_reuse_the_engines_rules() -> None:
    derived = lines(history())
    assert [(ln.number, ln.start, ln.end, ln.end_reason) for ln in derived] == [
        (1, date(2024, 1, 20), date(2024, 6, 1), "progression"),
        (2, date(2024, 7, 1), None, None)]
    b = PatientBuilder("P-9")
    assert erased(build_history("P-9", [b.included("2024-01-01"),
                                         b.withdrawn("2024-02-01", scope="erase")]))
    assert not erased(history())


def test_example_progression_to_biopsy() -> None:
    example = load_projection(str(EXAMPLES / "progression_to_biopsy.py"))
    assert example.rows(history(), DEFAULT_CLINICAL) == [
        ("P-000042", date(2024, 6, 1), "radiological", True, date(2024, 6, 20), 19, True, 92)]


def test_example_treatment_free_interval() -> None:
    example = load_projection(str(EXAMPLES / "treatment_free_interval.py"))
    assert example.rows(history(), DEFAULT_CLINICAL) == [
        ("P-000042", 1, 2, "paclitaxel", "capecitabine", "progression", date(2024, 6, 1),
         date(2024, 7, 1), 30)]
