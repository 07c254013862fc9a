"""The regimen table, read from package data.

``regimens.csv``: one row per regimen a source may prescribe -- its key, the
alternative generic drug sets (``|`` between sets, ``+`` between drugs), whether its
median PFS comes from a first-line trial (``yes``/``no``), that published median in
months and the trial it comes from (DESIGN section 10).

``regimen_mixes.json``: relative weights of regimen keys per stratum, for the first
line as the protocol recommends it (``first_line``), for the share of first lines that
do not follow it (``first_line_non_concordant``), and for later lines
(``later_line``, strata ``groupG:2`` and ``groupG:3+``).  Key order is kept: it is the
order the weighted draws bisect over, so it is part of what a seed produces.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping
from dataclasses import dataclass
from importlib.resources import files
from types import MappingProxyType
from typing import Final


@dataclass(frozen=True)
class Regimen:
    """A treatment a source may prescribe, as alternative generic drug sets.

    ``first_line_trial`` says the median PFS comes from a first-line trial, so
    the regimen's median is scaled by ``later_line_factor`` when used later.
    """

    key: str
    alternatives: tuple[tuple[str, ...], ...]
    first_line_trial: bool


Mix = Mapping[str, Mapping[str, float]]


def _read(name: str) -> str:
    return files("mbcjourney.simulate").joinpath(name).read_text(encoding="utf-8")


def _load_table() -> tuple[Mapping[str, Regimen], Mapping[str, float]]:
    regimens: dict[str, Regimen] = {}
    medians: dict[str, float] = {}
    for row in csv.DictReader(io.StringIO(_read("regimens.csv"))):
        key = row["key"]
        if key in regimens or row["first_line_trial"] not in ("yes", "no"):
            raise ValueError(f"regimens.csv: duplicate key or bad first_line_trial at {key!r}")
        alternatives = tuple(tuple(s.split("+")) for s in row["drug_sets"].split("|"))
        regimens[key] = Regimen(key, alternatives, row["first_line_trial"] == "yes")
        medians[key] = float(row["median_pfs_months"])
    return MappingProxyType(regimens), MappingProxyType(medians)


def _load_mixes() -> tuple[Mix, Mix, Mix]:
    data = json.loads(_read("regimen_mixes.json"))

    def frozen(name: str) -> Mix:
        return MappingProxyType({stratum: MappingProxyType({k: float(v) for k, v in mix.items()})
                                 for stratum, mix in data[name].items()})

    return frozen("first_line"), frozen("first_line_non_concordant"), frozen("later_line")


_TABLE: Final = _load_table()
_MIXES: Final = _load_mixes()
REGIMENS: Final[Mapping[str, Regimen]] = _TABLE[0]
#: Published median PFS in months, per regimen key (DESIGN section 10 and the trials named).
PUBLISHED_MEDIAN_PFS_MONTHS: Final[Mapping[str, float]] = _TABLE[1]
FIRST_LINE_MIX: Final[Mix] = _MIXES[0]
NON_CONCORDANT_MIX: Final[Mix] = _MIXES[1]
LATER_LINE_MIX: Final[Mix] = _MIXES[2]
