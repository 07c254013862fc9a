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
from mbcjourney.projections.facts import PatientFacts
from mbcjourney.projections.findings import Finding, FindingKind

END_NEXT_LINE = "next_line"
END_DEATH = "death"
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


def derive_lines(facts: PatientFacts) -> tuple[list[Line], list[Finding]]:
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
    lines: list[Line] = []
    for index, state in enumerate(opened):
        number = index + 1
        start = starts[index]
        next_start = starts[index + 1] if number < len(starts) else None
        # Candidates in order of precedence on a tie: explicit end, next line, death.
        candidates: list[tuple[date, str]] = []
        if state.ended is not None:
            candidates.append((state.ended.occurred_on, state.ended.payload.reason.value))
        if next_start is not None:
            candidates.append((next_start, END_NEXT_LINE))
        if death is not None and death >= start:
            candidates.append((death, END_DEATH))
        end, reason = min(candidates, key=_DAY) if candidates else (None, None)
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
                start=start,
                drugs_at_start=state.at_start,
                drugs_now=tuple(state.drugs.values()),
                end=end,
                end_reason=reason,
                next_start=next_start,
            )
        )
    return lines, findings


def line_in_progress(lines: list[Line]) -> Line | None:
    """The line started and not ended, if any (only the last line can be)."""
    return lines[-1] if lines and lines[-1].end is None else None
