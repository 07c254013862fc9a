"""Lines of therapy: numbered by the engine in clinical order (DESIGN section 5).

A line starts with ``line.started``; ``line.modified`` never opens a new line
(maintenance, a drug dropped or swapped); a line ends at its ``line.ended``, at
the start of the next line, or at death -- whichever comes first.  Declared line
numbers that disagree with the engine's numbering are findings, not corrections.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from operator import itemgetter

from mbcjourney.events.catalogue import LineEnded, LineModified, LineStarted
from mbcjourney.events.drugs import Drug, normalise_drug
from mbcjourney.projections.derived_lines import DerivedLine, lines_from_administrations
from mbcjourney.projections.facts import PatientFacts
from mbcjourney.projections.findings import Finding, FindingKind
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings

END_NEXT_LINE = "next_line"
END_DEATH = "death"
DECLARED = "declared"  # line_source: from line.started / modified / ended
DERIVED = "derived"  # line_source: derived from drug.administered (projections/derived_lines)
_DAY = itemgetter(0)  # of an end candidate; min() keeps the first on a tie


@dataclass(frozen=True)
class Line:
    number: int
    line_ref: str
    start: date
    drugs_at_start: tuple[Drug, ...]
    drugs_now: tuple[Drug, ...]  # after every line.modified
    end: date | None  # None while the line is in progress
    end_reason: str | None  # the line.ended reason, "next_line", "death", or None
    next_start: date | None  # start of the following line
    source: str = DECLARED  # DECLARED or DERIVED
    start_event_id: str = ""  # the line.started (or, derived, the first drug.administered)

    @property
    def regimen(self) -> str:
        return regimen_name(self.drugs_at_start)

    @property
    def current_regimen(self) -> str:
        return regimen_name(self.drugs_now)

    def within(self, day: date) -> bool:
        """``start <= day < next start`` (no upper bound for the last line)."""
        return self.start <= day and (self.next_start is None or day < self.next_start)


def regimen_name(drugs: tuple[Drug, ...]) -> str:
    """Generic names, sorted, joined by ``+``."""
    return "+".join(sorted({d.name for d in drugs}))


@dataclass
class _Open:
    started: LineStarted
    drugs: dict[str, Drug] = field(default_factory=dict)  # as modified so far
    ended: LineEnded | None = None
    at_start: tuple[Drug, ...] = ()  # the drugs as started, before any modification


def _drugs(names: list[str]) -> dict[str, Drug]:
    return {d.name: d for d in map(normalise_drug, names)}


def _ends(starts: list[date], explicit: list[tuple[date, str] | None], death: date | None
          ) -> list[tuple[date | None, str | None]]:
    """Each line's end and reason. Candidates in order of precedence on a tie: explicit
    end, next line, death."""
    ends: list[tuple[date | None, str | None]] = []
    for index, start in enumerate(starts):
        candidates: list[tuple[date, str]] = []
        ended = explicit[index]
        if ended is not None:
            candidates.append(ended)
        if index + 1 < len(starts):
            candidates.append((starts[index + 1], END_NEXT_LINE))
        if death is not None and death >= start:
            candidates.append((death, END_DEATH))
        ends.append(min(candidates, key=_DAY) if candidates else (None, None))
    return ends


def _derived(facts: PatientFacts, s: ClinicalSettings) -> tuple[list[Line], list[Finding]]:
    pid = facts.patient_id
    built: list[DerivedLine] = lines_from_administrations(facts.administrations, s)
    findings = [Finding(pid, FindingKind.UNKNOWN_DRUG, str(given.event_id), given.payload.drug)
                for given in facts.administrations
                if not normalise_drug(given.payload.drug).known]
    death = facts.death.occurred_on if facts.death else None
    starts = [line.start for line in built]
    lines = []
    for index, (line, (end, reason)) in enumerate(
            zip(built, _ends(starts, [None] * len(built), death), strict=True)):
        lines.append(Line(
            number=index + 1,
            line_ref=line.regimen_ref or f"derived-{index + 1}",
            start=line.start,
            drugs_at_start=tuple(line.regimen.values()),
            drugs_now=line.current(s.line_regimen_window_days),
            end=end,
            end_reason=reason,
            next_start=starts[index + 1] if index + 1 < len(starts) else None,
            source=DERIVED,
            start_event_id=line.first_event_id,
        ))
    return lines, findings


def _disagreements(pid: str, declared: list[Line], derived: list[Line]) -> list[Finding]:
    """Where a source's declared lines and the lines derived from its administrations differ.

    Each finding points at the declared line's ``line.started`` (the first one for a
    different count); its detail is cut to the findings table's 200 characters."""
    findings = []
    if len(declared) != len(derived):
        findings.append(Finding(pid, FindingKind.DERIVED_LINES_DISAGREE,
                                declared[0].start_event_id,
                                f"declared {len(declared)} lines, derived {len(derived)}"))
    for mine, theirs in zip(declared, derived, strict=False):
        if mine.regimen != theirs.regimen or mine.start != theirs.start:
            detail = (f"line {mine.number}: declared {mine.regimen} from {mine.start}, "
                      f"derived {theirs.regimen} from {theirs.start}")
            findings.append(Finding(pid, FindingKind.DERIVED_LINES_DISAGREE,
                                    mine.start_event_id, detail[:200]))
    return findings


