"""The live worker's processing, without Kafka: fakes of our own ports, a real SQLite store.

The faust app only feeds :class:`BatchProcessor` and makes its deltas durable; here
records are built from a simulated cohort, partitioned by patient like Kafka
would, and the rows are compared with the embedded engine's for the same file.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.events.codec import decode_with_body
from mbcjourney.processors.admission import BirthYears
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog, events_table
from mbcjourney.processors.histories import (
    Histories,
    Offer,
    PatientLog,
    decode_delta,
    encode_deltas,
)
from mbcjourney.processors.ingest import validate_lines
from mbcjourney.processors.kafkaio import SourceRecord, dead_letter_message, header
from mbcjourney.processors.store import ProjectionStore
from mbcjourney.processors.worker import BatchProcessor, LoggedStore
from mbcjourney.simulate import SimulationSettings, iter_cohort
from tests.support.builders import PatientBuilder, dumps
from tests.support.fakes import FakeTopic, WorkerRig, worker_rig
from tests.support.polling import eventually_async

PARTITIONS = 3
RECEIVED = datetime(2026, 12, 1, tzinfo=UTC)
TOPIC = "events"


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(max_workers=1) as pool:
        yield pool


@pytest.fixture
def store(tmp_path: Path) -> ProjectionStore:
    projection_store = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'rows.db'}"))
    projection_store.create()
    return projection_store


def rig(store: ProjectionStore, executor: ThreadPoolExecutor, topic: FakeTopic,
        histories: Histories | None = None, batch_max: int = 20_000,
        **options: Any) -> WorkerRig:
    return worker_rig(store, executor, consumer=f"worker:{TOPIC}", ranges=topic,
                      histories=histories, topic=TOPIC, batch_max=batch_max, **options)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def process_all(processor: BatchProcessor, batches: list[list[SourceRecord]]) -> None:
    for batch in batches:
        await processor.process(batch)
    await processor.drain()


def rows(store: ProjectionStore) -> tuple[list[Any], ...]:
    return store.patient_rows(), store.line_rows(), store.due_rows(), store.finding_rows()


@pytest.fixture(scope="module")
def cohort_lines() -> list[bytes]:
    return list(iter_cohort(SimulationSettings(patients=40, seed=11)))


def published(lines: list[bytes]) -> FakeTopic:
    """Publish a file as ``journey publish`` does: validated bodies keyed by patient."""
    topic = FakeTopic()
    numbered = list(enumerate(lines, start=1))
    for checked in validate_lines(numbered, BirthYears(), received_at=RECEIVED):
        for item in checked.valid:
            topic.publish(item.row.patient_id.encode(), item.row.body.encode())
    return topic


def embedded_rows(lines: list[bytes], tmp_path: Path) -> tuple[list[Any], ...]:
    engine = EmbeddedEngine(f"sqlite:///{tmp_path / 'embedded.db'}")
    try:
        engine.ingest(enumerate(lines, start=1), origin="cohort", received_at=RECEIVED)
        engine.catch_up()
        return rows(engine.store)
    finally:
        engine.close()


Logged = dict[str, list[tuple[str, str]]]


def logged(event_log: SqlEventLog) -> Logged:
    """Each patient's (event_id, stored body opened) in log order: what the log's readers fold."""
    t = events_table
    out: Logged = {}
    with event_log.engine.connect() as conn:
        for patient_id, event_id, body in conn.execute(
                select(t.c.patient_id, t.c.event_id, t.c.body).order_by(t.c.position)):
            assert body.startswith("~1")  # sealed at rest
            clear = event_log.open_body(patient_id, body)
            assert clear is not None
            out.setdefault(patient_id, []).append((event_id, clear.decode()))
    return out


def embedded_log(lines: list[bytes], tmp_path: Path) -> Logged:
    with EmbeddedEngine(f"sqlite:///{tmp_path / 'embedded-log.db'}") as engine:
        engine.ingest(enumerate(lines, start=1), origin="cohort", received_at=RECEIVED)
        return logged(engine.log)


def in_batches(records: list[SourceRecord], size: int) -> list[list[SourceRecord]]:
    """Interleave partitions the way a consumer hands them over, ``size`` at a time."""
    return [records[i : i + size] for i in range(0, len(records), size)]


# --- histories ------------------------------------------------------------------------------


def test_deltas_round_trip_and_split_below_the_size_limit() -> None:
    bodies = [b'{"n": %d, "pad": "%s"}' % (i, b"x" * 300) for i in range(50)]
    values = list(encode_deltas(41, bodies, max_bytes=4096))
    assert len(values) > 1
    assert all(len(v) <= 4096 for v in values)
    decoded = [decode_delta(v) for v in values]
    assert {offset for offset, _ in decoded} == {41}
    assert [b for _, chunk in decoded for b in chunk] == bodies


def test_a_history_classifies_repeats_as_the_event_log_does() -> None:
    patient = PatientBuilder("P-000009")
    raw = patient.raw("patient.included", "2024-01-02", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["liver"]})
    event, body = decode_with_body(dumps(raw), received_at=RECEIVED)
    log = PatientLog("P-000009", 0)
    assert log.offer(event, body) is Offer.NEW
    assert log.offer(event, body) is Offer.DUPLICATE
    # resent without recorded_at: stamped at a new time, still the same fact
    resent = {k: v for k, v in raw.items() if k != "recorded_at"}
    assert log.offer(*decode_with_body(dumps(resent), received_at=RECEIVED)) is Offer.DUPLICATE
    changed = {**raw, "payload": {**raw["payload"], "birth_year": 1961}}
    assert log.offer(*decode_with_body(dumps(changed), received_at=RECEIVED)) is Offer.CONFLICT
    assert len(log) == 1


def test_restoring_deltas_twice_adds_nothing_and_a_small_cache_keeps_results(
        cohort_lines: list[bytes]) -> None:
    topic = published(cohort_lines)
    histories = Histories(max_cached_events=50)  # forces evictions
    for record in topic.everything():
        event, body = decode_with_body(record.value or b"", received_at=RECEIVED)
        histories.offer(record.partition, event, body)
    deltas = [(r.partition, next(encode_deltas(r.offset, [r.value or b""])))
              for r in topic.everything()]
    restored = Histories()
    assert sum(restored.restore(p, v) for p, v in deltas) == histories.event_count()
    assert sum(restored.restore(p, v) for p, v in deltas) == 0
    for patient_id in histories.logs:
        ids = {str(e.event_id) for e in histories.events(patient_id)}
        assert ids == {str(e.event_id) for e in restored.events(patient_id)}
    assert restored.positions == {p: len(rs) - 1 for p, rs in topic.partitions.items()}


def filled(lines: list[bytes], max_cached_events: int) -> Histories:
    histories = Histories(max_cached_events)
    for record in published(lines).everything():
        event, body = decode_with_body(record.value or b"", received_at=RECEIVED)
        histories.offer(record.partition, event, body)
    return histories


def test_batches_that_cycle_through_more_patients_than_fit_keep_what_is_cached(
        cohort_lines: list[bytes]) -> None:
    """Catching up touches every patient in every batch, in id order: the worst case of LRU."""
    total = filled(cohort_lines, 10**9).event_count()
    histories = filled(cohort_lines, total // 2)  # half the histories fit
    patients = sorted(histories.logs)

    decoded_per_batch = []
    for _ in range(4):
        histories.begin_batch()
        before = histories.redecoded
        seen = {p: len(histories.events(p)) for p in patients}
        decoded_per_batch.append(histories.redecoded - before)
        assert sum(seen.values()) == total  # every history, whole, cached or not
        assert histories._cached <= total // 2

    # Plain LRU decoded everything again in every batch; now about half stays cached.
    assert all(0 < n <= total * 0.6 for n in decoded_per_batch), decoded_per_batch


def test_a_full_cache_gives_way_to_new_events_least_recently_used_first(
        cohort_lines: list[bytes]) -> None:
    """Live: a few patients per batch; what no recent batch used is evicted for them."""
    histories = filled(cohort_lines, 10**9)
    histories.max_cached_events = histories._cached  # exactly full
    histories.begin_batch()
    histories.begin_batch()  # what filling it used is two batches old now
    least_recent = next(iter(histories._used))
    patient = sorted(histories.logs)[-1]
    raw = PatientBuilder(patient).raw("imaging.performed", "2025-06-01",
                                      {"modality": "CT", "recist_response": "SD"})
    event, body = decode_with_body(dumps(raw), received_at=RECEIVED)

    assert histories.offer(histories.logs[patient].partition, event, body) is Offer.NEW

    assert histories.logs[least_recent]._events is None  # its bodies stay, decoded again later
    assert histories.events(patient)[-1] == event
    assert histories._cached <= histories.max_cached_events


# --- batches -----------------------------------------------------------------------------------


def test_rows_equal_the_embedded_engine_for_the_same_file(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines)
    worker = rig(store, executor, topic)
    run(process_all(worker.processor, in_batches(topic.everything(), 700)))

    assert rows(store) == embedded_rows(cohort_lines, tmp_path)
    # the events applied are in the SQL log, per patient as ``journey ingest`` stores them
    assert logged(worker.log) == embedded_log(cohort_lines, tmp_path)
    assert store.checkpoint(f"worker:{TOPIC}") == {
        p: len(rs) - 1 for p, rs in topic.partitions.items()}
    assert worker.dead.letters == []
    # the changelog is a few deltas per batch and partition, and restores the same table
    restored = Histories()
    for partition, _offset, value in worker.changelog.records:
        restored.restore(partition, value)
    assert {p: len(log) for p, log in restored.logs.items()} == {
        p: len(log) for p, log in worker.histories.logs.items()}


def test_redelivered_records_change_nothing(
        cohort_lines: list[bytes], store: ProjectionStore, executor: ThreadPoolExecutor
) -> None:
    topic = published(cohort_lines)
    worker = rig(store, executor, topic)
    run(process_all(worker.processor, in_batches(topic.everything(), 900)))
    before, deltas, log_before = rows(store), len(worker.changelog.records), logged(worker.log)
    assert worker.log.count() == sum(len(events) for events in log_before.values()) > 0

    run(process_all(worker.processor, in_batches(topic.everything(), 500)))
    # a worker restarted with its table but not its rows (a crash before the write)
    again = rig(store, executor, topic, histories=Histories())
    run(process_all(again.processor, in_batches(topic.everything(), 700)))

    assert logged(worker.log) == log_before
    assert rows(store) == before
    assert len(worker.changelog.records) == deltas  # nothing new for the table
    assert worker.dead.letters == []


def test_offsets_skipped_by_the_consumer_are_read_again(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines)
    worker = rig(store, executor, topic)
    records = topic.everything()
    # the first 100 records of each partition were committed by Kafka but never stored
    skipped = [r for r in records if r.offset >= 100]

    run(process_all(worker.processor, in_batches(skipped, 600)))

    assert sorted(topic.reads) == [(p, 0, 100) for p in sorted(topic.partitions)]
    assert rows(store) == embedded_rows(cohort_lines, tmp_path)


def test_a_table_that_lost_its_changelog_is_rebuilt_from_the_topic(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines[: len(cohort_lines) // 2])
    first = rig(store, executor, topic)
    run(process_all(first.processor, in_batches(topic.everything(), 800)))
    done = {p: len(rs) for p, rs in topic.partitions.items()}
    for checked in validate_lines(enumerate(cohort_lines[len(cohort_lines) // 2:], 1),
                                  BirthYears(), received_at=RECEIVED):
        for item in checked.valid:
            topic.publish(item.row.patient_id.encode(), item.row.body.encode())

    # a new worker whose table came back empty, handed only the new records
    second = rig(store, executor, topic, histories=Histories())
    fresh = [r for r in topic.everything() if r.offset >= done.get(r.partition, 0)]
    run(process_all(second.processor, in_batches(fresh, 800)))

    assert {(p, start) for p, start, _ in topic.reads} == {(r.partition, 0) for r in fresh}
    assert second.dead.letters == []
    # the later half is folded onto the whole history, as an uninterrupted worker does
    reference = ProjectionStore(make_engine(f"sqlite:///{tmp_path / 'reference.db'}"))
    reference.create()
    uninterrupted = rig(reference, executor, topic)
    run(process_all(uninterrupted.processor, in_batches(topic.everything(), 800)))
    assert rows(store) == rows(reference)
    assert logged(second.log) == logged(uninterrupted.log)  # re-applied events: stored once


def test_bad_records_become_dead_letters_and_processing_goes_on(
        store: ProjectionStore, executor: ThreadPoolExecutor) -> None:
    topic = FakeTopic()
    patient = PatientBuilder("P-000001")
    included = patient.raw("patient.included", "2024-01-02", {
        "birth_year": 1960, "sex": "female", "centre": "C01", "consent_version": "v1",
        "presentation": "de_novo", "metastatic_sites": ["liver"]})
    ihc = patient.raw("ihc.recorded", "2024-01-03", {
        "specimen_id": "S1", "specimen_site": "metastasis", "er_percent": 90,
        "pr_percent": 50, "her2_ihc": "0", "her2_ish": "not_done"})
    key = b"P-000001"
    topic.publish(key, dumps(included), partition=0)
    topic.publish(key, b'{"event_type": "ihc.recorded", broken', partition=0)
    topic.publish(b"P-000002", dumps(ihc), partition=0)  # wrong key: breaks per-patient order
    topic.publish(key, dumps({**included, "payload": {**included["payload"],
                                                       "birth_year": 1950}}), partition=0)
    topic.publish(key, dumps(ihc), partition=0)
    worker = rig(store, executor, topic)

    run(process_all(worker.processor, [topic.everything()]))

    reasons = [(d.origin, d.reason) for d in worker.dead.letters]
    assert reasons == [
        (f"{TOPIC}/0/1", "$: not valid JSON"),
        (f"{TOPIC}/0/2", "key: must be the event's patient_id"),
        (f"{TOPIC}/0/3", "event_id: already stored with different content"),
    ]
    assert [p.patient_id for p in store.patient_rows()] == ["P-000001"]
    assert store.patient_rows()[0].hr_status == "positive"  # the IHC after them counted
    assert store.checkpoint(f"worker:{TOPIC}") == {0: 4}
    key_out, value, headers = dead_letter_message(worker.dead.letters[2])
    assert key_out == key
    assert orjson.loads(value)["payload"]["birth_year"] == 1950  # the original bytes
    assert header(headers, "reason") == "event_id: already stored with different content"
    assert header(headers, "event_id") == included["event_id"]


def test_chunks_are_gathered_while_behind_and_processed_at_once_when_live(
        cohort_lines: list[bytes], store: ProjectionStore, executor: ThreadPoolExecutor
) -> None:
    topic = published(cohort_lines)
    records = topic.everything()
    ends = {p: len(rs) for p, rs in topic.partitions.items()}
    behind = rig(store, executor, topic, batch_max=1_000_000)
    behind.processor.highwater = lambda partition: ends[partition] + 10_000
    behind.processor.max_wait_s = 3600

    async def offer_all(processor: BatchProcessor) -> list[Any]:
        out = [await processor.offer(chunk) for chunk in in_batches(records, 300)]
        await processor.handover()
        return out

    assert all(stats is None for stats in run(offer_all(behind.processor)))  # all held back
    assert store.checkpoint(f"worker:{TOPIC}") == {p: n - 1 for p, n in ends.items()}

    live = rig(store, executor, topic)
    live.processor.highwater = lambda partition: ends[partition]
    assert all(stats is not None for stats in run(offer_all(live.processor)))


def test_far_behind_the_rows_wait_until_enough_records_are_applied(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines)
    records = topic.everything()
    ends = {p: len(rs) for p, rs in topic.partitions.items()}
    worker = rig(store, executor, topic)
    worker.processor.highwater = lambda partition: ends[partition] + 10_000  # far behind
    worker.processor.project_every = len(records) // 2

    async def process(batches: list[list[SourceRecord]]) -> list[Any]:
        out = [await worker.processor.process(batch) for batch in batches]
        await worker.processor.drain()
        return out

    stats = run(process(in_batches(records, 200)))
    written = [i for i, s in enumerate(stats) if not s.deferred]
    assert len(written) == 1  # the batch that took the count past project_every
    first = written[0]
    applied = records[: sum(s.records for s in stats[: first + 1])]
    # the log got the events with the rows that cover them: no later, no earlier
    assert worker.log.count() == sum(s.new for s in stats[: first + 1])
    assert sum(s.new for s in stats[first + 1 :]) > 0  # those still wait with their rows
    assert stats[first].patients == len({r.key for r in applied})  # every patient so far
    assert store.checkpoint(f"worker:{TOPIC}") == {
        p: max(r.offset for r in applied if r.partition == p) for p in ends}

    run(worker.processor.handover())  # partitions move: what waits is written first
    assert store.checkpoint(f"worker:{TOPIC}") == {p: n - 1 for p, n in ends.items()}
    assert rows(store) == embedded_rows(cohort_lines, tmp_path)
    assert logged(worker.log) == embedded_log(cohort_lines, tmp_path)
    assert worker.processor._unlogged == []  # nothing held once written


def test_rows_held_back_are_written_once_nothing_more_arrives(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines)
    ends = {p: len(rs) for p, rs in topic.partitions.items()}
    worker = rig(store, executor, topic)
    worker.processor.highwater = lambda partition: ends[partition] + 10_000  # lag never drops
    worker.processor.max_wait_s = 0.05

    async def hand_and_wait() -> dict[int, int]:
        running = asyncio.ensure_future(worker.processor.run())
        try:
            for chunk in in_batches(topic.everything(), 300):
                await worker.processor.hand(chunk)
            written = {p: n - 1 for p, n in ends.items()}

            async def all_written() -> bool:
                return store.checkpoint(f"worker:{TOPIC}") == written

            await eventually_async(
                all_written, timeout=30,
                what=f"checkpoints at {written}",
                detail=lambda: f"rows not written: {store.checkpoint(f'worker:{TOPIC}')}")
            return store.checkpoint(f"worker:{TOPIC}")
        finally:
            running.cancel()

    run(hand_and_wait())
    assert rows(store) == embedded_rows(cohort_lines, tmp_path)


def test_issue19_a_dead_lettered_tombstone_is_told_from_an_empty_value(
        store: ProjectionStore, executor: ThreadPoolExecutor) -> None:
    """Both dead-letter b"" as their original bytes; the tombstone's says so, with its reason."""
    topic = FakeTopic()
    tombstone = topic.publish(b"P-000001", b"", partition=0)
    topic.partitions[0][tombstone.offset] = replace(tombstone, value=None)  # no value at all
    topic.publish(b"P-000001", b"", partition=0)  # an empty value
    worker = rig(store, executor, topic)

    run(process_all(worker.processor, [topic.everything()]))

    (gone, empty) = worker.dead.letters
    assert (gone.original, empty.original) == (b"", b"")
    assert (gone.tombstone, empty.tombstone) == (True, False)
    _, _, gone_headers = dead_letter_message(gone)
    _, _, empty_headers = dead_letter_message(empty)
    assert header(gone_headers, "tombstone") == "true"
    assert header(empty_headers, "tombstone") is None
    assert header(gone_headers, "reason") == "$: tombstone (a record without a value)"
    assert header(empty_headers, "reason") == "$: empty message"


