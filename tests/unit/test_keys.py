"""Data keys, the master key and sealing: what crypto-shredding rests on."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from mbcjourney.processors.db import make_engine
from mbcjourney.processors.eventlog import SqlEventLog, events_table
from mbcjourney.processors.keys import (
    FileMasterKey,
    KeyDestroyed,
    KeyStore,
    WrongMasterKey,
    dead_letter_key_name,
    write_master_key,
)
from mbcjourney.processors.sealing import PlainText, Sealer, Unopenable
from tests.support.builders import PatientBuilder

NOW = datetime(2026, 12, 3, tzinfo=UTC)


def store_at(path: Path, master: FileMasterKey) -> KeyStore:
    return KeyStore(make_engine(f"sqlite:///{path}"), master).create()


def cohort() -> list:  # type: ignore[type-arg]
    events = []
    for n in range(1, 4):
        p = PatientBuilder(f"P-00000{n}")
        events += [p.included("2023-01-10"), p.ihc("2023-01-12"),
                   p.line("2023-02-01", "L1", "letrozole", "palbociclib")]
    return events


def test_a_wrong_master_key_fails_at_start_in_one_line(tmp_path: Path) -> None:
    store_at(tmp_path / "k.db", write_master_key(tmp_path / "a.key"))
    other = write_master_key(tmp_path / "b.key")
    with pytest.raises(WrongMasterKey) as refused:
        store_at(tmp_path / "k.db", other)
    message = str(refused.value)
    assert "\n" not in message
    assert "b.key" in message
    assert "is not the master key" in message


def test_a_master_key_file_is_private_and_never_overwritten(tmp_path: Path) -> None:
    key = write_master_key(tmp_path / "m.key")
    assert (tmp_path / "m.key").stat().st_mode & 0o777 == 0o600
    with pytest.raises(Exception, match="exists already"):
        write_master_key(tmp_path / "m.key")
    assert FileMasterKey.read(tmp_path / "m.key").key_id == key.key_id


def test_sealed_bytes_open_only_with_their_patients_key(tmp_path: Path) -> None:
    sealer = Sealer(store_at(tmp_path / "k.db", write_master_key(tmp_path / "m.key")))
    body = b'{"payload":{"er_percent":90}}'
    sealed = sealer.seal("P-1", body)
    assert sealed.startswith("~1")
    assert b"er_percent" not in sealed.encode()
    assert sealer.seal("P-1", body) != sealed  # a fresh nonce each time
    assert sealer.open("P-1", sealed) == body
    sealer.prepare(["P-2"])
    with pytest.raises(Unopenable):
        sealer.open("P-2", sealed)
    tampered = sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB")
    with pytest.raises(Unopenable):
        sealer.open("P-1", tampered)
    # keyed hashes: equal for equal bytes of one patient, unrelated across patients
    assert sealer.content_hash("P-1", body) == sealer.content_hash("P-1", body)
    assert sealer.content_hash("P-1", body) != sealer.content_hash("P-2", body)
    assert sealer.content_hash("P-1", body) != PlainText().content_hash("P-1", body)


def test_a_destroyed_key_is_never_created_again(tmp_path: Path) -> None:
    keys = store_at(tmp_path / "k.db", write_master_key(tmp_path / "m.key"))
    sealer = Sealer(keys)
    sealed = sealer.seal("P-1", b"{}")
    assert keys.destroy(["P-1"], NOW) == 1
    sealer.forget(["P-1"])
    assert sealer.prepare(["P-1", "P-2"]) == {"P-1"}  # erased: no new key
    assert keys.keys_for(["P-1"], create=True) == {}
    with pytest.raises(KeyDestroyed):
        sealer.open("P-1", sealed)
    assert b"P-1" not in keys.master.wrap(b"x" * 32, "n")  # nothing of the name leaks


def test_rotation_rewraps_every_key_and_keeps_every_event_readable(tmp_path: Path) -> None:
    old = write_master_key(tmp_path / "old.key")
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    log = SqlEventLog(engine, Sealer(store_at(tmp_path / "k.db", old)))
    log.create()
    outcome = log.append(cohort())
    before = [(s.position, s.event) for s in log.read()]
    assert len(before) == len(outcome.accepted) == 9
    with engine.connect() as conn:
        stored = conn.execute(events_table.select()).all()

    new = write_master_key(tmp_path / "new.key")
    assert store_at(tmp_path / "k.db", old).rotate(new) == 3  # one data key per patient

    rotated = SqlEventLog(engine, Sealer(store_at(tmp_path / "k.db", new)))
    assert [(s.position, s.event) for s in rotated.read()] == before
    with engine.connect() as conn:
        assert conn.execute(events_table.select()).all() == stored  # events untouched
    with pytest.raises(WrongMasterKey):
        store_at(tmp_path / "k.db", old)


def test_dead_letter_keys_expire_by_month(tmp_path: Path) -> None:
    keys = store_at(tmp_path / "k.db", write_master_key(tmp_path / "m.key"))
    sealer = Sealer(keys)
    for day in (date(2025, 1, 5), date(2025, 6, 5), date(2026, 11, 5)):
        sealer.seal(dead_letter_key_name(day), b"line")
    expired = keys.expire_dead_letter_keys(date(2025, 12, 3), NOW)
    assert expired == [dead_letter_key_name(date(2025, 1, 5)),
                       dead_letter_key_name(date(2025, 6, 5))]
    assert keys.keys_for([dead_letter_key_name(date(2026, 11, 5))], create=False)


def test_a_clear_log_is_sealed_in_place_by_the_migration(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'log.db'}")
    clear = SqlEventLog(engine, PlainText())
    clear.create()
    clear.append(cohort())
    before = [(s.position, s.event) for s in clear.read()]
    sealed_log = SqlEventLog(engine, Sealer(store_at(tmp_path / "k.db",
                                                     write_master_key(tmp_path / "m.key"))))
    assert sealed_log.seal_clear_rows(batch=4) == 9
    with engine.connect() as conn:
        bodies = [r.body for r in conn.execute(events_table.select())]
        marks = [r.occurred_on for r in conn.execute(events_table.select())]
    assert all(b.startswith("~1") for b in bodies)
    assert "2023-01-10" not in marks
    assert [(s.position, s.event) for s in sealed_log.read()] == before
    assert sealed_log.seal_clear_rows() == 0  # nothing left to do
    again = sealed_log.append(cohort())
    assert (again.accepted, again.duplicates, again.conflicts) == ([], 9, [])  # repeats


def test_replay_staging_is_sealed_and_its_key_goes_with_it(tmp_path: Path) -> None:
    from mbcjourney.processors.staging import Staging

    target = make_engine(f"sqlite:///{tmp_path / 'target.db'}")
    sealer = Sealer(store_at(tmp_path / "k.db", write_master_key(tmp_path / "m.key")))
    staging = Staging(target, "v1_", sealer)
    staging.create()
    line = b'{"patient_id":"P-1","source":{"reference":"CANARY-STAGED"}}'
    sealed_value = sealer.seal("P-2", b'{"patient_id":"P-2"}').encode()  # a Kafka value
    staging.append(0, [("P-1", 0, 1, 0, line), ("P-2", 0, 2, 0, sealed_value)], {})
    assert staging.path is not None
    written = b"".join(f.read_bytes() for f in tmp_path.glob(staging.path.name + "*"))
    assert b"P-2" in written  # the rows are there (in the file or its WAL)...
    assert b"CANARY-STAGED" not in written  # ...sealed
    staged = {pid: [staging.unstage(bytes(r[4])) for r in rows]
              for pid, rows in staging.by_patient("")}
    assert staged == {"P-1": [line], "P-2": [sealed_value]}  # Kafka values stay as they came
    staging.remove()
    assert not staging.path.exists()
    assert sealer.keys.keys_for(["#staging:v1_"], create=False) == {}
