"""The line-of-therapy steps of a journey: start, changes within a line, stop.

Each step reads and updates the :class:`.journey.Journey` it is given; the order of
its random draws is part of what a seed produces.
"""

from __future__ import annotations

import heapq
import math
from typing import TYPE_CHECKING

from mbcjourney.simulate.regimens import REGIMENS
from mbcjourney.simulate.results import LineTruth
from mbcjourney.simulate.sources import Payload
from mbcjourney.simulate.tables import (
    A_MOD_ADD,
    A_MOD_MAINTENANCE,
    A_MOD_STOP,
    A_MOD_SWAP,
    A_PROGRESSION_BIOPSY,
    CYTOTOXIC,
    END_DEATH,
    END_HORIZON,
    END_PROGRESSION,
    END_START,
    END_TOXICITY,
    ENDOCRINE_DRUGS,
    INF,
    LABS,
    SITES,
    TAXANES,
)

if TYPE_CHECKING:
    from mbcjourney.simulate.journey import Journey


def start_line(j: Journey) -> None:
    """A line starts: its prescription, the visit's exam and labs, what will end it."""
    st = j.st
    r = j.r
    sim = j.sim
    p = j.p
    j.line_no += 1
    line_no = j.line_no
    start = j.end
    key = j.next_key
    alternatives = REGIMENS[key].alternatives
    generic = alternatives[int(r() * len(alternatives))]
    if st.known_effects:  # the previous line as it ended (maintenance endocrine included)
        p.endocrine_before = p.endocrine_before or not ENDOCRINE_DRUGS.isdisjoint(j.drugs_now)
    j.drugs_now = list(generic)
    j.interval = sim.imaging_interval(j.group, not CYTOTOXIC.isdisjoint(generic))
    line_ref = j.line_ref = f"RX-{sim.bits(40):010X}"
    misspelt_before = sim.misspelt
    started: Payload = {
        "line_ref": line_ref,
        "drugs": [sim.drug_name(g) for g in generic],
    }
    if r() < st.declared_line_number_share:
        declared = line_no
        if r() < st.declared_line_number_wrong_share:
            declared = line_no + 1 if line_no == 1 or r() < 0.5 else line_no - 1
        started["declared_line_number"] = declared
    if r() < st.intent_share:
        started["intent"] = "palliative"
    sim.emit(p, start, "line.started", "oncology-prescribing", line_ref, started, True)
    ecog = sim.exam(p, start, line_no)
    for which in range(len(LABS)):
        if r() < st.labs_at_line_start_share:
            sim.lab(p, start, which)
    j.on_line = True
    lp = linear_predictor(j, ecog, start) if st.known_effects else 0.0
    pfs = _draw_line_end(j, key, start, lp)
    if st.known_effects:
        p.endocrine_before = p.endocrine_before or not ENDOCRINE_DRUGS.isdisjoint(generic)
        if sim.line_truths is not None:
            sim.line_truths.append(LineTruth(p.pid, line_no, sim.days[start - sim.base], lp))
    jit = j.jit
    j.next_img = start + j.interval + int(r() * (2 * jit + 1)) - jit
    j.assessments = 0
    j.best = (sim.pick_best1 if line_no == 1 else sim.pick_best_later)(r())
    j.base_sod = j.nadir = 20 + int(r() * 130)
    _plan_changes(j, key, generic, start, line_ref)
    if line_no == 1:
        j.s1, j.key1, j.pfs_drawn = start, key, pfs
        j.regimen1 = "+".join(sorted(generic))
        j.misspelt1 = sim.misspelt != misspelt_before
    elif line_no == 2:
        j.s2 = start


def linear_predictor(j: Journey, ecog: int, start: int) -> float:
    """The line's true log relative hazard of progression (tables.PFS_HAZARD_RATIOS):
    what the patient is at the line start, as the engine's features describe it."""
    p, hr = j.p, j.st.pfs_hazard_ratios
    age = int(j.sim.days[start - j.sim.base][:4]) - p.birth_year
    ki67 = max(p.ki67, 0)
    return (ecog * math.log(hr["ecog"])
            + ("liver" in p.sites) * math.log(hr["liver"])
            + ("brain" in p.sites) * math.log(hr["brain"])
            + p.endocrine_before * math.log(hr["endocrine_resistance"])
            + ki67 / 10 * math.log(hr["ki67_per_10"])
            + (age - 60) / 10 * math.log(hr["age_per_10"]))