def test_an_event_id_the_log_holds_for_another_patient_stays_out_of_it_and_is_counted(
        store: ProjectionStore, executor: ThreadPoolExecutor) -> None:
    """On Kafka an event id is unique per patient, in the SQL log globally."""
    topic = FakeTopic()
    included: dict[str, dict[str, Any]] = {}
    for patient_id in ("P-000001", "P-000002"):
        included[patient_id] = PatientBuilder(patient_id).raw(
            "patient.included", "2024-01-02", {
                "birth_year": 1960, "sex": "female", "centre": "C01",
                "consent_version": "v1", "presentation": "de_novo",
                "metastatic_sites": ["liver"]})
    reused = {**included["P-000002"], "event_id": included["P-000001"]["event_id"]}
    topic.publish(b"P-000001", dumps(included["P-000001"]), partition=0)
    topic.publish(b"P-000002", dumps(reused), partition=1)
    worker = rig(store, executor, topic)

    run(process_all(worker.processor, [topic.everything()]))

    # each history took its event: both patients have rows; the log keeps the first
    assert [p.patient_id for p in store.patient_rows()] == ["P-000001", "P-000002"]
    assert {p: [e for e, _ in events] for p, events in logged(worker.log).items()} == {
        "P-000001": [included["P-000001"]["event_id"]]}
    writer = worker.processor.sink.write_rows
    assert isinstance(writer, LoggedStore)
    assert writer.conflicts == 1
    assert worker.dead.letters == []


