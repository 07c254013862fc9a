"""Synthetic cohort: realistic MBC patient journeys as wire-format v1 JSON Lines.

Why: the engine needs a large, truthful and *messy* input to be tested and
benchmarked against, and no real patient data may be used for that.  This module
mimics the hospital source systems (pathology, prescribing, radiology, research
CRF, biobank, omics and biology labs): it emits raw wire-format dicts (DESIGN
section 4), never the engine's models, and depends on nothing else in the
package, so it cannot hide a disagreement between the engine and its contract.

Modules: :mod:`.settings` (every rate and share), :mod:`.regimens` (the regimen
table and mixes, package data ``regimens.csv`` and ``regimen_mixes.json``),
:mod:`.tables` (the other static tables), :mod:`.sources` (randomness, the arrival
queue, sending a fact), :mod:`.clinical` (the facts' content), :mod:`.journey` and
:mod:`.lines` (one patient's journey in named steps), :mod:`.simulation` (the merge
of journeys into arrival order), :mod:`.results` (truth and summary).

Usage::

    from mbcjourney.simulate import SimulationSettings, write_cohort, truth

    settings = SimulationSettings(patients=2_000, seed=7)
    with open("cohort.jsonl", "wb") as out:
        summary = write_cohort(settings, out)
    expected = truth(settings)  # the drawn ground truth, one row per patient

Journeys.  Each patient is included during the accrual period with a baseline
biopsy, IHC and imaging, then goes through lines of therapy: the first line is
concordant with the protocol by phenotype group (or, at a configurable share,
not); its progression-free time is drawn from an exponential with the regimen's
published median PFS (DESIGN section 10); later lines are shorter.  Imaging
follows the group cadence with jitter and missed windows, progressions come with
a PD imaging and usually a biopsy whose IHC may show receptor conversion at the
published rates, and deaths, losses to follow-up and consent withdrawals end
follow-up.  Nothing occurs after ``data_cutoff`` nor after death, loss or
withdrawal.

Source behaviour.  ``recorded_at`` is a few days after ``occurred_at`` (weeks
for late arrivals, sometimes absent so the engine stamps it); lines come out in
``recorded_at`` order across patients (a discrete-event merge, so memory grows
with the number of patients in follow-up, not with the number of events) except
for an out-of-order share; some facts are sent wrong, then retracted
(``event.retracted``) and sent again corrected; some lines are exact duplicates;
some are malformed (kinds in :data:`MALFORMED_KINDS`, counted in the summary).
The same settings always give byte-identical output.

Payload fields, by event type (envelope as in DESIGN section 4; ``?`` = optional)::

    patient.included        birth_year, sex (female|male), centre, consent_version,
                            presentation (de_novo|recurrent), metastatic_sites [site]
    ihc.recorded            specimen_id, specimen_site (breast|local_recurrence|metastasis),
                            er_percent, pr_percent, her2_ihc (0|1+|2+|3+),
                            her2_ish (amplified|not_amplified|equivocal|not_done),
                            her2_ish_ratio?, her2_copy_number?, ki67_percent?
    visceral_crisis.assessed present (bool), criteria? [text]
    line.started            line_ref, drugs [name as sent: generic or brand, any case],
                            declared_line_number?, intent? ("palliative")
    line.modified           line_ref, drugs_added [name], drugs_stopped [name]
    line.ended              line_ref, reason (progression|toxicity|patient_choice|death)
    imaging.performed       modality (CT|PET-CT|MRI|bone_scan), regions [text],
                            recist_response (CR|PR|SD|PD|NE|null), sum_of_diameters_mm?,
                            new_lesions?
    progression.documented  basis (radiological|clinical|biological), new_sites [site]
    biopsy.performed        specimen_id, site (a metastatic site name, breast or
                            local_recurrence), reason (baseline|progression), omics_samples [ref]
    biomarker.recorded      assay, marker (PIK3CA|ESR1|BRCA1|BRCA2|PD-L1 CPS|TMB),
                            result (mutated|wild_type|positive|negative|high|low),
                            value? (number), unit? (CPS|mut/Mb)
    lab.recorded            test, loinc?, value (number), unit (UCUM)
    clinical_exam.recorded  ecog (0-4), weight_kg
    death.recorded          cause (disease|treatment|other|unknown)
    followup.lost           (empty payload)
    consent.withdrawn       scope (stop_followup|erase)
    event.retracted         target_event_id, reason

``source.system`` by family: ``research-crf`` (inclusion, visceral crisis,
progression, clinical exam, death, loss, withdrawal), ``pathology-lis`` (IHC),
``oncology-prescribing`` (lines), ``radiology-ris`` (imaging), ``biobank``
(biopsies), ``omics-lab`` (biomarkers), ``lab-lis`` (labs); a retraction comes
from the system that sent the wrong fact.  An ``event.retracted`` carries the
``occurred_at`` of the fact it retracts (a correction has no clinical time of
its own; its ``recorded_at`` says when it was made), so no event is dated after
the end of follow-up.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import BinaryIO

from mbcjourney.simulate.regimens import PUBLISHED_MEDIAN_PFS_MONTHS, REGIMENS, Regimen
from mbcjourney.simulate.results import LineTruth, PatientTruth, SimulationSummary
from mbcjourney.simulate.settings import SimulationSettings
from mbcjourney.simulate.simulation import Simulation
from mbcjourney.simulate.tables import DAYS_PER_MONTH, MALFORMED_KINDS, TAG_NAMES

__all__ = [
    "DAYS_PER_MONTH",
    "MALFORMED_KINDS",
    "PUBLISHED_MEDIAN_PFS_MONTHS",
    "REGIMENS",
    "LineTruth",
    "PatientTruth",
    "Regimen",
    "SimulationSettings",
    "SimulationSummary",
    "iter_annotated",
    "iter_cohort",
    "line_truth",
    "simulate_cohort",
    "truth",
    "write_cohort",
]


def iter_annotated(settings: SimulationSettings) -> Iterator[tuple[str, bytes]]:
    """Each line (bytes, no newline) in arrival order, with what it is.

    The label is ``event`` (a well-formed event, first sending), ``duplicate``
    (a byte-identical repeat) or ``malformed:<kind>`` with a kind of
    :data:`MALFORMED_KINDS`.  Meant for tests that must tell them apart.
    """
    for tag, line in Simulation(settings, collect_truth=False).run():
        yield TAG_NAMES[tag], line


def iter_cohort(settings: SimulationSettings) -> Iterator[bytes]:
    """Each JSON line of the cohort (bytes, no newline), in arrival order."""
    for _, line in Simulation(settings, collect_truth=False).run():
        yield line


def write_cohort(settings: SimulationSettings, out: BinaryIO) -> SimulationSummary:
    """Write the cohort as JSON Lines to a binary stream; return what was written.

    ``lines`` of the summary counts every line written (the file's line count);
    ``events`` only the distinct well-formed events among them.
    """
    simulation = Simulation(settings, collect_truth=False)
    batch: list[bytes] = []
    lines = 0
    for _, line in simulation.run():
        batch.append(line)
        if len(batch) == 4096:
            batch.append(b"")
            out.write(b"\n".join(batch))
            lines += 4096
            batch.clear()
    if batch:
        lines += len(batch)
        batch.append(b"")
        out.write(b"\n".join(batch))
    return simulation.summary(lines)


def simulate_cohort(out: BinaryIO, settings: SimulationSettings | None = None) -> SimulationSummary:
    """Entry point for the command line: :func:`write_cohort` with default settings."""
    return write_cohort(settings if settings is not None else SimulationSettings(), out)


def line_truth(settings: SimulationSettings) -> list[LineTruth]:
    """Each line's true linear predictor, for tests: needs ``known_effects=True`` (runs the
    whole simulation, the same draws as :func:`write_cohort`)."""
    if not settings.known_effects:
        raise ValueError("line_truth needs SimulationSettings(known_effects=True)")
    simulation = Simulation(settings, collect_truth=True)
    for _ in simulation.run():
        pass
    assert simulation.line_truths is not None
    return sorted(simulation.line_truths, key=lambda t: (t.patient_id, t.line_number))


def truth(settings: SimulationSettings) -> list[PatientTruth]:
    """The drawn ground truth per patient, sorted by patient id (runs the whole simulation)."""
    simulation = Simulation(settings, collect_truth=True)
    for _ in simulation.run():
        pass
    assert simulation.truths is not None
    return sorted(simulation.truths, key=lambda t: t.patient_id)
