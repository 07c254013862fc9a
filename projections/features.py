"""Point-in-time features per (patient, line), as known when the line was chosen.

The landmark of a line is its start, ``t0``.  Its features are computed from the
patient's history under the view "occurred on or before t0 **and** recorded by
the end of t0's day" -- :func:`~mbcjourney.projections.views.overdue_view`, the
same "as of DATE" reading ``journey overdue --as-of`` uses -- so a lab recorded
weeks after the line started, or an IHC corrected later, never reaches the
row.  ``as_occurred=True`` drops the recording condition (for comparison: that
is what a naive join of the exports gives).

The rows themselves (which lines exist, their drugs at start) and the labels
(PFS, TTP, TTNT, best response) come from the whole history up to the data
cut-off, with the lines and outcomes ``journey export lines`` is made of
(:func:`~mbcjourney.projections.lines.derive_lines`,
:func:`~mbcjourney.projections.outcomes.line_outcome`).  Features reuse the
same projections -- the inclusion profile
(:func:`~mbcjourney.projections.journey.inclusion_profile`), the lines, their
outcomes and concordance -- each run on the history as known at ``t0``.

Receptor features: ``group``, ``hr_status``, ``her2_status`` and ``her2_low``
are those of the inclusion IHC as known at t0 (the study's stratum);
``er_percent``, ``pr_percent`` and ``ki67_percent`` are the latest reported on
or before t0 (a progression biopsy may have changed them).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from mbcjourney.events.catalogue import (
    EVENT_CLASSES,
    ClinicalEvent,
    ClinicalExamRecorded,
    EventRetracted,
)
from mbcjourney.events.envelope import Envelope
from mbcjourney.events.vocabulary import DrugClass
from mbcjourney.projections.concordance import first_line_concordant
from mbcjourney.projections.facts import PatientFacts, collect_facts
from mbcjourney.projections.history import PatientHistory, View, history_of_sorted, sort_events
from mbcjourney.projections.journey import inclusion_profile, is_erased
from mbcjourney.projections.lines import Line, derive_lines
from mbcjourney.projections.outcomes import line_outcome
from mbcjourney.projections.receptors import Group
from mbcjourney.projections.settings import ClinicalSettings
from mbcjourney.projections.views import overdue_view

Value = float | int | str | bool | date | None

#: Drug classes with a flag each in ``prior_classes`` / ``line_classes`` (supportive care
#: and unknown drugs left out).
FLAG_CLASSES: tuple[DrugClass, ...] = tuple(
    c for c in DrugClass if c not in (DrugClass.BONE_TARGETED, DrugClass.UNKNOWN))

#: Built-in feature name -> its output columns (a ``<name>_missing`` flag follows each
#: feature that can be missing).
BUILTIN_COLUMNS: dict[str, tuple[str, ...]] = {
    "age": ("age", "age_missing"),
    "group": ("group",),
    "hr_status": ("hr_status",),
    "her2_status": ("her2_status",),
    "her2_low": ("her2_low", "her2_low_missing"),
    "er_percent": ("er_percent", "er_percent_missing"),
    "pr_percent": ("pr_percent", "pr_percent_missing"),
    "ki67_percent": ("ki67_percent", "ki67_percent_missing"),
    "presentation": ("presentation", "presentation_missing"),
    "metastatic_sites": ("metastatic_sites", "metastatic_sites_missing"),
    "visceral": ("visceral", "visceral_missing"),
    "liver": ("liver", "liver_missing"),
    "brain": ("brain", "brain_missing"),
    "bone_only": ("bone_only", "bone_only_missing"),
    "visceral_crisis": ("visceral_crisis", "visceral_crisis_missing"),
    "ecog": ("ecog", "ecog_missing"),
    "weight_kg": ("weight_kg", "weight_kg_missing"),
    # the row's own ``line_number`` is the engine's numbering over the whole history;
    # the feature is the number as known at t0 (a line recorded late is not counted)
    "line_number": ("line_number_at_t0",),
    "previous_lines": ("previous_lines",),
    "prior_classes": tuple(f"prior_{c.value}" for c in FLAG_CLASSES),
    "line_classes": tuple(f"line_{c.value}" for c in FLAG_CLASSES),
    "concordant": ("concordant", "concordant_missing"),
    "days_since_previous_line": ("days_since_previous_line", "days_since_previous_line_missing"),
    "previous_line_pfs_days": ("previous_line_pfs_days", "previous_line_pfs_days_missing"),
}
BUILTINS: tuple[str, ...] = tuple(BUILTIN_COLUMNS)

#: Categorical built-ins (text values); the others are numbers or flags.
CATEGORICAL_BUILTINS = frozenset({"group", "hr_status", "her2_status", "presentation"})

LABEL_COLUMNS = ("pfs_days", "pfs_event", "ttp_days", "ttp_event", "ttnt_days", "ttnt_event",
                 "best_response")
KEY_COLUMNS = ("patient_id", "line_number", "start_date")

#: Event types a declared feature may read, and their classes.
OBSERVATION_CLASSES: dict[str, type[Envelope]] = {
    cls.EVENT_TYPE: cls for cls in EVENT_CLASSES if cls is not EventRetracted}


@dataclass(frozen=True)
class DeclaredFeature:
    """``[[feature]]`` of a spec: the latest ``value`` of matching events within the window."""

    name: str
    event_type: str  # ``from``
    value: str  # payload field
    window_days: int
    where: tuple[tuple[str, str | int | float | bool], ...] = ()  # payload field == value

    @property
    def columns(self) -> tuple[str, str]:
        return (self.name, f"{self.name}_missing")


@dataclass(frozen=True)
class FeatureSpec:
    """Which features a table holds: built-ins by name, then declared features."""

    builtin: tuple[str, ...] = BUILTINS
    declared: tuple[DeclaredFeature, ...] = ()

    def __post_init__(self) -> None:
        unknown = [name for name in self.builtin if name not in BUILTIN_COLUMNS]
        if unknown:
            raise ValueError(f"unknown builtin features {unknown}")

    @property
    def feature_columns(self) -> tuple[str, ...]:
        columns = [c for name in self.builtin for c in BUILTIN_COLUMNS[name]]
        columns += [c for d in self.declared for c in d.columns]
        return tuple(columns)

    @property
    def columns(self) -> tuple[str, ...]:
        return KEY_COLUMNS + LABEL_COLUMNS + self.feature_columns

    def categorical(self) -> frozenset[str]:
        """Columns holding text (categories), for the models' one-hot encoding."""
        return frozenset(c for c in CATEGORICAL_BUILTINS if c in self.builtin)


