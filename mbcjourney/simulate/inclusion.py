"""The draws made at inclusion: who the patient is, how long they can be
followed, the first line the oncologist will choose, and the baseline work-up.

Each step fills in the :class:`.journey.Journey` it is given, in this order (the order
of the draws is part of what a seed produces).
"""

from __future__ import annotations

import heapq
from typing import TYPE_CHECKING

from mbcjourney.simulate.tables import (
    A_BIOPSY,
    A_BONE0,
    A_CRISIS,
    A_IHC,
    A_IMAGING0,
    A_INCLUDE,
    A_ISH,
    INF,
    LOOKBACK_DAYS,
    SITES,
    VISCERAL,
)

if TYPE_CHECKING:
    from mbcjourney.simulate.journey import EndReason, Journey


def draw_patient(j: Journey) -> None:
    """Who the patient is: age, group, metastatic sites, receptors, markers, ECOG."""
    st = j.st
    r = j.r
    sim = j.sim
    p = j.p
    age = min(max(round(sim.rng.gauss(st.age_mean, st.age_sd)), st.age_min), st.age_max)
    p.birth_year = j.inc_date.year - age
    group = sim.pick_group(r())
    p.group = j.group = group
    site_shares = st.site_shares
    sites = [site for site in SITES if r() < site_shares.get(site, 0.0)]
    crisis = group == 1 and r() < st.visceral_crisis_share
    if crisis and VISCERAL.isdisjoint(sites):
        sites = [site for site in SITES if site in sites or site == "liver"]
    if not sites:
        sites = ["bone" if group == 1 else "lymph_node"]
    p.sites = j.sites0 = sites
    j.crisis = crisis
    p.bone = "bone" in sites
    if group == 1:
        p.er, p.pr = True, r() < st.pr_positive_share_hr_positive
    elif group == 2:
        p.er = r() < st.hr_positive_share_group2
        p.pr = p.er and r() < st.pr_positive_share_hr_positive
        p.her2 = True
    j.er_low = group == 1 and r() < st.er_low_share_group1
    p.pik3ca = group != 3 and r() < st.pik3ca_mutation_share
    u = r()
    if group == 3 and u < st.brca1_share_group3 + st.brca2_share_group3:
        p.brca = "BRCA1" if u < st.brca1_share_group3 else "BRCA2"
    u = r()
    p.ecog = 0 if u < 0.5 else 1 if u < 0.9 else 2
    p.weight = min(130.0, max(40.0, sim.rng.gauss(68.0, 13.0)))
    j.de_novo = r() < st.de_novo_share

def draw_follow_up(j: Journey) -> None:
    """How long they can be followed: facts occur on days before ``stop``."""
    st = j.st
    expo = j.sim.expo
    inc = j.inc
    end_reason: EndReason = "cutoff"
    horizon = j.sim.cutoff
    if st.loss_to_followup_per_year > 0:
        lost = inc + 1 + int(expo(st.loss_to_followup_per_year / 365.25))
        if lost < horizon:
            horizon, end_reason = lost, "lost"
    if st.consent_withdrawal_per_year > 0:
        withdrawn = inc + 1 + int(expo(st.consent_withdrawal_per_year / 365.25))
        if withdrawn < horizon:
            horizon, end_reason = withdrawn, "withdrawn"
    j.horizon = horizon
    j.end_reason = end_reason
    j.stop = horizon + 1 if end_reason == "cutoff" else horizon

def choose_first_line(j: Journey) -> None:
    """The first line the oncologist will choose, and when it will start."""
    st = j.st
    r = j.r
    sim = j.sim
    start_low, start_high = st.treatment_start_days
    j.first_start = j.inc + start_low + int(r() * (start_high - start_low + 1))
    stratum = "group1_crisis" if j.crisis else f"group{j.group}"
    j.concordant = r() >= st.non_concordant_share
    j.next_key = (sim.first_line if j.concordant else sim.non_concordant)[stratum](r())

def plan_work_up(j: Journey) -> None:
    """The baseline work-up, before or at inclusion: biopsy, IHC, imaging, assessments."""
    st = j.st
    r = j.r
    sim = j.sim
    p = j.p
    inc = j.inc
    agenda = j.agenda
    push = heapq.heappush
    ticket = j.ticket
    if j.de_novo:
        specimen_site = "breast" if r() < st.specimen_breast_share_de_novo else "metastasis"
    else:
        specimen_site = (
            "local_recurrence" if r() < st.specimen_local_recurrence_share else "metastasis"
        )
    biopsy_day = inc - int(r() * 22)
    specimen0 = sim.specimen_id(biopsy_day)
    ihc0 = sim.ihc(p, specimen0, specimen_site, p.er, p.pr, p.her2, j.er_low)
    j.ish_result = ihc0
    pending = ihc0["her2_ihc"] == "2+" and r() < st.her2_pending_share
    ish_day = INF
    if pending:
        ihc0 = {k: v for k, v in ihc0.items()
                if k not in ("her2_ish_ratio", "her2_copy_number")}
        ihc0["her2_ish"] = "not_done" if r() < 0.8 else "equivocal"
        if r() < st.her2_pending_resolved_share:
            ish_day = min(biopsy_day + 5 + int(r() * 17), j.first_start)
            push(agenda, (ish_day, ticket(), A_ISH, "", (), ()))
    if r() < st.baseline_biopsy_share:
        push(agenda, (biopsy_day, ticket(), A_BIOPSY, "", (), ()))
    push(agenda, (biopsy_day, ticket(), A_IHC, "", (), ()))
    imaging0_day = inc - int(r() * (LOOKBACK_DAYS + 1))
    push(agenda, (imaging0_day, ticket(), A_IMAGING0, "", (), ()))
    if p.bone:
        push(agenda, (imaging0_day, ticket(), A_BONE0, "", (), ()))
    push(agenda, (inc, ticket(), A_INCLUDE, "", (), ()))
    if j.group == 1 and (j.crisis or r() < st.visceral_crisis_assessed_share):
        crisis_day = inc + int(r() * (min(7, j.first_start - inc) + 1))
        push(agenda, (crisis_day, ticket(), A_CRISIS, "", (), ()))
    j.specimen_site = specimen_site
    j.specimen0 = specimen0
    j.ihc0 = ihc0
    j.pending = pending
    j.ish_day = ish_day
