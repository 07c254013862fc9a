"""A stopped, missing or mistyped broker or database, as a user meets it: one clear error."""

from __future__ import annotations

from pathlib import Path

import pytest

from mbcjourney.processors.kafkaio import CONNECT_TIMEOUT_S
from tests.e2e.conftest import Journey
from tests.support.builders import PatientBuilder, to_jsonl

pytestmark = pytest.mark.slow  # each test spawns journey processes


def test_publish_to_a_broker_that_does_not_answer(journey: Journey, tmp_path: Path,
                                                  closed_port: int) -> None:
    cohort = tmp_path / "cohort.jsonl"
    cohort.write_bytes(to_jsonl([PatientBuilder("P-000001").included("2024-01-10")]))
    bootstrap = f"127.0.0.1:{closed_port}"
    result = journey("publish", str(cohort), "--bootstrap", bootstrap, check=False)

    assert result.returncode == 2
    # one line: kafka-python's own line per retry (about twenty before) is held back
    [line] = result.stderr.splitlines()
    assert line.startswith(
        f"error: Kafka at {bootstrap} does not answer within {CONNECT_TIMEOUT_S:g} s")
    assert "infra/kafka/start.sh" in line
    assert result.stdout == ""


def test_a_database_that_does_not_answer(journey: Journey, closed_port: int) -> None:
    url = f"postgresql+psycopg://journey:s3cret@127.0.0.1:{closed_port}/journey"
    result = journey("export", "patients", "--db", url, check=False)

    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # not a SQLAlchemy traceback
    assert line.startswith("error: the database failed: connection failed")
    assert f"port {closed_port} failed: Connection refused" in line
    assert "infra/postgres/start.sh" in line
    assert "s3cret" not in result.stderr


def test_an_embedded_database_in_a_missing_folder(journey: Journey, tmp_path: Path) -> None:
    cohort = tmp_path / "cohort.jsonl"
    cohort.write_bytes(to_jsonl([PatientBuilder("P-000001").included("2024-01-10")]))
    result = journey("ingest", str(cohort), "--db", "sqlite:///no/such/folder/study.db",
                     check=False)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: the database failed: unable to open database file; does the database's "
        "folder exist, and may this user write there?"]


@pytest.mark.parametrize("command", [
    ["export", "patients"], ["overdue", "--as-of", "2025-01-01"], ["dead-letters", "list"],
    ["alerts"], ["rebuild"], ["report", "-o", "report.html"], ["projections", "list"],
])
def test_reading_an_embedded_database_that_does_not_exist(
        journey: Journey, tmp_path: Path, command: list[str]) -> None:
    """A mistyped --db is an error, not an empty answer (SQLite would create the file)."""
    result = journey(*command, "--db", "sqlite:///studdy.db", check=False)

    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "error: --db sqlite:///studdy.db: no such database; "
        "`journey ingest FILE --db sqlite:///studdy.db` creates one"]
    assert not (tmp_path / "studdy.db").exists()