@dataclass(frozen=True)
class FeatureRow:
    """One (patient, line): keys, labels from the cut-off, features as known at t0."""

    patient_id: str
    line_number: int
    line_ref: str
    start_date: date
    labels: Mapping[str, Value]
    features: Mapping[str, Value] = field(default_factory=dict)
    ongoing: bool = False  # the line had not ended (in the view of the whole history)

    def values(self, spec: FeatureSpec) -> tuple[Value, ...]:
        """The row in the order of ``spec.columns``."""
        keys = (self.patient_id, self.line_number, self.start_date)
        return (keys + tuple(self.labels[c] for c in LABEL_COLUMNS)
                + tuple(self.features[c] for c in spec.feature_columns))


def feature_rows(patient_id: str, events: Iterable[ClinicalEvent], spec: FeatureSpec,
                 settings: ClinicalSettings, *, cutoff: date | None = None,
                 lines: str = "all", as_occurred: bool = False,
                 known_at: datetime | None = None) -> list[FeatureRow]:
    """Every line of one patient (or only the first: ``lines="first"``), as rows.

    ``known_at`` limits the whole history too (scoring "as of" a date: which lines
    were known then).  Nothing for a patient outside the analytic outputs (erased,
    or no fact in view).
    """
    keyed = sort_events(events)  # sorted once, folded under each line's view
    history = history_of_sorted(patient_id, keyed, View(cutoff=cutoff, known_at=known_at))
    facts = collect_facts(history)
    if not history.events or is_erased(facts):  # as Journey.reportable
        return []
    full_lines, _ = derive_lines(facts)
    chosen = full_lines[:1] if lines == "first" else full_lines
    rows = []
    for line in chosen:
        labels = _labels(line, facts)
        view = overdue_view(line.start, View(cutoff=cutoff, known_at=known_at))
        if as_occurred:
            view = View(cutoff=view.cutoff)
        seen = history_of_sorted(patient_id, keyed, view)
        features = _features(seen, collect_facts(seen), line, spec, settings)
        rows.append(FeatureRow(patient_id, line.number, line.line_ref, line.start, labels,
                               features, line.end is None))
    return rows


def _labels(line: Line, facts: PatientFacts) -> dict[str, Value]:
    """The outcome columns of ``journey export lines`` (:func:`project_journey`'s rows)."""
    outcome = line_outcome(line, facts)
    best = outcome.best_response
    return {"pfs_days": outcome.pfs.days, "pfs_event": outcome.pfs.event,
            "ttp_days": outcome.ttp.days, "ttp_event": outcome.ttp.event,
            "ttnt_days": outcome.ttnt.days, "ttnt_event": outcome.ttnt.event,
            "best_response": best.value if best else None}


def _latest_ihc_value(facts: PatientFacts, name: str) -> float | None:
    for ihc in reversed(facts.ihcs):  # clinical order: the last is the latest
        value = getattr(ihc.payload, name)
        if value is not None:
            return float(value)
    return None


def _exam_value(events: Iterable[ClinicalExamRecorded], name: str, since: date) -> float | None:
    found: float | None = None
    for exam in events:  # clinical order
        value = getattr(exam.payload, name)
        if value is not None and exam.occurred_on >= since:
            found = float(value)
    return found


def _flag(value: bool | None) -> tuple[bool | None, bool]:
    return value, value is None


