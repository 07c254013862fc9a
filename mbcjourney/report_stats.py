"""The numbers behind ``journey report``: pure functions of the export rows.

Why a module of its own: the study team's report and the validation test must
compute Kaplan-Meier medians, regimen classes and reference arms the same way,
so both call these functions; nothing here reads a database, a clock or a file.

* :func:`regimen_class` -- the treatment family of a line, from its drugs.
* :func:`km_median` -- Kaplan-Meier median with its confidence interval
  (lifelines), in months of 30.4375 days.
* :data:`REFERENCE_ARMS` and :func:`reference_arm` -- the published first-line
  median PFS of DESIGN section 10, and which exported lines they apply to.
* :func:`sample_patients` -- the deterministic, group-stratified sample drawn for
  the swimmer plot.
* The cohort tables (``*_table``), as plain rows of text.
"""

from __future__ import annotations

import hashlib
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from lifelines import KaplanMeierFitter
from lifelines.utils import median_survival_times

from mbcjourney.events.drugs import Drug
from mbcjourney.events.vocabulary import DrugClass
from mbcjourney.projections import LineRow, PatientRow
from mbcjourney.projections.concordance import SUPPORTIVE_CLASSES, active_components
from mbcjourney.projections.families import RegimenClass as RegimenClass
from mbcjourney.projections.families import drugs_of
from mbcjourney.projections.families import regimen_class as regimen_class
from mbcjourney.projections.findings import Finding
from mbcjourney.projections.journey import PatientStatus
from mbcjourney.projections.receptors import Group
from mbcjourney.projections.schedule import Assessment, DueAssessment

#: Days per month for every figure and table (365.25 / 12).
DAYS_PER_MONTH: Final = 30.4375

#: Group order and labels used in every table and figure.
GROUP_LABELS: Final[Mapping[str, str]] = {
    Group.HR_POSITIVE_HER2_NEGATIVE.value: "Group 1 (HR+/HER2−)",
    Group.HER2_POSITIVE.value: "Group 2 (HER2+)",
    Group.TRIPLE_NEGATIVE.value: "Group 3 (triple negative)",
    Group.UNKNOWN.value: "Group unknown",
}
GROUPS: Final = tuple(GROUP_LABELS)

#: Real-world first-line median PFS in months (French ESME cohort, DESIGN section 10).
REAL_WORLD_MEDIAN_MONTHS: Final[Mapping[str, float]] = {"1": 12.3, "2": 13.3, "3": 6.0}


def months(days: float) -> float:
    return days / DAYS_PER_MONTH


# Regimen classes (RegimenClass, regimen_class) live in projections.families: the
# coordinators' pages colour a patient's lines with the same vocabulary.


# --- Kaplan-Meier medians ---------------------------------------------------------