def _draw_line_end(j: Journey, key: str, start: int, lp: float = 0.0) -> int:
    """What will end the line started today (progression, death, toxicity, horizon).

    ``lp`` multiplies the regimen's progression hazard by ``exp(lp)``.  Returns the
    drawn progression-free time in days.
    """
    st = j.st
    r = j.r
    sim = j.sim
    expo = sim.expo
    line_no = j.line_no
    rate = math.log(2) / sim.median_days(key, line_no)
    pfs = max(1, round(expo(rate * math.exp(lp) if lp else rate)))
    rates = st.death_rate_per_year
    rate = rates[min(line_no, len(rates)) - 1] * st.death_hazard_ratio[j.group - 1]
    death = start + 1 + int(expo(rate / 365.25)) if rate > 0 else INF
    toxicity = INF
    if pfs > 15 and r() < st.toxicity_stop_share:
        toxicity = start + 14 + int(r() * (pfs - 15))
    end, end_code = start + pfs, END_PROGRESSION
    if death < end:
        end, end_code = death, END_DEATH
    if toxicity < end:
        end, end_code = toxicity, END_TOXICITY
    if end >= j.stop:
        end, end_code = j.stop, END_HORIZON
    j.end, j.end_code = end, end_code
    return pfs


def _plan_changes(j: Journey, key: str, generic: tuple[str, ...], start: int,
                  line_ref: str) -> None:
    """Changes within the line, planned now, dropped if the line ends first."""
    st = j.st
    r = j.r
    p = j.p
    agenda = j.agenda
    push = heapq.heappush
    ticket = j.ticket
    group = j.group
    taxane = next((g for g in generic if g in TAXANES), None)
    cycles = st.taxane_cycles_days + int(r() * 29) - 14
    if (group == 2 and taxane is not None and "trastuzumab" in generic
            and r() < st.taxane_stop_share_group2):
        push(agenda, (start + cycles, ticket(), A_MOD_STOP, line_ref, (taxane,), ()))
    if (group == 1 and key == "combination_chemotherapy"
            and r() < st.maintenance_endocrine_share):
        chemo = tuple(g for g in generic if g in CYTOTOXIC)
        push(agenda, (start + cycles, ticket(), A_MOD_MAINTENANCE, line_ref, chemo,
                      ("letrozole",)))
    if key == "paclitaxel+bevacizumab" and r() < st.paclitaxel_stop_share_bevacizumab:
        push(agenda, (start + cycles + 42, ticket(), A_MOD_STOP, line_ref, ("paclitaxel",), ()))
    if p.bone and not p.bone_agent and r() < st.bone_agent_share:
        p.bone_agent = True
        agent = "denosumab" if r() < 0.6 else "zoledronic acid"
        push(agenda, (start + int(r() * 61), ticket(), A_MOD_ADD, line_ref, (), (agent,)))
    if taxane is not None and r() < st.taxane_swap_share:
        other = ("paclitaxel" if taxane != "paclitaxel"
                 else "nab-paclitaxel" if r() < 0.5 else "docetaxel")
        push(agenda, (start + 21 + int(r() * 100), ticket(), A_MOD_SWAP, line_ref, (taxane,),
                      (other,)))


def modify_line(j: Journey, d: int, ref: str, stopped: tuple[str, ...],
                added: tuple[str, ...]) -> None:
    """A planned change, sent if its line is still the one in course."""
    if not (j.on_line and ref == j.line_ref and set(stopped) <= set(j.drugs_now)):
        return
    sim = j.sim
    drugs_now = [g for g in j.drugs_now if g not in stopped]
    drugs_now.extend(g for g in added if g not in drugs_now)
    j.drugs_now = drugs_now
    j.interval = sim.imaging_interval(j.group, not CYTOTOXIC.isdisjoint(drugs_now))
    sim.emit(j.p, d, "line.modified", "oncology-prescribing", j.line_ref, {
        "line_ref": j.line_ref,
        "drugs_added": [sim.drug_name(g) for g in added],
        "drugs_stopped": [sim.drug_name(g) for g in stopped],
    })


