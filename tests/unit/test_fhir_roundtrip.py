"""Round trips through FHIR: a simulated cohort out as mCODE Bundles (and as a Bulk Data
NDJSON folder) and back in through admission gives the same patients and lines."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner, Result

from mbcjourney.cli import cli
from mbcjourney.engine import EmbeddedEngine
from mbcjourney.interop.fhir_import import import_into
from tests.support.cohorts import embedded_log, simulated_cohort

RECEIVED = datetime(2030, 1, 1, tzinfo=UTC)


def journey(*args: str) -> Result:
    return CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)


@pytest.fixture(scope="module")
def source_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("fhir-rt")
    cohort = simulated_cohort(folder / "cohort.jsonl", patients=30, seed=11)
    return embedded_log(cohort, folder / "source.db", received_at=RECEIVED)


def fhir_import(path: Path, db: Path) -> str:
    """``journey fhir import PATH --db DB``'s work, received when the simulated facts were."""
    engine = EmbeddedEngine(f"sqlite:///{db}")
    try:
        prepared, summary = import_into(engine, path, received_at=RECEIVED)
    finally:
        engine.close()
    return (f"{len(prepared.unmapped)} resources unmapped; {summary.read} events: "
            f"{summary.accepted} accepted, {summary.duplicates} duplicate, "
            f"{summary.rejected_total} rejected")


def _exports(db: Path) -> tuple[str, str]:
    patients = journey("export", "patients", "--db", f"sqlite:///{db}")
    lines = journey("export", "lines", "--db", f"sqlite:///{db}")
    assert patients.exit_code == 0
    assert lines.exit_code == 0
    return patients.output, lines.output


def test_bundles_round_trip_into_a_new_database(source_db: Path, tmp_path: Path) -> None:
    exported = journey("fhir", "export", "--db", f"sqlite:///{source_db}",
                       "--output", str(tmp_path / "bundles"))
    assert exported.exit_code == 0, exported.output
    bundles = sorted((tmp_path / "bundles").glob("*.json"))
    assert len(bundles) == 30
    first = orjson.loads(bundles[0].read_bytes())
    assert first["type"] == "collection"
    kinds = {e["resource"]["resourceType"] for b in bundles
             for e in orjson.loads(b.read_bytes())["entry"]}
    assert {"Patient", "ResearchSubject", "Condition", "Observation", "CarePlan"} <= kinds

    imported = fhir_import(tmp_path / "bundles", tmp_path / "copy.db")
    assert imported.startswith("0 resources unmapped;"), imported
    assert imported.endswith(" 0 duplicate, 0 rejected"), imported
    patients, lines = _exports(source_db)
    assert _exports(tmp_path / "copy.db") == (patients, lines)
    assert len(lines.splitlines()) > 30  # the cohort has lines to compare


def test_an_ndjson_folder_imported_twice_adds_only_duplicates(source_db: Path,
                                                              tmp_path: Path) -> None:
    folder = tmp_path / "bulk"
    assert journey("fhir", "export", "--db", f"sqlite:///{source_db}", "--ndjson",
                   "--output", str(folder)).exit_code == 0
    manifest = orjson.loads((folder / "manifest.json").read_bytes())
    assert {o["type"] for o in manifest["output"]} >= {"Patient", "Observation"}
    target = f"sqlite:///{tmp_path / 'bulk.db'}"
    first = fhir_import(folder, tmp_path / "bulk.db")
    assert first.endswith(" 0 duplicate, 0 rejected"), first
    engine = EmbeddedEngine(target)
    stored = engine.log.count()
    engine.close()
    second = fhir_import(folder, tmp_path / "bulk.db")
    assert second == (f"0 resources unmapped; {stored} events: 0 accepted, {stored} duplicate, "
                      "0 rejected")
    engine = EmbeddedEngine(target)
    assert engine.log.count() == stored
    engine.close()
    assert _exports(tmp_path / "bulk.db") == _exports(source_db)


def test_omop_tables_carry_every_line_as_an_episode(source_db: Path, tmp_path: Path) -> None:
    out = tmp_path / "omop"
    assert journey("export", "omop", "--db", f"sqlite:///{source_db}",
                   "--output", str(out)).exit_code == 0
    episode = (out / "episode.csv").read_text().splitlines()
    assert episode[0].startswith("episode_id,person_id,episode_concept_id,episode_start_date")
    _, lines = _exports(source_db)
    assert len(episode) == len(lines.splitlines())
    assert all(",32531," in row for row in episode[1:])
    exposures = {row.split(",")[0] for row in
                 (out / "drug_exposure.csv").read_text().splitlines()[1:]}
    links = [row.split(",") for row in (out / "episode_event.csv").read_text().splitlines()[1:]]
    assert links
    assert all(link[1] in exposures and link[2] == "1147094" for link in links)
    # ids are stable: a second export is byte-identical
    again = tmp_path / "omop2"
    journey("export", "omop", "--db", f"sqlite:///{source_db}", "--output", str(again))
    for name in ("person", "drug_exposure", "episode", "episode_event"):
        assert (again / f"{name}.csv").read_bytes() == (out / f"{name}.csv").read_bytes()
