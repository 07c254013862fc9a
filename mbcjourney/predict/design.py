"""From a feature table to what the models read: a design, the survival target, the folds.

:class:`Design` is a scikit-learn transformer, so it is fitted inside each
cross-validation fold like every other step: medians for imputation, the
categories of one-hot encoding, the means and scales of standardisation and the
columns dropped for being constant are all learnt from the training rows only.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.base import BaseEstimator, TransformerMixin

from mbcjourney.errors import ConfigurationError
from mbcjourney.predict.dataset import FeatureTable
from mbcjourney.projections.features import FeatureSpec

TARGETS = ("pfs", "ttp", "ttnt")
STRATUM = "group"  # the phenotype group: the null model's strata and the by_group split


@dataclass(frozen=True)
class Cohort:
    """The rows a model sees: raw features (object array), target, patients, strata, dates."""

    columns: tuple[str, ...]  # feature columns of ``x``
    categorical: frozenset[str]
    x: NDArray[Any]  # object array (n, p): floats, bools, text or None
    time: NDArray[np.float64]
    event: NDArray[np.bool_]
    patients: NDArray[Any]
    strata: NDArray[Any]  # phenotype group of each row
    starts: list[date]
    target: str

    @property
    def y(self) -> NDArray[Any]:
        return survival_target(self.event, self.time)

    def __len__(self) -> int:
        return len(self.time)

    def take(self, index: NDArray[np.intp]) -> Cohort:
        return Cohort(self.columns, self.categorical, self.x[index], self.time[index],
                      self.event[index], self.patients[index], self.strata[index],
                      [self.starts[i] for i in index], self.target)


def survival_target(event: NDArray[np.bool_], time: NDArray[np.float64]) -> NDArray[Any]:
    y = np.empty(len(time), dtype=[("event", bool), ("time", float)])
    y["event"], y["time"] = event, time
    return y


def with_stratum(spec: FeatureSpec) -> FeatureSpec:
    """``spec`` plus the ``group`` built-in (read for the strata even when not a feature)."""
    if STRATUM in spec.builtin:
        return spec
    return FeatureSpec((*spec.builtin, STRATUM), spec.declared)


def cohort(table: FeatureTable, spec: FeatureSpec, target: str) -> Cohort:
    """The modelling view of ``table`` (built with :func:`with_stratum` of ``spec``).

    Rows of 0 days (a line censored on its first day) carry no information for a
    survival model and are left out; the features are ``spec``'s.
    """
    if target not in TARGETS:
        raise ConfigurationError(f"--target must be one of {', '.join(TARGETS)}")
    names = table.columns
    records = table.values()
    at = {name: i for i, name in enumerate(names)}
    features = spec.feature_columns
    kept = [r for r in records if r[at[f"{target}_days"]] > 0]  # type: ignore[operator]
    if not kept:
        raise ConfigurationError("no line with follow-up after its start: nothing to model")
    x = np.array([[r[at[c]] for c in features] for r in kept], dtype=object)
    return Cohort(
        columns=features,
        categorical=spec.categorical(),
        x=x.reshape(len(kept), len(features)),
        time=np.array([r[at[f"{target}_days"]] for r in kept], dtype=float),
        event=np.array([bool(r[at[f"{target}_event"]]) for r in kept]),
        patients=np.array([r[at["patient_id"]] for r in kept], dtype=object),
        strata=np.array([r[at[STRATUM]] for r in kept], dtype=object),
        starts=[r[at["start_date"]] for r in kept],  # type: ignore[misc]
        target=target,
    )


def _number(value: Any) -> float:
    if value is None:
        return float("nan")
    return float(value)


class Design(BaseEstimator, TransformerMixin):  # type: ignore[misc]
    """Impute (median; categories: their own "missing" level), one-hot, standardise, and
    drop constant columns -- every parameter learnt in :meth:`fit`."""

    def __init__(self, columns: tuple[str, ...] = (), categorical: frozenset[str] = frozenset()
                 ) -> None:
        self.columns = columns
        self.categorical = categorical

    def fit(self, x: NDArray[Any], y: Any = None) -> Design:
        self.medians_: dict[int, float] = {}
        self.levels_: dict[int, list[str]] = {}
        # categorical: the text built-ins, and any declared feature whose values are text
        self.text_ = frozenset(
            name for j, name in enumerate(self.columns)
            if name in self.categorical or any(isinstance(v, str) for v in x[:, j]))
        for j, name in enumerate(self.columns):
            if name in self.text_:
                self.levels_[j] = sorted({str(v) for v in x[:, j] if v is not None})
            else:
                values = np.array([_number(v) for v in x[:, j]])
                finite = values[~np.isnan(values)]
                self.medians_[j] = float(np.median(finite)) if len(finite) else 0.0
        raw = self._raw(x)
        self.mean_ = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.keep_ = scale > 1e-12
        self.scale_ = np.where(self.keep_, scale, 1.0)
        return self

    def _raw(self, x: NDArray[Any]) -> NDArray[np.float64]:
        parts: list[NDArray[np.float64]] = []
        for j, name in enumerate(self.columns):
            if name in self.text_:
                text = np.array(["" if v is None else str(v) for v in x[:, j]], dtype=object)
                for level in self.levels_[j]:
                    parts.append((text == level).astype(float))
            else:
                values = np.array([_number(v) for v in x[:, j]])
                values[np.isnan(values)] = self.medians_[j]
                parts.append(values)
        return np.column_stack(parts) if parts else np.zeros((len(x), 0))

    def transform(self, x: NDArray[Any]) -> NDArray[np.float64]:
        standard: NDArray[np.float64] = (self._raw(x) - self.mean_) / self.scale_
        return standard[:, self.keep_]

    def names(self) -> list[str]:
        """Names of the output columns (``group=2`` for a one-hot level)."""
        names: list[str] = []
        for j, name in enumerate(self.columns):
            if name in self.text_:
                names += [f"{name}={level}" for level in self.levels_[j]]
            else:
                names.append(name)
        return [n for n, keep in zip(names, self.keep_, strict=True) if keep]

    def scales(self) -> NDArray[np.float64]:
        """The standard deviation of each output column (to read coefficients per unit)."""
        return np.asarray(self.scale_[self.keep_], dtype=float)
