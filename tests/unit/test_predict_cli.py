"""``journey predict evaluate / train / score`` end to end on a small simulated cohort."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import pytest
from click.testing import CliRunner

from mbcjourney.cli.main import cli
from mbcjourney.predict.metrics import concordance, uno_weights
from tests.support.cohorts import embedded_log, simulated_cohort

SPEC = """builtin = ["age", "group", "ecog", "liver", "brain", "line_number", "line_classes"]

[[feature]]
name = "pik3ca"
from = "biomarker.recorded"
where = { marker = "PIK3CA" }
value = "result"
window_days = 3650
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    from datetime import UTC, datetime

    folder = tmp_path_factory.mktemp("predict")
    jsonl = simulated_cohort(folder / "cohort.jsonl", patients=150, seed=5)
    db = embedded_log(jsonl, folder / "study.db", received_at=datetime(2030, 1, 1, tzinfo=UTC))
    spec = folder / "spec.toml"
    spec.write_text(SPEC)
    return f"sqlite:///{db}", spec


def run(*args: str) -> str:
    result = CliRunner().invoke(cli, ["-q", *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_evaluate_writes_the_metrics_and_the_report(study: tuple[str, Path], tmp_path: Path
                                                    ) -> None:
    db, spec = study
    metrics, report = tmp_path / "m.json", tmp_path / "r.html"
    run("predict", "evaluate", "--db", db, "--spec", str(spec), "--models", "cox",
        "--folds", "3", "--bootstrap", "10", "--json", str(metrics), "--report", str(report))
    m = json.loads(metrics.read_text())
    assert m["rows"] > 100
    assert 0 < m["events"] <= m["rows"]
    assert set(m["models"]) == {"km", "cox"}  # the null model is always there
    cox = m["models"]["cox"]
    for name in ("c_harrell", "c_uno", "ibs", "ipa", "calibration_slope",
                 "calibration_in_the_large"):
        entry = cox[name]
        assert set(entry) == {"value", "low", "high"}
        assert entry["low"] <= entry["value"] <= entry["high"], name
    assert set(cox["auc"]) == {"182", "365"}
    assert m["models"]["km"]["ipa"]["value"] == 0  # the KM against itself
    assert cox["c_harrell"]["value"] > m["models"]["km"]["c_harrell"]["value"]
    assert set(cox["by_group"]) <= {"1", "2", "3", "unknown"}
    assert "1" in cox["by_group"]
    html = report.read_text()
    for section in ("Model card", "Intended use", "Calibration", "Cox hazard ratios",
                    "By phenotype group", "data:image/png;base64,"):
        assert section in html
    assert "P-0" not in html  # no patient id in the report


def test_temporal_split_tests_on_later_lines_only(study: tuple[str, Path], tmp_path: Path
                                                  ) -> None:
    db, spec = study
    metrics = tmp_path / "m.json"
    run("predict", "evaluate", "--db", db, "--spec", str(spec), "--models", "cox",
        "--temporal-split", "2023-06-01", "--bootstrap", "0", "--json", str(metrics))
    m = json.loads(metrics.read_text())
    assert m["validation"]["kind"] == "temporal"
    assert m["validation"]["train_rows"] > 0
    assert m["rows"] > 0


def test_train_then_score_current_lines(study: tuple[str, Path], tmp_path: Path) -> None:
    db, spec = study
    model = tmp_path / "pfs.model"
    run("predict", "train", "--db", db, "--spec", str(spec), "--output", str(model))
    artefact = pickle.loads(model.read_bytes())
    assert len(artefact["spec_sha256"]) == 64
    assert len(artefact["data_sha256"]) == 64
    assert "scikit-survival" in artefact["versions"]
    out = run("predict", "score", "--model", str(model), "--db", db, "--as-of", "2025-06-30")
    lines = out.strip().splitlines()
    assert lines[0] == ("patient_id,line_number,start_date,target,p_event_free_182d,"
                        "p_event_free_365d")
    assert len(lines) > 10
    for line in lines[1:]:
        six, twelve = map(float, line.split(",")[-2:])
        assert 0 <= twelve <= six <= 1


def test_a_model_whose_spec_the_data_does_not_carry_is_refused(
        study: tuple[str, Path], tmp_path: Path) -> None:
    db, spec = study
    model = tmp_path / "pfs.model"
    run("predict", "train", "--db", db, "--spec", str(spec), "--output", str(model))
    artefact = pickle.loads(model.read_bytes())
    # the same model read on data where PIK3CA is called something else: never present
    artefact["spec"]["feature"][0]["where"] = {"marker": "PIK3CA-v2"}
    tampered = tmp_path / "tampered.model"
    tampered.write_bytes(pickle.dumps(artefact))
    result = CliRunner().invoke(cli, ["-q", "predict", "score", "--model", str(tampered),
                                      "--db", db])
    assert result.exit_code != 0
    assert "does not match its recorded hash" in str(result.exception)
    from mbcjourney.predict.spec import spec_from_document, spec_hash

    artefact["spec_sha256"] = spec_hash(spec_from_document(artefact["spec"]))
    tampered.write_bytes(pickle.dumps(artefact))
    result = CliRunner().invoke(cli, ["-q", "predict", "score", "--model", str(tampered),
                                      "--db", db])
    assert result.exit_code != 0
    assert "feature 'pik3ca' is missing on every line scored" in str(result.exception)


def test_fast_concordance_equals_scikit_survival() -> None:
    import numpy as np
    from sksurv.metrics import concordance_index_censored, concordance_index_ipcw

    from mbcjourney.predict.design import survival_target

    rng = np.random.default_rng(3)
    time = rng.integers(1, 40, 400).astype(float)  # many tied times
    event = rng.random(400) < 0.6
    risk = rng.integers(0, 6, 400).astype(float)  # many tied risks
    y = survival_target(event, time)
    assert concordance(event, time, risk) == pytest.approx(
        concordance_index_censored(event, time, risk)[0], abs=1e-12)
    assert concordance(event, time, risk, uno_weights(y, time, event, 30.0)) == pytest.approx(
        concordance_index_ipcw(y, y, risk, tau=30.0)[0], abs=1e-12)


def test_features_writes_parquet_and_csv_with_the_same_columns(
        study: tuple[str, Path], tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    db, spec = study
    result = CliRunner().invoke(cli, ["-q", "features", "--db", db, "--spec", str(spec),
                                      "--output", str(tmp_path / "f.parquet")])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    table = pq.read_table(tmp_path / "f.parquet")
    assert table.num_rows == summary["rows"] > 0
    assert table.column_names[:4] == ["patient_id", "line_number", "start_date", "pfs_days"]
    assert "pik3ca_missing" in table.column_names
    run("features", "--db", db, "--spec", str(spec), "--lines", "first",
        "--output", str(tmp_path / "f.csv"))
    header = (tmp_path / "f.csv").read_text().splitlines()[0].split(",")
    assert header == table.column_names
    bad = CliRunner().invoke(cli, ["-q", "features", "--db", db, "--spec", str(spec),
                                   "--output", str(tmp_path / "f.xlsx")])
    assert bad.exit_code != 0
    assert ".parquet or .csv" in str(bad.exception)
