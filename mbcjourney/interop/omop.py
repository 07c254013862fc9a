"""``journey export omop``: OMOP CDM v5.4 ``person``, ``drug_exposure``, ``episode``,
``episode_event`` as CSV, with the CDM's column names and order.

Ids are stable integers derived from our ids (the first 7 bytes of a SHA-256),
so two exports of the same log agree and a re-export joins with the first.
Concept ids we cannot look up without the OHDSI vocabulary tables are 0, with the
source value kept: ``drug_source_value`` is the RxNorm ingredient code when
``events/drugs.csv`` holds one (join CONCEPT on ``concept_code`` with
``vocabulary_id = 'RxNorm'``), else the generic name.  Lines are episodes
(``episode_concept_id`` 32531 "Treatment Regimen", ``episode_number`` = line
number); each line's drugs are ``drug_exposure`` rows linked by ``episode_event``
(field concept 1147094, ``drug_exposure.drug_exposure_id``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from mbcjourney.events import ClinicalEvent
from mbcjourney.events.drugs import Drug, normalise_drug, rxnorm_code
from mbcjourney.exports import render
from mbcjourney.projections import build_history
from mbcjourney.projections.facts import collect_facts
from mbcjourney.projections.lines import derive_lines
from mbcjourney.projections.settings import ClinicalSettings

TREATMENT_REGIMEN = 32531  # episode_concept_id
DRUG_EXPOSURE_ID_FIELD = 1147094  # episode_event_field_concept_id: drug_exposure.drug_exposure_id
CASE_REPORT_FORM = 32809  # type concept of facts from a study's case report forms
GENDER = {"female": 8532, "male": 8507}

PERSON = ("person_id", "gender_concept_id", "year_of_birth", "month_of_birth", "day_of_birth",
          "birth_datetime", "race_concept_id", "ethnicity_concept_id", "location_id",
          "provider_id", "care_site_id", "person_source_value", "gender_source_value",
          "gender_source_concept_id", "race_source_value", "race_source_concept_id",
          "ethnicity_source_value", "ethnicity_source_concept_id")
DRUG_EXPOSURE = ("drug_exposure_id", "person_id", "drug_concept_id", "drug_exposure_start_date",
                 "drug_exposure_start_datetime", "drug_exposure_end_date",
                 "drug_exposure_end_datetime", "verbatim_end_date", "drug_type_concept_id",
                 "stop_reason", "refills", "quantity", "days_supply", "sig", "route_concept_id",
                 "lot_number", "provider_id", "visit_occurrence_id", "visit_detail_id",
                 "drug_source_value", "drug_source_concept_id", "route_source_value",
                 "dose_unit_source_value")
EPISODE = ("episode_id", "person_id", "episode_concept_id", "episode_start_date",
           "episode_start_datetime", "episode_end_date", "episode_end_datetime",
           "episode_parent_id", "episode_number", "episode_object_concept_id",
           "episode_type_concept_id", "episode_source_value", "episode_source_concept_id")
EPISODE_EVENT = ("episode_id", "event_id", "episode_event_field_concept_id")


def stable_id(*parts: str) -> int:
    """A positive 56-bit integer derived from our ids (BIGINT in every CDM database)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:7], "big")


@dataclass
class OmopTables:
    person: list[tuple[Any, ...]] = field(default_factory=list)
    drug_exposure: list[tuple[Any, ...]] = field(default_factory=list)
    episode: list[tuple[Any, ...]] = field(default_factory=list)
    episode_event: list[tuple[Any, ...]] = field(default_factory=list)


def _source_value(drug: Drug) -> str:
    return rxnorm_code(drug.name) or drug.name


def _exposure(exposure_id: int, person: int, drug: Drug, start: date, end: date,
              stop_reason: str | None, route: str | None = None,
              unit: str | None = None) -> tuple[Any, ...]:
    return (exposure_id, person, 0, start, None, end, None, None, CASE_REPORT_FORM, stop_reason,
            None, None, None, None, 0, None, None, None, None, _source_value(drug), 0, route,
            unit)


def omop_tables(histories: Iterable[tuple[str, list[ClinicalEvent]]],
                settings: ClinicalSettings) -> OmopTables:
    """The four tables from every patient's effective history (erased patients left out)."""
    tables = OmopTables()
    for patient_id, events in histories:
        history = build_history(patient_id, events)
        facts = collect_facts(history)
        if not history.events or (facts.withdrawn is not None
                                  and facts.withdrawn.payload.scope.value == "erase"):
            continue
        person = stable_id("person", patient_id)
        inclusion = facts.inclusion
        sex = inclusion.payload.sex.value if inclusion else None
        tables.person.append((person, GENDER.get(sex or "", 0),
                              inclusion.payload.birth_year if inclusion else None, None, None,
                              None, 0, 0, None, None, None, patient_id, sex, 0, None, 0, None, 0))
        lines, _ = derive_lines(facts, settings)
        last = facts.last_fact_date
        administered: list[tuple[int, date]] = []  # (drug_exposure_id, day)
        for given in facts.administrations:
            exposure = stable_id("drug_exposure", str(given.event_id))
            tables.drug_exposure.append(_exposure(
                exposure, person, normalise_drug(given.payload.drug), given.occurred_on,
                given.occurred_on, None, given.payload.route, given.payload.dose_unit))
            administered.append((exposure, given.occurred_on))
        for line in lines:
            episode = stable_id("episode", patient_id, line.line_ref, str(line.number))
            end = line.end or last or line.start
            tables.episode.append((episode, person, TREATMENT_REGIMEN, line.start, None, end,
                                   None, None, line.number, 0, CASE_REPORT_FORM, line.regimen,
                                   0))
            if line.source == "derived":  # its administrations are its exposures
                tables.episode_event += [(episode, exposure, DRUG_EXPOSURE_ID_FIELD)
                                         for exposure, day in administered if line.within(day)]
                continue
            for drug in line.drugs_at_start:
                exposure = stable_id("drug_exposure", patient_id, line.line_ref, drug.name)
                tables.drug_exposure.append(_exposure(exposure, person, drug, line.start, end,
                                                      line.end_reason))
                tables.episode_event.append((episode, exposure, DRUG_EXPOSURE_ID_FIELD))
    return tables


def write_omop(tables: OmopTables, output: Path) -> dict[str, int]:
    """The four CSV files (CDM column names, ISO dates, empty = NULL); row counts by table."""
    output.mkdir(parents=True, exist_ok=True)
    counts = {}
    for name, columns in (("person", PERSON), ("drug_exposure", DRUG_EXPOSURE),
                          ("episode", EPISODE), ("episode_event", EPISODE_EVENT)):
        rows = sorted(getattr(tables, name), key=lambda r: tuple(map(str, r)))
        (output / f"{name}.csv").write_bytes(render(columns, rows, "csv"))
        counts[name] = len(rows)
    return counts