def stop_line(j: Journey) -> None:
    """The line stops (progression, toxicity or the patient's choice); what comes next."""
    st = j.st
    r = j.r
    sim = j.sim
    stopped_at = j.end
    if j.end_code == END_PROGRESSION:
        supportive = _progress(j, stopped_at)
    else:  # toxicity, or the patient's choice
        reason = "patient_choice" if r() < st.patient_choice_share else "toxicity"
        sim.emit(j.p, stopped_at, "line.ended", "oncology-prescribing", j.line_ref,
                 {"line_ref": j.line_ref, "reason": reason})
        supportive = j.line_no >= st.max_lines
    j.on_line = False
    j.next_img = INF
    if supportive:
        j.next_bone = INF
        j.end, j.end_code = sim.supportive_care(stopped_at, j.stop)
        return
    gap_low, gap_high = st.next_line_gap_days
    gap = (0 if j.end_code == END_PROGRESSION and r() < st.same_day_next_line_share
           else gap_low + int(r() * (gap_high - gap_low + 1)))
    j.next_key = sim.later_regimen(j.p, j.line_no + 1)
    next_start = stopped_at + gap
    j.end, j.end_code = (next_start, END_START) if next_start < j.stop else (j.stop, END_HORIZON)


def _progress(j: Journey, stopped_at: int) -> bool:
    """A progression: new sites, PD imaging, the CRF form, a biopsy planned, the line ended.

    Returns whether treatment stops for good (best supportive care).
    """
    st = j.st
    r = j.r
    sim = j.sim
    p = j.p
    line_no = j.line_no
    new_sites: list[str] = []
    if r() < st.new_sites_at_progression_share:
        candidates = [x for x in SITES if x not in p.sites and x != "other"]
        if candidates:
            new_sites.append(candidates.pop(int(r() * len(candidates))))
            if candidates and r() < 0.3:
                new_sites.append(candidates.pop(int(r() * len(candidates))))
            new_sites = [x for x in SITES if x in new_sites]
            p.sites = [x for x in SITES if x in p.sites or x in new_sites]
            if "bone" in new_sites:
                p.bone = True
                j.next_bone = stopped_at + j.bone_every
    pd_imaging = r() < st.pd_imaging_share
    if pd_imaging:
        sod = round(max(j.nadir, 10) * (1.22 + r() * 0.4))
        sim.emit(p, stopped_at, "imaging.performed", "radiology-ris",
                 f"RIS-{sim.bits(36):09X}",
                 sim.imaging(sim.pick_modality(r()), "PD",
                             sod if r() < st.sum_of_diameters_share else None,
                             True if new_sites else
                             (r() < 0.3) if r() < st.new_lesions_field_share else None),
                 True)
        if line_no == 1:
            j.last_assessment1 = stopped_at
    if not pd_imaging or r() < st.progression_documented_share:
        basis = ("radiological" if pd_imaging or r() < 0.5
                 else "clinical" if r() < 0.7 else "biological")
        sim.emit(p, stopped_at, "progression.documented", "research-crf",
                 f"CRF-{p.pid}-PD{line_no}", {"basis": basis, "new_sites": new_sites})
    if line_no == 1:
        j.progression1 = stopped_at
    if r() >= st.missing_biopsy_share:
        biopsy = stopped_at + int(r() * (st.biopsy_delay_max_days + 1))
        heapq.heappush(j.agenda, (biopsy, j.ticket(), A_PROGRESSION_BIOPSY, "", (), ()))
    stops = st.stop_treatment_after_line
    supportive = line_no >= st.max_lines or r() < stops[min(line_no, len(stops)) - 1]
    if supportive or r() >= st.missing_line_end_share:
        sim.emit(p, stopped_at, "line.ended", "oncology-prescribing", j.line_ref,
                 {"line_ref": j.line_ref, "reason": "progression"})
    return supportive
