"""Encryption at rest and erasure on the embedded deployment, as an operator runs them.

A canary patient's events carry strings found nowhere else (source references,
specimen ids).  Before the erasure no store file holds them in clear; after
``journey erase`` none holds them at all, the patient is gone from every output,
a late event is refused without its payload, every other patient's exports are
unchanged, and a key store restored from a backup taken before the erasure is
put right by ``journey keys reconcile``.
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import orjson
import pytest

from tests.e2e.conftest import Journey
from tests.support.builders import PatientBuilder
from tests.support.canary import CANARY, MARKS, canary_lines


def store_files(folder: Path) -> list[Path]:
    """Every file a deployment wrote in ``folder`` (log, WAL, key store, staging...)."""
    return [f for f in folder.iterdir() if f.is_file() and f.suffix not in (".jsonl",)]


def files_holding(folder: Path, marks: list[bytes]) -> dict[str, list[bytes]]:
    found: dict[str, list[bytes]] = {}
    for path in store_files(folder):
        data = path.read_bytes()
        hits = [m for m in marks if m in data]
        if hits:
            found[path.name] = hits
    return found


def others(csv_text: str) -> list[str]:
    return [line for line in csv_text.splitlines() if not line.startswith(CANARY)]


@pytest.mark.slow
def test_canary_is_sealed_everywhere_then_erased_for_good(journey: Journey,
                                                          tmp_path: Path) -> None:
    journey("simulate", "--patients", "20", "--seed", "5", "--output", "cohort.jsonl")
    cohort = tmp_path / "cohort.jsonl"
    cohort.write_bytes(cohort.read_bytes() + b"\n".join(canary_lines()) + b"\n")
    db = "sqlite:///study.db"
    journey("ingest", "cohort.jsonl", "--db", db, check=False)
    journey("replay", "--source", db, "--into", db)
    journey("replay", "--source", "cohort.jsonl", "--into", db, check=False)
    journey("report", "--db", db, "--output", "report.html")
    patients_before = journey("export", "patients", "--db", db).stdout
    lines_before = journey("export", "lines", "--db", db).stdout
    assert CANARY in patients_before
    letters = journey("dead-letters", "list", "--db", db).stdout
    assert CANARY in letters  # the refused line is kept (sealed), naming its patient

    # Sealed at rest: no canary in the log, its WAL, the key store or anything else.
    assert files_holding(tmp_path, MARKS) == {}
    with sqlite3.connect(tmp_path / "study.db") as conn:
        bodies = [b for (b,) in conn.execute(
            "SELECT body FROM events WHERE patient_id = ?", (CANARY,))]
        occurred = {d for (d,) in conn.execute(
            "SELECT occurred_on FROM events WHERE patient_id = ?", (CANARY,))}
    assert len(bodies) == 4
    assert all(b.startswith("~1") for b in bodies)
    assert not occurred & {"2021-03-14", "2021-03-20", "2021-04-02", "2021-09-09"}
    exported = journey("dead-letters", "export", "--db", db, "--output", "letters.jsonl",
                       check=False)
    assert exported.returncode in (0, 1)
    assert MARKS[1] in (tmp_path / "letters.jsonl").read_bytes()  # opened for the operator
    (tmp_path / "letters.jsonl").unlink()
    shutil.copy(tmp_path / "study.db.keys", tmp_path / "keys-backup.bin")  # before erasure

    erased = journey("erase", CANARY, "--reason", "consent withdrawn", "--by", "DPO",
                     "--db", db)
    assert "1 key destroyed" in erased.stdout
    assert "4 events now unreadable" in erased.stdout

    assert CANARY not in journey("export", "patients", "--db", db).stdout
    assert others(journey("export", "patients", "--db", db).stdout) == others(patients_before)
    assert others(journey("export", "lines", "--db", db).stdout) == others(lines_before)
    assert CANARY not in journey("dead-letters", "list", "--db", db).stdout
    assert files_holding(tmp_path, MARKS) == {}

    # A rebuild skips the patient; a late event is refused and kept without its payload.
    assert "(1 erased patients skipped)" in journey("rebuild", "--db", db).stdout
    replayed = journey("replay", "--source", db, "--into", "sqlite:///again.db").stdout
    assert "4 of erased patients" in replayed
    assert CANARY not in journey("export", "patients", "--db", db).stdout
    late = PatientBuilder(CANARY, recorded="2026-12-01T00:00:00Z").raw(
        "imaging.performed", "2021-10-10", {"modality": "CT", "recist_response": "PD"})
    late["event_id"] = "5d1c2a44-0e59-4c5e-9a0e-1f6ad8a7c001"
    late["source"]["reference"] = "CANARY-LATE-REF"
    (tmp_path / "late.jsonl").write_bytes(orjson.dumps(late) + b"\n")
    refused = journey("ingest", "late.jsonl", "--db", db, check=False)
    assert refused.returncode == 1
    assert "the patient was erased" in refused.stdout
    assert files_holding(tmp_path, [b"CANARY-LATE-REF"]) == {}

    # A key store restored from before the erasure holds the key again, until reconcile.
    shutil.copy(tmp_path / "keys-backup.bin", tmp_path / "study.db.keys")
    for suffix in ("-wal", "-shm"):
        (tmp_path / f"study.db.keys{suffix}").unlink(missing_ok=True)
    (tmp_path / "keys-backup.bin").unlink()
    reconciled = journey("keys", "reconcile", "--db", db)
    assert "1 erasure records applied (1 keys destroyed again)" in reconciled.stdout
    journey("rebuild", "--db", db)
    assert CANARY not in journey("export", "patients", "--db", db).stdout
    again = journey("ingest", "late.jsonl", "--db", db, check=False)
    assert "the patient was erased" in again.stdout
    with sqlite3.connect(tmp_path / "study.db.keys") as conn:
        assert conn.execute("SELECT COUNT(*) FROM patient_keys WHERE name = ?",
                            (CANARY,)).fetchone() == (0,)
