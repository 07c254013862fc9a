"""`journey replay` and `journey projections` as a user runs them: kill -9 and resume, the
documented analyst walk-through, clear failures."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.processors.db import make_engine
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.processors.replay import JourneyTarget, table_hash, versions
from mbcjourney.simulate import SimulationSettings, write_cohort
from tests.e2e.conftest import Journey
from tests.support.polling import eventually

pytestmark = pytest.mark.slow  # each test spawns journey processes

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "analyst-projections.md"
REPLAY_TIMEOUT_S = 300.0
HASH = re.compile(r"^content hash (sha256:[0-9a-f]{64})$", re.M)


def _study(folder: Path, patients: int) -> Path:
    jsonl = folder / "cohort.jsonl"
    with jsonl.open("wb") as out:
        write_cohort(SimulationSettings(patients=patients, seed=3), out)
    db = folder / "study.db"
    engine = EmbeddedEngine(f"sqlite:///{db}")
    with jsonl.open("rb") as stream:
        engine.ingest(numbered_lines(stream), origin="cohort",
                      received_at=datetime(2026, 7, 1, tzinfo=UTC))
    engine.catch_up()
    engine.close()
    return db


def _hash(stdout: str) -> str:
    found = HASH.findall(stdout)
    assert found, stdout
    return str(found[-1])


def _replay_args(source: Path, into: Path) -> list[str]:
    return ["replay", "--source", f"sqlite:///{source}", "--into", f"sqlite:///{into}",
            "--batch-patients", "5"]


def _kill_after_first_checkpoint(args: list[str], into: Path, cwd: Path) -> bool:
    """Run a replay, SIGKILL it once a batch is committed; False if it finished first."""
    proc = subprocess.Popen([sys.executable, "-m", "mbcjourney", "--quiet", *args], cwd=cwd,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ})
    engine = make_engine(f"sqlite:///{into}")

    def ended_or_committed() -> str | None:
        if proc.poll() is not None:
            return "ended"
        building = [v for v in versions(engine) if v.status == "building"]
        if building and building[0].progress.get("folded_through"):
            return "committed"
        return None

    try:
        if eventually(ended_or_committed, timeout=REPLAY_TIMEOUT_S, interval=0.005,
                      what="the replay's first committed batch (or its end)") == "ended":
            return False
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return True
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
        engine.dispose()


def test_kill_9_mid_replay_then_resume_gives_the_identical_hash(journey: Journey,
                                                                tmp_path: Path) -> None:
    study = _study(tmp_path, 400)
    for attempt in range(3):  # a run so fast it ends before the kill is simply tried again
        into = tmp_path / f"killed-{attempt}.db"
        if _kill_after_first_checkpoint(_replay_args(study, into), into, tmp_path):
            break
    else:
        pytest.fail("the replay always finished before it could be killed")
    engine = make_engine(f"sqlite:///{into}")
    unfinished = versions(engine)
    engine.dispose()
    assert [v.status for v in unfinished] == ["building"]
    assert unfinished[0].progress["counts"]["patients"] < 400

    resumed = journey(*_replay_args(study, into))
    assert "resumed an interrupted build (phase fold)" in resumed.stdout
    assert "built journey version 1 " in resumed.stdout
    whole = journey(*_replay_args(study, tmp_path / "whole.db"))
    assert _hash(resumed.stdout) == _hash(whole.stdout)
    live = make_engine(f"sqlite:///{study}")
    assert _hash(resumed.stdout) == table_hash(live, JourneyTarget().sink(live, "").outputs)[0]
    live.dispose()
    # the counts of the resumed run are those of an uninterrupted one: nothing twice
    counts = re.compile(r"\d[\d,]* read, [\d,]+ events, [\d,]+ patients, [\d,]+ duplicate")
    assert counts.findall(resumed.stdout) == counts.findall(whole.stdout)

    listed = journey("projections", "list", "--db", f"sqlite:///{into}").stdout
    assert listed.splitlines()[1].startswith("journey,1,complete,")


def _bash_blocks(markdown: str) -> list[list[str]]:
    blocks = re.findall(r"```bash\n(.*?)```", markdown, re.S)
    return [shlex.split(line) for block in blocks
            for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def test_the_documented_analyst_walkthrough_runs(journey: Journey, tmp_path: Path) -> None:
    shutil.copytree(ROOT / "docs" / "examples", tmp_path / "docs" / "examples")
    text = DOC.read_text()
    commands = _bash_blocks(text)
    assert len(commands) >= 6
    outputs = []
    for command in commands:
        assert command[0] == "journey", command
        outputs.append(journey(*command[1:]).stdout)
    assert all(_hash(o) for o in outputs if o.startswith("built "))
    csv_lines = (tmp_path / "biopsy.csv").read_text().splitlines()
    assert csv_lines[0] == ("patient_id,progression_date,basis,biopsy_found,biopsy_date,"
                            "days_to_biopsy,within_due_window,followup_days")
    assert len(csv_lines) > 100
    assert (tmp_path / "tfi.json").read_text().startswith("[")

    # the "Writing one" example works as printed
    example = re.findall(r"```python\n(.*?)```", text, re.S)[0]
    (tmp_path / "first_biopsy.py").write_text(example)
    out = journey("replay", "--source", "cohort.jsonl", "--projection", "first_biopsy.py",
                  "--into", "sqlite:///analysis.db").stdout
    assert "built first_biopsy version 1" in out
    rows = journey("projections", "export", "first_biopsy", "1", "--db",
                   "sqlite:///analysis.db").stdout.splitlines()
    assert rows[0] == "patient_id,biopsy_date,days_from_inclusion"
    assert len(rows) > 100


def test_a_broken_projection_fails_clearly_and_leaves_the_database_as_it_was(
        journey: Journey, tmp_path: Path) -> None:
    study = _study(tmp_path, 60)
    (tmp_path / "broken.py").write_text(
        "from mbcjourney.analyst import Column, projection\n"
        "@projection('broken', columns=[Column('n', int)])\n"
        "def broken(history, settings):\n"
        "    for event in history.events:\n"
        "        if event.event_type == 'death.recorded':\n"
        "            raise LookupError('no cause')\n"
        "    return [(1,)]\n")
    failed = journey("replay", "--source", f"sqlite:///{study}", "--projection", "broken.py",
                     "--into", f"sqlite:///{study}", check=False)
    assert failed.returncode == 2
    message = failed.stderr.strip().splitlines()[-1]
    assert re.fullmatch(r"error: projection 'broken' failed on patient P-\d{6}, event "
                        r"[0-9a-f-]{36}: LookupError: no cause at broken\.py:6", message)
    engine = make_engine(f"sqlite:///{study}")
    assert versions(engine) == []
    with engine.connect() as conn:
        names = set(engine.dialect.get_table_names(conn))
    engine.dispose()
    assert not [n for n in names if n.startswith("p_") or n == "projection_versions"]

    bad_import = journey("replay", "--source", f"sqlite:///{study}", "--projection",
                         "nowhere.py", "--into", f"sqlite:///{study}", check=False)
    assert bad_import.returncode == 2
    assert "error: projection file nowhere.py does not exist" in bad_import.stderr
    misuse = journey("replay", "--source", f"sqlite:///{study}", "--received-at",
                     "2025-01-01", "--into", "sqlite:///x.db", check=False)
    assert misuse.returncode == 2
    assert "only applies to a JSON Lines source" in misuse.stderr