def test_the_embedded_engine_reads_a_workers_store_without_re_projecting_it(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    topic = published(cohort_lines)
    worker = rig(store, executor, topic)
    run(process_all(worker.processor, in_batches(topic.everything(), 700)))
    url = str(store.engine.url)
    with EmbeddedEngine(f"sqlite:///{tmp_path / 'own.db'}") as own:
        assert not own.owned_by_workers()

    with EmbeddedEngine(url) as engine:
        assert engine.owned_by_workers()
        assert engine.catch_up() == 0
        assert engine.patient_rows() == store.patient_rows()
        assert engine.store.checkpoint("embedded") == {}  # nothing projected here
        assert engine.line_rows() == embedded_rows(cohort_lines, tmp_path)[1]


# --- sealed values (encryption at rest) ------------------------------------------------------


def sealed_topic(lines: list[bytes], cipher: Any) -> FakeTopic:
    """Publish a file as ``journey publish`` does with a key store: every value sealed."""
    topic = FakeTopic()
    for checked in validate_lines(list(enumerate(lines, start=1)), BirthYears(),
                                  received_at=RECEIVED):
        for item in checked.valid:
            row = item.row
            topic.publish(row.patient_id.encode(), cipher.seal(row.patient_id,
                                                               row.body.encode()).encode())
    return topic


def test_sealed_values_project_as_clear_ones_and_the_changelog_stays_sealed(
        cohort_lines: list[bytes], tmp_path: Path, store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    cipher = SqlEventLog(store.engine).cipher
    topic = sealed_topic(cohort_lines, cipher)
    worker = rig(store, executor, topic, cipher=cipher)
    run(process_all(worker.processor, in_batches(topic.everything(), 700)))

    assert rows(store) == embedded_rows(cohort_lines, tmp_path)
    assert worker.dead.letters == []
    some_id = orjson.loads(cohort_lines[0])["event_id"].encode()
    deltas = [value for _p, _o, value in worker.changelog.records]
    assert deltas
    assert not any(some_id in value for value in deltas)
    restored = Histories(cipher=cipher)  # a restarted worker reads the sealed deltas back
    for partition, _offset, value in worker.changelog.records:
        restored.restore(partition, value)
    assert restored.event_count() == worker.histories.event_count()


def test_a_patient_erased_mark_drops_the_patient_and_refuses_later_facts(
        cohort_lines: list[bytes], store: ProjectionStore,
        executor: ThreadPoolExecutor) -> None:
    from mbcjourney.processors.erasures import erasure_record

    topic = published(cohort_lines)
    worker = rig(store, executor, topic)
    run(process_all(worker.processor, in_batches(topic.everything(), 700)))
    victim = store.patient_rows()[0].patient_id
    mark = topic.publish(victim.encode(), erasure_record(victim))
    late = PatientBuilder(victim).raw("imaging.performed", "2024-05-05",
                                      {"modality": "CT", "recist_response": "SD"})
    after = topic.publish(victim.encode(), dumps(late), partition=mark.partition)
    run(process_all(worker.processor, [[mark, after]]))

    assert victim not in {r.patient_id for r in store.patient_rows()}
    assert victim not in {r.patient_id for r in store.line_rows()}
    assert worker.histories.get(victim) is None
    [letter] = worker.dead.letters
    assert letter.reason.startswith("patient_id: the patient was erased")
    assert letter.original == b""  # refused without its payload