def derive_lines(facts: PatientFacts, s: ClinicalSettings = DEFAULT_CLINICAL
                 ) -> tuple[list[Line], list[Finding]]:
    """The patient's lines: declared (``line.started``) when the source sends any, else
    derived from ``drug.administered``; when both arrive, disagreements are findings."""
    declared, findings = _declared(facts)
    if facts.administrations:
        derived, derived_findings = _derived(facts, s)
        if not declared:
            return derived, derived_findings
        findings += _disagreements(facts.patient_id, declared, derived)
    return declared, findings


def _declared(facts: PatientFacts) -> tuple[list[Line], list[Finding]]:
    pid = facts.patient_id
    findings: list[Finding] = []
    opened: list[_Open] = []
    by_ref: dict[str, _Open] = {}
    for event in facts.line_events:
        ref = event.payload.line_ref
        if isinstance(event, LineStarted):
            if ref in by_ref:
                findings.append(
                    Finding(pid, FindingKind.REPEATED_LINE_REF, str(event.event_id), ref)
                )
                continue
            drugs = _drugs(event.payload.drugs)
            state = _Open(event, drugs, at_start=tuple(drugs.values()))
            for drug in state.drugs.values():
                if not drug.known:
                    findings.append(
                        Finding(pid, FindingKind.UNKNOWN_DRUG, str(event.event_id), drug.name)
                    )
            opened.append(state)
            by_ref[ref] = state
            continue
        state_or_none = by_ref.get(ref)
        if state_or_none is None:
            kind = (FindingKind.LINE_ENDED_NOT_STARTED if isinstance(event, LineEnded)
                    else FindingKind.LINE_MODIFIED_NOT_STARTED)
            findings.append(Finding(pid, kind, str(event.event_id), ref))
        elif isinstance(event, LineModified):
            for name in event.payload.drugs_stopped:
                state_or_none.drugs.pop(normalise_drug(name).name, None)
            added = _drugs(event.payload.drugs_added)
            for drug in added.values():
                if not drug.known:
                    findings.append(
                        Finding(pid, FindingKind.UNKNOWN_DRUG, str(event.event_id), drug.name)
                    )
            state_or_none.drugs.update(added)
        elif state_or_none.ended is None:
            state_or_none.ended = event

    death = facts.death.occurred_on if facts.death else None
    starts = [state.started.occurred_on for state in opened]
    explicit = [(state.ended.occurred_on, state.ended.payload.reason.value)
                if state.ended is not None else None for state in opened]
    lines: list[Line] = []
    for index, (state, (end, reason)) in enumerate(
            zip(opened, _ends(starts, explicit, death), strict=True)):
        number = index + 1
        declared = state.started.payload.declared_line_number
        if declared is not None and declared != number:
            findings.append(
                Finding(pid, FindingKind.DECLARED_LINE_NUMBER_MISMATCH,
                        str(state.started.event_id), f"declared {declared}, derived {number}")
            )
        lines.append(
            Line(
                number=number,
                line_ref=state.started.payload.line_ref,
                start=starts[index],
                drugs_at_start=state.at_start,
                drugs_now=tuple(state.drugs.values()),
                end=end,
                end_reason=reason,
                next_start=starts[index + 1] if number < len(starts) else None,
                start_event_id=str(state.started.event_id),
            )
        )
    return lines, findings


def line_in_progress(lines: list[Line]) -> Line | None:
    """The line started and not ended, if any (only the last line can be)."""
    return lines[-1] if lines and lines[-1].end is None else None
