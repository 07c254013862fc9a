"""Lines of therapy derived from drug administrations, for sources that send no lines.

Prescribing systems often record each administration (``drug.administered``),
not "lines".  The rule set is Merck's line-of-therapy algorithm (Meng et al.,
J Biomed Inform 2019; parameters as validated in JMIR Med Inform
2021;9(10):e29017), every parameter in :class:`ClinicalSettings`:

1. the first administration opens line 1;
2. the **regimen** is every drug first given within ``line_regimen_window_days``
   of the line's first administration;
3. after the window, a drug new to the line starts the next line, except
   * an **allowed substitution** (``line_interchangeable_drugs``, e.g. paclitaxel
     -> nab-paclitaxel): it replaces its partner in the same line;
   * a **switch-maintenance** drug (``line_switch_maintenance_drugs``) added once
     the line's other drugs, continuation-maintenance drugs aside, have not been
     given for a whole regimen window: it joins the same line;
4. a **gap** of more than ``line_gap_days`` since the line's last administration
   starts a new line, even with the same drugs;
5. dropping drugs never starts a line (continuation maintenance).

A derived line ends at the next line's start or at death, like a declared line
without ``line.ended``.  Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from mbcjourney.events.catalogue import DrugAdministered
from mbcjourney.events.drugs import Drug, normalise_drug
from mbcjourney.projections.settings import ClinicalSettings


@dataclass
class DerivedLine:
    """A line as the algorithm builds it, before the common end rules are applied."""

    start: date
    regimen: dict[str, Drug]  # the drugs at start (given within the regimen window)
    first_event_id: str  # the administration that opened the line
    drugs: dict[str, Drug] = field(default_factory=dict)  # as it goes on (swaps, maintenance)
    last_given: dict[str, date] = field(default_factory=dict)  # per drug name
    regimen_ref: str | None = None

    @property
    def last_day(self) -> date:
        return max(self.last_given.values())

    def give(self, drug: Drug, day: date) -> None:
        self.drugs[drug.name] = drug
        self.last_given[drug.name] = day

    def current(self, window_days: int) -> tuple[Drug, ...]:
        """The drugs given within a regimen window of the line's last administration."""
        last = self.last_day
        return tuple(d for name, d in self.drugs.items()
                     if (last - self.last_given[name]).days <= window_days)


def _partners(groups: Iterable[tuple[str, ...]]) -> dict[str, frozenset[str]]:
    table: dict[str, frozenset[str]] = {}
    for group in groups:
        names = frozenset(normalise_drug(name).name for name in group)
        for name in names:
            table[name] = table.get(name, frozenset()) | (names - {name})
    return table


def lines_from_administrations(administrations: Iterable[DrugAdministered],
                               s: ClinicalSettings) -> list[DerivedLine]:
    """The lines the algorithm derives, in clinical order (administrations sorted)."""
    window, gap = s.line_regimen_window_days, s.line_gap_days
    partners = _partners(s.line_interchangeable_drugs)
    continuation = {normalise_drug(n).name for n in s.line_continuation_maintenance_drugs}
    switch = {normalise_drug(n).name for n in s.line_switch_maintenance_drugs}
    lines: list[DerivedLine] = []
    for given in administrations:
        drug, day = normalise_drug(given.payload.drug), given.occurred_on
        line = lines[-1] if lines else None
        if line is not None and (day - line.last_day).days <= gap:
            if drug.name in line.drugs:
                line.give(drug, day)
                continue
            if (day - line.start).days <= window:
                line.regimen[drug.name] = drug
                line.give(drug, day)
                continue
            swapped = partners.get(drug.name, frozenset()) & line.drugs.keys()
            if swapped:
                for name in swapped:  # the partner leaves the regimen as it goes on
                    line.drugs.pop(name)
                    line.last_given.pop(name)
                line.give(drug, day)
                continue
            others = [name for name in line.drugs if name not in continuation]
            if drug.name in switch and all(
                    (day - line.last_given[name]).days > window for name in others):
                line.give(drug, day)
                continue
        opened = DerivedLine(day, {drug.name: drug}, str(given.event_id),
                             regimen_ref=given.payload.regimen_ref)
        opened.give(drug, day)
        lines.append(opened)
    return lines
