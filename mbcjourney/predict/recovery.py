"""Known-effects check: simulate a cohort whose progression hazard is known, model it back.

The simulator (``SimulationSettings(known_effects=True)``) draws each line's time to
progression with hazard ``h0 * exp(lp)``, ``lp`` the sum of the log hazard ratios of
:data:`~mbcjourney.simulate.tables.PFS_HAZARD_RATIOS` (ECOG, liver and brain
metastases, endocrine resistance, Ki-67, age), and keeps ``lp`` per line.  This
module ingests such a cohort, builds the feature table through ``journey features``'
code, and checks that

* the Cox model recovers every simulated log hazard ratio within its 95 % interval;
* the best cross-validated Harrell C is at least 95 % of the oracle C (the C of the
  true ``lp`` on the same rows);
* every model beats the stratified Kaplan-Meier on the integrated Brier score.

The target is TTP: death is a competing event whose hazard the effects do not
touch, so the progression hazard is what is known.  Every regimen gets the same
median (a common baseline hazard, as the Cox model assumes), every progression is
documented with its new sites, and Ki-67 is always reported, so the features the
engine computes are the covariates the simulator used.  The features are read
"as occurred" (every fact by t0): the simulated hazard depends on the patient's
true state at t0, and facts recorded after t0 (an exam recorded days after the
visit) are missing as known -- :func:`check` reports both readings.
"""

from __future__ import annotations

import io
import math
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from mbcjourney.engine import EmbeddedEngine
from mbcjourney.predict.dataset import FeatureOptions, build_table
from mbcjourney.predict.design import Cohort, cohort, with_stratum
from mbcjourney.predict.evaluate import EvaluateOptions, evaluate, hazard_ratios
from mbcjourney.predict.metrics import concordance
from mbcjourney.processors.ingest import numbered_lines
from mbcjourney.projections.features import FeatureSpec
from mbcjourney.simulate import REGIMENS, SimulationSettings, line_truth, write_cohort
from mbcjourney.simulate.tables import PFS_HAZARD_RATIOS

SPEC = FeatureSpec(("age", "ecog", "liver", "brain", "ki67_percent", "prior_classes"))
#: design column -> (simulated effect, units of the effect per unit of the column)
EFFECTS: dict[str, tuple[str, float]] = {
    "ecog": ("ecog", 1.0), "liver": ("liver", 1.0), "brain": ("brain", 1.0),
    "prior_endocrine": ("endocrine_resistance", 1.0), "ki67_percent": ("ki67_per_10", 0.1),
    "age": ("age_per_10", 0.1),
}
TARGET = "ttp"


def settings(patients: int, seed: int) -> SimulationSettings:
    return SimulationSettings(
        patients=patients, seed=seed, known_effects=True, ki67_share=1.0,
        progression_documented_share=1.0, same_day_next_line_share=0.0,
        medians_months=dict.fromkeys(REGIMENS, 12.0), later_line_factor=1.0,
        later_line_decay=1.0)


@dataclass(frozen=True)
class Recovery:
    patients: int
    rows: int
    events: int
    effects: list[dict[str, Any]]  # per effect: true log HR, estimate, interval, recovered
    oracle_c: float
    metrics: dict[str, Any]  # METRICS.json of the cross-validation
    known_metrics: dict[str, Any] | None  # the same, features as known at t0
    seconds: dict[str, float]

    @property
    def best_model(self) -> str:
        models = {k: v for k, v in self.metrics["models"].items() if k != "km"}
        return str(max(models, key=lambda k: models[k]["c_harrell"]["value"]))

    @property
    def best_c(self) -> float:
        return float(self.metrics["models"][self.best_model]["c_harrell"]["value"])

    def beats_km(self) -> dict[str, bool]:
        km = self.metrics["models"]["km"]["ibs"]["value"]
        return {k: v["ibs"]["value"] < km for k, v in self.metrics["models"].items()
                if k != "km"}


def simulate_into(db: Path, patients: int, seed: int) -> str:
    """Simulate the known-effects cohort and ingest it into a new SQLite log."""
    buffer = io.BytesIO()
    write_cohort(settings(patients, seed), buffer)
    buffer.seek(0)
    url = f"sqlite:///{db}"
    with EmbeddedEngine(url) as engine:
        engine.ingest(numbered_lines(buffer), origin="known-effects",
                      received_at=datetime(2030, 1, 1, tzinfo=UTC))
    return url


def _oracle(data: Cohort, truth: dict[tuple[str, str], float]) -> float:
    lp = np.array([truth[(p, s.isoformat())] for p, s in zip(data.patients, data.starts,
                                                              strict=True)])
    return concordance(data.event, data.time, lp)


def check(workdir: Path, patients: int, seed: int, *, folds: int = 5, bootstrap: int = 50,
          models: tuple[str, ...] = ("km", "cox", "coxnet", "gbsa"),
          as_known: bool = False) -> Recovery:
    """Run the whole check (see the module docstring)."""
    seconds: dict[str, float] = {}
    clock = time.perf_counter()
    db = workdir / f"known-effects-{patients}-{seed}.db"
    for stale in workdir.glob(f"{db.name}*"):
        stale.unlink()
    url = simulate_into(db, patients, seed)
    truth = {(t.patient_id, t.start_date): t.linear_predictor
             for t in line_truth(settings(patients, seed))}
    seconds["simulate+ingest"] = time.perf_counter() - clock

    clock = time.perf_counter()
    with EmbeddedEngine(url) as engine:
        table = build_table(engine, with_stratum(SPEC), FeatureOptions(as_occurred=True))
        known_table = (build_table(engine, with_stratum(SPEC), FeatureOptions())
                       if as_known else None)
    data = cohort(table, SPEC, TARGET)
    seconds["features"] = time.perf_counter() - clock

    clock = time.perf_counter()
    effects = []
    for row in hazard_ratios(data, seed):
        if row["feature"] not in EFFECTS:
            continue
        name, per = EFFECTS[row["feature"]]
        true = math.log(PFS_HAZARD_RATIOS[name]) * per
        low, high = row["log_hr"] - 1.96 * row["se"], row["log_hr"] + 1.96 * row["se"]
        effects.append({"effect": name, "column": row["feature"], "true_log_hr": true,
                        "estimate": row["log_hr"], "se": row["se"], "low": low, "high": high,
                        "recovered": bool(low <= true <= high)})
    options = EvaluateOptions(models, folds, seed, None, bootstrap)
    metrics, _ = evaluate(data, options)
    known_metrics = None
    if known_table is not None:
        known_metrics, _ = evaluate(cohort(known_table, SPEC, TARGET),
                                    replace(options, bootstrap=0))
    seconds["models"] = time.perf_counter() - clock
    return Recovery(patients, len(data), int(data.event.sum()), effects,
                    _oracle(data, truth), metrics, known_metrics, seconds)
