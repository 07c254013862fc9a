"""The models of ``journey predict``: a null model and three scikit-survival baselines.

* ``km``: Kaplan-Meier stratified by phenotype group -- what a clinician would quote
  without a model; every other model is compared with it (IPA);
* ``cox``: Cox proportional hazards (a light ridge penalty, so one-hot levels that
  overlap do not make it singular);
* ``coxnet``: elastic-net Cox, its penalty chosen on an inner, patient-grouped
  hold-out of the training rows (never the test fold);
* ``gbsa``: gradient-boosted Cox (shallow trees, subsampling).

Every model is a pipeline of :class:`~mbcjourney.predict.design.Design` and the
estimator, fitted on training rows only.  :func:`survival_at` evaluates the
predicted survival functions on a grid of days.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupShuffleSplit
from sklearn.pipeline import Pipeline
from sksurv.ensemble import GradientBoostingSurvivalAnalysis
from sksurv.linear_model import CoxnetSurvivalAnalysis, CoxPHSurvivalAnalysis
from sksurv.metrics import concordance_index_censored
from sksurv.nonparametric import kaplan_meier_estimator

from mbcjourney.errors import ConfigurationError
from mbcjourney.predict.design import Cohort, Design

MODELS = ("km", "cox", "coxnet", "gbsa")
COX_RIDGE = 0.1  # sksurv's alpha: 0.05 * ||beta||^2 against a log-likelihood summed over events
COXNET_L1_RATIO = 0.5
GBSA = {"n_estimators": 100, "learning_rate": 0.08, "max_depth": 2, "subsample": 0.5,
        "min_samples_leaf": 20}


def km_curve(time: NDArray[np.float64], event: NDArray[np.bool_], grid: NDArray[np.float64]
             ) -> NDArray[np.float64]:
    """Kaplan-Meier survival at each day of ``grid`` (the last value carried on)."""
    if len(time) == 0:
        return np.ones(len(grid))
    times, survival = kaplan_meier_estimator(event, time)
    index = np.searchsorted(times, grid, side="right") - 1
    return np.where(index >= 0, survival[np.clip(index, 0, None)], 1.0)


class StratifiedKM(BaseEstimator):  # type: ignore[misc]
    """Kaplan-Meier per stratum; rows of an unseen stratum get the pooled curve."""

    def fit(self, strata: NDArray[Any], y: NDArray[Any]) -> StratifiedKM:
        self.curves_: dict[str, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
        for stratum in sorted({str(s) for s in strata}):
            rows = np.array([str(s) == stratum for s in strata])
            self.curves_[stratum] = kaplan_meier_estimator(y["event"][rows], y["time"][rows])
        self.pooled_ = kaplan_meier_estimator(y["event"], y["time"])
        return self

    def survival(self, strata: NDArray[Any], grid: NDArray[np.float64]) -> NDArray[np.float64]:
        out = np.empty((len(strata), len(grid)))
        for i, stratum in enumerate(strata):
            times, survival = self.curves_.get(str(stratum), self.pooled_)
            index = np.searchsorted(times, grid, side="right") - 1
            out[i] = np.where(index >= 0, survival[np.clip(index, 0, None)], 1.0)
        return out


class TunedCoxnet(BaseEstimator):  # type: ignore[misc]
    """Elastic-net Cox whose penalty is picked by Harrell's C on an inner hold-out of
    patients (20 %) of the rows it is fitted on, then refitted on all of them."""

    def __init__(self, seed: int = 0, groups: NDArray[Any] | None = None) -> None:
        self.seed = seed
        self.groups = groups

    def fit(self, x: NDArray[np.float64], y: NDArray[Any]) -> TunedCoxnet:
        groups = self.groups if self.groups is not None and len(self.groups) == len(y) \
            else np.arange(len(y))
        split = GroupShuffleSplit(n_splits=1, test_size=0.2, random_state=self.seed)
        inner, held = next(split.split(x, y, groups))
        path = _coxnet().fit(x[inner], y[inner])
        best, best_c = path.alphas_[-1], -1.0
        for alpha in path.alphas_:
            risk = path.predict(x[held], alpha=alpha)
            if not np.any(y["event"][held]) or np.ptp(risk) == 0:
                continue
            c = concordance_index_censored(y["event"][held], y["time"][held], risk)[0]
            if c > best_c:
                best, best_c = alpha, c
        self.alpha_ = float(best)
        self.model_ = CoxnetSurvivalAnalysis(l1_ratio=COXNET_L1_RATIO, alphas=[self.alpha_],
                                             fit_baseline_model=True).fit(x, y)
        return self

    def predict(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        return np.asarray(self.model_.predict(x), dtype=float)

    def predict_survival_function(self, x: NDArray[np.float64]) -> Any:
        return self.model_.predict_survival_function(x)


def _coxnet() -> CoxnetSurvivalAnalysis:
    return CoxnetSurvivalAnalysis(l1_ratio=COXNET_L1_RATIO, n_alphas=30, alpha_min_ratio=0.01,
                                  fit_baseline_model=True)


def make_model(name: str, data: Cohort, seed: int) -> Pipeline | StratifiedKM:
    design = Design(data.columns, data.categorical)
    if name == "km":
        return StratifiedKM()
    if name == "cox":
        return Pipeline([("design", design), ("model", CoxPHSurvivalAnalysis(alpha=COX_RIDGE))])
    if name == "coxnet":
        return Pipeline([("design", design), ("model", TunedCoxnet(seed, data.patients))])
    if name == "gbsa":
        return Pipeline([("design", design), ("model", GradientBoostingSurvivalAnalysis(
            random_state=seed, **GBSA))])
    raise ConfigurationError(f"unknown model {name!r} (models: {', '.join(MODELS)})")


def parse_models(text: str) -> tuple[str, ...]:
    names = tuple(n.strip() for n in text.split(",") if n.strip())
    unknown = [n for n in names if n not in MODELS]
    if unknown or not names:
        raise ConfigurationError(f"--models: unknown {unknown} (choose from {', '.join(MODELS)})")
    if "km" not in names:
        names = ("km", *names)  # the null model every other one is compared with
    return names


def fit(name: str, data: Cohort, seed: int) -> Pipeline | StratifiedKM:
    model = make_model(name, data, seed)
    with warnings.catch_warnings():
        # a fold where a flag never changes, or a step that converges slowly, is reported
        # by the metrics, not by a warning per fold
        warnings.simplefilter("ignore")
        if isinstance(model, StratifiedKM):
            return model.fit(data.strata, data.y)
        return model.fit(data.x, data.y)


def survival_at(model: Pipeline | StratifiedKM, data: Cohort, grid: NDArray[np.float64]
                ) -> NDArray[np.float64]:
    """Predicted survival of each row at each day of ``grid`` (rows x grid)."""
    if isinstance(model, StratifiedKM):
        return model.survival(data.strata, grid)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        functions = model.predict_survival_function(data.x)
    out = np.empty((len(functions), len(grid)))
    for i, fn in enumerate(functions):
        low, high = fn.domain
        out[i] = fn(np.clip(grid, low, high))
    return out


def risk_score(model: Pipeline | StratifiedKM, data: Cohort, survival: NDArray[np.float64],
               horizon_index: int) -> NDArray[np.float64]:
    """Higher = worse: the model's own risk score (the KM's: 1 - S at the horizon)."""
    if isinstance(model, StratifiedKM):
        return 1.0 - survival[:, horizon_index]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.asarray(model.predict(data.x), dtype=float)
