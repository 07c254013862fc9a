"""Drug vocabulary as data (``drugs.csv``): brand or generic name -> generic name and class,
and the RxNorm ingredient code (RXCUI) where known (FHIR and OMOP exports).

Names are matched case-insensitively and ignoring spaces, hyphens and
underscores, so ``Taxol``, ``TAXOL`` and ``paclitaxel`` meet.  An unknown name is
kept verbatim with class ``unknown`` and reported as a data-quality finding by
the projections; it is never silently dropped.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

from mbcjourney.events.vocabulary import DrugClass

_SEPARATORS = re.compile(r"[\s_\-]+")


@dataclass(frozen=True)
class Drug:
    """A drug as the engine understands it."""

    name: str  # the generic name, or the verbatim name when unknown
    drug_class: DrugClass

    @property
    def known(self) -> bool:
        return self.drug_class is not DrugClass.UNKNOWN


def _key(name: str) -> str:
    return _SEPARATORS.sub("", name.strip().casefold())


@cache
def vocabulary() -> dict[str, Drug]:
    """Every accepted spelling, normalised, to its drug."""
    table: dict[str, Drug] = {}
    text = resources.files("mbcjourney.events").joinpath("drugs.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        drug = Drug(row["generic"], DrugClass(row["drug_class"]))
        for spelling in [row["generic"], *filter(None, row["synonyms"].split("|"))]:
            table[_key(spelling)] = drug
    return table


@cache
def normalise_drug(name: str) -> Drug:
    """The generic drug for a brand or generic name; unknown names come back verbatim."""
    return vocabulary().get(_key(name)) or Drug(name.strip(), DrugClass.UNKNOWN)


@cache
def _rxnorm_table() -> tuple[dict[str, str], dict[str, str]]:
    """(generic -> RxNorm ingredient code, code -> generic) from ``drugs.csv``."""
    by_name: dict[str, str] = {}
    by_code: dict[str, str] = {}
    text = resources.files("mbcjourney.events").joinpath("drugs.csv").read_text("utf-8")
    for row in csv.DictReader(text.splitlines()):
        if code := (row.get("rxnorm") or "").strip():
            by_name[row["generic"]] = code
            by_code[code] = row["generic"]
    return by_name, by_code


def rxnorm_code(generic: str) -> str | None:
    """The RxNorm ingredient code (RXCUI) of a generic name, when the vocabulary holds one."""
    return _rxnorm_table()[0].get(generic)


def drug_for_rxnorm(code: str) -> Drug | None:
    """The drug of an RxNorm ingredient code, or None when the vocabulary does not hold it."""
    generic = _rxnorm_table()[1].get(code)
    return normalise_drug(generic) if generic is not None else None