@dataclass(frozen=True)
class MedianEstimate:
    """A Kaplan-Meier median in months; ``None`` where the curve never reaches 0.5."""

    n: int
    events: int
    median: float | None
    lower: float | None
    upper: float | None
    level: float = 0.95  # confidence level of (lower, upper)
    max_time: float = 0.0  # longest follow-up, months: an unreached bound lies beyond it

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the interval (an unreached bound is unbounded)."""
        lower = self.max_time if self.lower is None else self.lower
        return lower <= value and (self.upper is None or value <= self.upper)

    def text(self) -> str:
        """``"18.4 (15.2–22.0)"``, with ``NR`` for a bound not reached."""
        if self.n == 0:
            return "–"
        low, high = _months_text(self.lower), _months_text(self.upper)
        return f"{_months_text(self.median)} ({low}–{high})"


def _months_text(value: float | None) -> str:
    return "NR" if value is None else f"{value:.1f}"


def _finite(value: object) -> float | None:
    number = float(value)  # type: ignore[arg-type]  # numpy / pandas scalars
    return number if math.isfinite(number) else None


def km_median(days: Sequence[int], events: Sequence[bool], level: float = 0.95
              ) -> MedianEstimate:
    """Kaplan-Meier median time-to-event (months) and its CI (lifelines' log(-log) bands).

    The CI bounds are the times the lower and upper confidence bands of the
    survival curve cross 0.5 (Brookmeyer-Crowley style, as lifelines
    ``median_survival_times(confidence_interval_)``).
    """
    n = len(days)
    if n == 0:
        return MedianEstimate(0, 0, None, None, None, level)
    times = [months(d) for d in days]
    fitter = KaplanMeierFitter(alpha=1 - level).fit(times, list(events))
    bounds = median_survival_times(fitter.confidence_interval_)
    return MedianEstimate(
        n=n,
        events=sum(bool(e) for e in events),
        median=_finite(fitter.median_survival_time_),
        lower=_finite(bounds.iloc[0, 0]),
        upper=_finite(bounds.iloc[0, 1]),
        level=level,
        max_time=max(times),
    )


def first_lines(lines: Iterable[LineRow]) -> list[LineRow]:
    return [row for row in lines if row.line_number == 1]


def groups_of(patients: Iterable[PatientRow]) -> dict[str, str]:
    return {p.patient_id: p.group for p in patients}


def first_line_pfs_by_group(patients: Sequence[PatientRow], lines: Iterable[LineRow]
                            ) -> dict[str, list[LineRow]]:
    """First-line rows per inclusion group (groups in :data:`GROUPS` order, empty ones left out)."""
    group = groups_of(patients)
    by_group: dict[str, list[LineRow]] = {g: [] for g in GROUPS}
    for row in first_lines(lines):
        by_group[group.get(row.patient_id, Group.UNKNOWN.value)].append(row)
    return {g: rows for g, rows in by_group.items() if rows}


def pfs_median(rows: Sequence[LineRow], level: float = 0.95) -> MedianEstimate:
    return km_median([r.pfs_days for r in rows], [r.pfs_event for r in rows], level)


# --- published reference arms (DESIGN section 10) ------------------------------------


@dataclass(frozen=True)
class ReferenceArm:
    """A published first-line arm and the exported first lines it is compared with."""

    key: str
    regimen: str  # as the study team names it
    trial: str
    group: str  # the phenotype group the trial enrolled
    published_months: float
    matches: Callable[[frozenset[str], frozenset[DrugClass]], bool]
    note: str = ""


def _exactly(*names: str) -> Callable[[frozenset[str], frozenset[DrugClass]], bool]:
    wanted = frozenset(names)
    return lambda drugs, _classes: drugs == wanted


def _one_of_and(choices: tuple[str, ...], *others: str
                ) -> Callable[[frozenset[str], frozenset[DrugClass]], bool]:
    wanted = [frozenset({c, *others}) for c in choices]
    return lambda drugs, _classes: drugs in wanted


def _combination_chemotherapy(drugs: frozenset[str], classes: frozenset[DrugClass]) -> bool:
    cytotoxic = {DrugClass.TAXANE, DrugClass.ANTHRACYCLINE, DrugClass.OTHER_CYTOTOXIC}
    return len(drugs) >= 2 and classes <= cytotoxic


#: DESIGN section 10, first-line arms (experimental and control).  Lines match an
#: arm on the exact set of drugs at the line's start (bone-targeted agents
#: ignored, a fixed-dose product counted as its components) and on the
#: patient's inclusion group.
REFERENCE_ARMS: Final[tuple[ReferenceArm, ...]] = (
    ReferenceArm("cleopatra", "docetaxel + trastuzumab + pertuzumab", "CLEOPATRA (N=808)", "2",
                 18.5, _exactly("docetaxel", "trastuzumab", "pertuzumab")),
    ReferenceArm("peruse", "paclitaxel + trastuzumab + pertuzumab", "PERUSE (N=1436)", "2", 20.7,
                 _one_of_and(("paclitaxel", "nab-paclitaxel"), "trastuzumab", "pertuzumab"),
                 "PERUSE: 20.7 with paclitaxel or docetaxel"),
    ReferenceArm("cleopatra-control", "docetaxel + trastuzumab", "CLEOPATRA control arm", "2",
                 12.4, _exactly("docetaxel", "trastuzumab")),
    ReferenceArm("paloma-2", "letrozole + palbociclib", "PALOMA-2 (N=666)", "1", 24.8,
                 _exactly("letrozole", "palbociclib")),
    ReferenceArm("monaleesa-2", "letrozole + ribociclib", "MONALEESA-2 (N=668)", "1", 25.3,
                 _exactly("letrozole", "ribociclib")),
    ReferenceArm("monarch-3", "NSAI + abemaciclib", "MONARCH 3 (N=493)", "1", 28.2,
                 _one_of_and(("letrozole", "anastrozole"), "abemaciclib"),
                 "NSAI: letrozole or anastrozole"),
    ReferenceArm("letrozole", "letrozole alone", "PALOMA-2 control arm", "1", 14.5,
                 _exactly("letrozole"), "MONALEESA-2 control 16.0, MONARCH 3 control 14.8"),
    ReferenceArm("right-choice-control", "combination chemotherapy",
                 "RIGHT Choice control arm (N=222)", "1", 12.8, _combination_chemotherapy,
                 "two or more cytotoxic drugs, nothing else; visceral crisis / aggressive"),
    ReferenceArm("e2100", "paclitaxel + bevacizumab", "E2100 (N=722)", "3", 11.8,
                 _exactly("paclitaxel", "bevacizumab")),
    ReferenceArm("paclitaxel", "paclitaxel alone", "IMpassion131 control arm", "3", 5.6,
                 _exactly("paclitaxel"), "E2100 control 5.9"),
)


def _components(drugs: Iterable[Drug]) -> tuple[frozenset[str], frozenset[DrugClass]]:
    kept = [d for d in drugs if d.drug_class not in SUPPORTIVE_CLASSES]
    return active_components(kept), frozenset(d.drug_class for d in kept)


def reference_arm(group: str, regimen: str) -> ReferenceArm | None:
    """The published arm an exported first line belongs to, if any."""
    names, classes = _components(drugs_of(regimen))
    for arm in REFERENCE_ARMS:
        if arm.group == group and arm.matches(names, classes):
            return arm
    return None


@dataclass(frozen=True)
class ValidationRow:
    regimen: str
    group: str
    arm: ReferenceArm | None  # None: a first-line regimen with no published reference
    estimate: MedianEstimate

    @property
    def assessable(self) -> bool:
        return self.arm is not None and self.estimate.n >= MIN_PATIENTS_FOR_VERDICT

    @property
    def within(self) -> bool | None:
        """Whether the published median lies in the recovered CI (None: not assessed)."""
        if self.arm is None or not self.assessable:
            return None
        return self.estimate.contains(self.arm.published_months)


#: Fewer first-line patients than this: the comparison is shown but not judged.
MIN_PATIENTS_FOR_VERDICT: Final = 30


def validation_rows(patients: Sequence[PatientRow], lines: Iterable[LineRow],
                    level: float = 0.95) -> list[ValidationRow]:
    """Recovered first-line median PFS per reference arm, then per other regimen.

    Reference arms come in :data:`REFERENCE_ARMS` order (arms with no patient
    included, n = 0); other first-line regimens follow by decreasing n.
    """
    group = groups_of(patients)
    by_arm: dict[str, list[LineRow]] = defaultdict(list)
    others: dict[tuple[str, str], list[LineRow]] = defaultdict(list)
    for row in first_lines(lines):
        g = group.get(row.patient_id, Group.UNKNOWN.value)
        arm = reference_arm(g, row.regimen)
        if arm is None:
            others[(row.regimen, g)].append(row)
        else:
            by_arm[arm.key].append(row)
    result = [ValidationRow(arm.regimen, arm.group, arm, pfs_median(by_arm[arm.key], level))
              for arm in REFERENCE_ARMS]
    for (regimen, g), rows in sorted(others.items(), key=lambda kv: (-len(kv[1]), kv[0])):
        result.append(ValidationRow(regimen.replace("+", " + "), g, None, pfs_median(rows, level)))
    return result


# --- swimmer sample -------------------------------------------------------------------


def _rank(seed: int, patient_id: str) -> bytes:
    return hashlib.sha256(f"{seed}:{patient_id}".encode()).digest()


def sample_patients(ids_by_group: Mapping[str, Iterable[str]], per_group: int, seed: int
                    ) -> dict[str, list[str]]:
    """Up to ``per_group`` patient ids per group, chosen by a seeded hash of the id.

    Deterministic for a seed, independent of input order, and stable as the
    cohort grows: a patient sampled stays sampled unless another patient of
    the same group with a smaller hash arrives.  Ids come back sorted.
    """
    return {
        group: sorted(sorted(ids, key=lambda pid: _rank(seed, pid))[:per_group])
        for group, ids in ids_by_group.items()
    }


# --- cohort tables ------------------------------------------------------------------


@dataclass(frozen=True)
class Table:
    """A small table of text cells; the first column is the row label."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    note: str = ""


def _percent(part: int, whole: int) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


def _present_groups(patients: Iterable[PatientRow]) -> list[str]:
    seen = {p.group for p in patients}
    return [g for g in GROUPS if g in seen]


def group_status_table(patients: Sequence[PatientRow]) -> Table:
    """Patients by inclusion group (rows) and current status (columns), with totals."""
    statuses = [s.value for s in PatientStatus]
    counts = Counter((p.group, p.status) for p in patients)
    rows = []
    for g in _present_groups(patients):
        cells = [counts[(g, s)] for s in statuses]
        rows.append((GROUP_LABELS[g], *map(str, cells), str(sum(cells))))
    totals = [sum(counts[(g, s)] for g in GROUPS) for s in statuses]
    rows.append(("All patients", *map(str, totals), str(sum(totals))))
    return Table("Patients by group and status",
                 ("group", *(s.replace("_", " ") for s in statuses), "total"), tuple(rows),
                 "Group: phenotype of the inclusion IHC (the analysis stratum). Status as of the "
                 "report's data view.")


def concordance_table(patients: Sequence[PatientRow], lines: Iterable[LineRow]) -> Table:
    """First-line concordance with the protocol, by group, among patients with a first line."""
    started = {row.patient_id for row in first_lines(lines)}
    rows = []
    total = Counter[str]()
    for g in _present_groups(patients):
        members = [p for p in patients if p.group == g]
        with_line = [p for p in members if p.patient_id in started]
        c = Counter(p.first_line_concordant for p in with_line)
        for key, value in (("line", len(with_line)), *c.items()):
            total[key] += value
        rows.append(_concordance_row(GROUP_LABELS[g], len(with_line), c))
    rows.append(_concordance_row("All patients", total["line"], total))
    return Table("First-line concordance with the protocol by group",
                 ("group", "patients with a first line", "concordant", "not concordant",
                  "unknown", "% concordant (of known)"), tuple(rows),
                 "Unknown: the inclusion group is unknown (e.g. HER2 pending), so the protocol's "
                 "recommendation is undefined.")


def _concordance_row(label: str, with_line: int, c: Mapping[str, int]) -> tuple[str, ...]:
    yes, no, unknown = c.get("true", 0), c.get("false", 0), c.get("unknown", 0)
    return (label, str(with_line), str(yes), str(no), str(unknown), _percent(yes, yes + no))


def conversion_table(patients: Sequence[PatientRow]) -> Table:
    """Receptor conversion (a later IHC with a different HR or HER2 status), by group."""
    rows = []
    for g in _present_groups(patients):
        members = [p for p in patients if p.group == g]
        converted = sum(p.receptor_conversion for p in members)
        rows.append((GROUP_LABELS[g], str(len(members)), str(converted),
                     _percent(converted, len(members))))
    converted = sum(p.receptor_conversion for p in patients)
    rows.append(("All patients", str(len(patients)), str(converted),
                 _percent(converted, len(patients))))
    return Table("Receptor conversion by group",
                 ("group", "patients", "with conversion", "%"), tuple(rows),
                 "Conversion: an IHC dated after the inclusion IHC gives a different HR status or "
                 "a different definitive HER2 status. Published primary-to-metastasis rates "
                 "(Schrijver 2018): ER about 19 %, PR about 31 %, HER2 about 10 % per biopsy.")


def overdue_table(overdue: Sequence[tuple[DueAssessment, int]]) -> Table:
    """Overdue assessments: how many, for how many patients, and how late."""
    rows = []
    for kind in Assessment:
        late = [days for due, days in overdue if due.assessment is kind]
        patients = len({due.patient_id for due, _ in overdue if due.assessment is kind})
        rows.append((kind.value.replace("_", " "), str(len(late)), str(patients),
                     f"{statistics.median(late):.0f}" if late else "–",
                     str(max(late)) if late else "–"))
    return Table("Overdue assessments", ("assessment", "overdue", "patients",
                                         "median days overdue", "max days overdue"),
                 tuple(rows))


def findings_table(findings: Sequence[Finding]) -> Table:
    """Data-quality findings by kind, most frequent first."""
    counts = Counter(f.finding.value for f in findings)
    patients: dict[str, set[str]] = defaultdict(set)
    for f in findings:
        patients[f.finding.value].add(f.patient_id)
    rows = [(kind.replace("_", " "), str(n), str(len(patients[kind])))
            for kind, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    rows.append(("all findings", str(len(findings)),
                 str(len({f.patient_id for f in findings}))))
    return Table("Data-quality findings by kind", ("finding", "count", "patients"), tuple(rows),
                 "Details per finding: journey export findings.")
