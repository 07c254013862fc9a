"""What ``journey predict evaluate / train / score`` do, between the CLI and the models.

A trained model is a file (pickle; load only files you trust, as for any pickle)
holding the fitted pipeline and what it was made from: the spec and its hash,
the feature table's content hash, the target, the options and the library
versions.  ``score`` refuses a model whose spec this engine cannot compute, or
whose features this data does not carry.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.errors import ConfigurationError
from mbcjourney.predict.dataset import FeatureOptions, FeatureTable, build_table
from mbcjourney.predict.design import Cohort, cohort, with_stratum
from mbcjourney.predict.evaluate import EvaluateOptions, evaluate, hazard_ratios
from mbcjourney.predict.metrics import GRID
from mbcjourney.predict.models import fit, survival_at
from mbcjourney.predict.report import ReportInputs, render
from mbcjourney.predict.spec import spec_document, spec_from_document, spec_hash
from mbcjourney.projections.features import FeatureRow, FeatureSpec
from mbcjourney.projections.views import end_of_day

ARTEFACT_FORMAT = 1
SCORE_DAYS = (182, 365)  # 6 and 12 months
SCORE_COLUMNS = ("patient_id", "line_number", "start_date", "target",
                 "p_event_free_182d", "p_event_free_365d")
_LIBRARIES = ("mbc-journey", "scikit-survival", "scikit-learn", "numpy", "scipy")


def versions() -> dict[str, str]:
    found = {}
    for name in _LIBRARIES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def missing_shares(data: Cohort) -> dict[str, float]:
    shares = {}
    for j, name in enumerate(data.columns):
        if not name.endswith("_missing"):
            shares[name] = float(np.mean([v is None for v in data.x[:, j]])) if len(data) else 0.0
    return shares


@dataclass(frozen=True)
class Evaluation:
    metrics: dict[str, Any]
    html: str


def run_evaluate(engine: EmbeddedEngine, spec: FeatureSpec, target: str,
                 features: FeatureOptions, options: EvaluateOptions) -> Evaluation:
    table = build_table(engine, with_stratum(spec), features)
    data = cohort(table, spec, target)
    metrics, predictions = evaluate(data, options)
    metrics["spec_sha256"] = spec_hash(spec)
    metrics["data_sha256"] = table.content_hash()
    metrics["lines"] = features.lines
    inputs = ReportInputs(metrics, predictions, data, hazard_ratios(data, options.seed),
                          metrics["spec_sha256"], metrics["data_sha256"], features.lines,
                          features.cutoff, missing_shares(data), versions())
    return Evaluation(metrics, render(inputs))


def metrics_json(metrics: dict[str, Any]) -> bytes:
    return orjson.dumps(metrics, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY) + b"\n"


def train(engine: EmbeddedEngine, spec: FeatureSpec, target: str, model_name: str,
          features: FeatureOptions, seed: int) -> dict[str, Any]:
    table = build_table(engine, with_stratum(spec), features)
    data = cohort(table, spec, target)
    model = fit(model_name, data, seed)
    return {
        "format": ARTEFACT_FORMAT,
        "model_name": model_name,
        "target": target,
        "spec": spec_document(spec),
        "spec_sha256": spec_hash(spec),
        "data_sha256": table.content_hash(),
        "rows": len(data),
        "events": int(data.event.sum()),
        "lines": features.lines,
        "cutoff": features.cutoff.isoformat() if features.cutoff else None,
        "trained_on": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": versions(),
        "present": {c: float(np.mean([v is not None for v in data.x[:, j]]))
                    for j, c in enumerate(data.columns)},
        "pipeline": model,
    }


def save_model(artefact: dict[str, Any], path: Path) -> None:
    path.write_bytes(pickle.dumps(artefact, protocol=pickle.HIGHEST_PROTOCOL))


def load_model(path: Path) -> dict[str, Any]:
    try:
        artefact = pickle.loads(path.read_bytes())
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError) as exc:
        raise ConfigurationError(f"--model {path}: not a journey model ({exc})") from None
    if not isinstance(artefact, dict) or artefact.get("format") != ARTEFACT_FORMAT:
        raise ConfigurationError(f"--model {path}: not a journey model of format "
                                 f"{ARTEFACT_FORMAT}")
    return artefact


def model_spec(artefact: dict[str, Any], path: Path) -> FeatureSpec:
    """The artefact's spec, checked: computable by this engine and matching its hash."""
    try:
        spec = spec_from_document(artefact["spec"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigurationError(f"--model {path}: its feature spec is not one this engine "
                                 f"computes ({exc}); retrain it with journey predict train"
                                 ) from None
    if spec_hash(spec) != artefact.get("spec_sha256"):
        raise ConfigurationError(f"--model {path}: its spec does not match its recorded hash "
                                 "(the file was altered)")
    return spec


def score(engine: EmbeddedEngine, artefact: dict[str, Any], path: Path, as_of: date | None
          ) -> list[tuple[Any, ...]]:
    """Every patient's current line (in progress as of ``as_of``): the probability of
    being event-free 6 and 12 months after its start."""
    spec = model_spec(artefact, path)
    options = FeatureOptions(lines="all", cutoff=as_of,
                             known_at=end_of_day(as_of) if as_of else None)
    table = build_table(engine, with_stratum(spec), options)
    current = FeatureTable(table.spec, [r for r in table.rows if r.ongoing], table.events,
                           table.patients)
    if not current.rows:
        return []
    data = _all_rows(current, spec, artefact["target"])
    _check_present(artefact, data, path)
    survival = survival_at(artefact["pipeline"], data, GRID)
    columns = [int(np.searchsorted(GRID, d)) for d in SCORE_DAYS]
    return [(r.patient_id, r.line_number, r.start_date, artefact["target"],
             round(float(s[columns[0]]), 4), round(float(s[columns[1]]), 4))
            for r, s in zip(current.rows, survival, strict=True)]


def _all_rows(table: FeatureTable, spec: FeatureSpec, target: str) -> Cohort:
    """The cohort of every row, 0-day lines included (they are what is scored)."""
    data = cohort(FeatureTable(table.spec, [_with_follow_up(r, target) for r in table.rows],
                               table.events, table.patients), spec, target)
    return data


def _with_follow_up(row: FeatureRow, target: str) -> FeatureRow:
    labels = dict(row.labels)
    days = labels[f"{target}_days"]
    labels[f"{target}_days"] = max(1, days if isinstance(days, int) else 0)
    return replace(row, labels=labels)


def _check_present(artefact: dict[str, Any], data: Cohort, path: Path) -> None:
    """Refuse when a feature the model learnt from is absent from every scored line."""
    present: dict[str, float] = artefact["present"]
    for j, name in enumerate(data.columns):
        trained = present.get(name)
        if trained is None:
            raise ConfigurationError(f"--model {path}: this data has feature {name!r}, which "
                                     "the model was not trained on; retrain it")
        if trained >= 0.05 and all(v is None for v in data.x[:, j]):
            raise ConfigurationError(
                f"--model {path}: feature {name!r} is missing on every line scored, but was "
                f"present on {trained:.0%} of the training lines: this data does not carry "
                "what the model's spec reads (a different source, or a renamed marker or test)")
    for name in present:
        if name not in data.columns:
            raise ConfigurationError(f"--model {path}: feature {name!r} of the model is not "
                                     "computed from this data; retrain it")