def _features(seen: PatientHistory, known: PatientFacts, line: Line, spec: FeatureSpec,
              s: ClinicalSettings) -> dict[str, Value]:
    """The features of ``line`` from the history (and its facts) known at its start."""
    t0 = line.start
    known_lines, _ = derive_lines(known)
    before = [k for k in known_lines if k.start < t0]
    _, profile = inclusion_profile(known, known_lines, s)
    group = profile.group if profile else Group.UNKNOWN
    inclusion = known.inclusion.payload if known.inclusion else None

    sites: set[str] | None = None
    if inclusion is not None:
        sites = {site.value for site in inclusion.metastatic_sites}
        for progression in known.progressions:
            sites.update(site.value for site in progression.payload.new_sites)

    crisis = None
    assessments = [a for a in known.crisis_assessments if a.occurred_on <= t0]
    if assessments:
        crisis = assessments[-1].payload.present

    exams = [e for e in seen.events if type(e) is ClinicalExamRecorded]
    since = t0 - timedelta(days=s.feature_exam_lookback_days)
    prior_classes = {d.drug_class for k in before for d in (*k.drugs_at_start, *k.drugs_now)}
    line_classes = {d.drug_class for d in line.drugs_at_start}
    previous = before[-1] if before else None
    previous_pfs = line_outcome(previous, known).pfs.days if previous is not None else None

    values: dict[str, Value] = {}
    for name in spec.builtin:
        if name == "age":
            age = t0.year - inclusion.birth_year if inclusion else None
            values["age"], values["age_missing"] = age, age is None
        elif name == "group":
            values["group"] = group.value
        elif name == "hr_status":
            values["hr_status"] = profile.hr_status.value if profile else "unknown"
        elif name == "her2_status":
            values["her2_status"] = profile.her2_status.value if profile else "unknown"
        elif name == "her2_low":
            values["her2_low"], values["her2_low_missing"] = _flag(
                profile.her2_low if profile else None)
        elif name in ("er_percent", "pr_percent", "ki67_percent"):
            number = _latest_ihc_value(known, name)
            values[name], values[f"{name}_missing"] = number, number is None
        elif name == "presentation":
            text = inclusion.presentation.value if inclusion else None
            values["presentation"], values["presentation_missing"] = text, text is None
        elif name == "metastatic_sites":
            count = len(sites) if sites is not None else None
            values["metastatic_sites"], values["metastatic_sites_missing"] = count, count is None
        elif name == "visceral":
            values["visceral"], values["visceral_missing"] = _flag(
                bool(sites & set(s.visceral_sites)) if sites is not None else None)
        elif name in ("liver", "brain"):
            values[name], values[f"{name}_missing"] = _flag(
                name in sites if sites is not None else None)
        elif name == "bone_only":
            values["bone_only"], values["bone_only_missing"] = _flag(
                sites == {"bone"} if sites is not None else None)
        elif name == "visceral_crisis":
            values["visceral_crisis"], values["visceral_crisis_missing"] = _flag(crisis)
        elif name in ("ecog", "weight_kg"):
            number = _exam_value(exams, name, since)
            if name == "ecog" and number is not None:
                values[name] = int(number)
            else:
                values[name] = number
            values[f"{name}_missing"] = number is None
        elif name == "line_number":
            values["line_number_at_t0"] = len(before) + 1
        elif name == "previous_lines":
            values["previous_lines"] = len(before)
        elif name == "prior_classes":
            for c in FLAG_CLASSES:
                values[f"prior_{c.value}"] = c in prior_classes
        elif name == "line_classes":
            for c in FLAG_CLASSES:
                values[f"line_{c.value}"] = c in line_classes
        elif name == "concordant":
            concordant = (first_line_concordant(group, bool(crisis), line.drugs_at_start)
                          if not before else None)
            values["concordant"], values["concordant_missing"] = _flag(concordant)
        elif name == "days_since_previous_line":
            days = (t0 - previous.start).days if previous is not None else None
            values["days_since_previous_line"] = days
            values["days_since_previous_line_missing"] = days is None
        elif name == "previous_line_pfs_days":
            values["previous_line_pfs_days"] = previous_pfs
            values["previous_line_pfs_days_missing"] = previous_pfs is None
    for declared in spec.declared:
        value = declared_value(seen, declared, t0)
        values[declared.name], values[f"{declared.name}_missing"] = value, value is None
    return values


def _matches(payload: Any, where: tuple[tuple[str, Any], ...]) -> bool:
    for name, wanted in where:
        got = getattr(payload, name)
        got = getattr(got, "value", got)  # an enum compares by its wire value
        if got != wanted:
            return False
    return True


def declared_value(seen: PatientHistory, feature: DeclaredFeature, t0: date) -> Value:
    """The latest ``feature.value`` of matching events in ``[t0 - window, t0]``."""
    since = t0 - timedelta(days=feature.window_days)
    found: Value = None
    for event in seen.events:  # clinical order: the last match is the latest
        if (event.event_type != feature.event_type or not since <= event.occurred_on <= t0
                or not _matches(event.payload, feature.where)):
            continue
        value = getattr(event.payload, feature.value)
        if value is None:
            continue
        value = getattr(value, "value", value)
        if isinstance(value, bool | int | float | str):
            found = value
    return found

