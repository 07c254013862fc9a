"""One patient's life in the study, as named steps.

A :class:`Journey` is drawn in four steps when the merge reaches the patient's
inclusion (:mod:`.inclusion`: who the patient is, how long they can be followed, the
first line the oncologist will choose, the baseline work-up), then lived in phases by
:meth:`Journey.days`, a generator of the next day it has facts for.  A phase ends at
a line start, a progression or toxicity, death, or the end of follow-up; before that
end, every tumour assessment, bone scan and planned item falls due in day order.  The
line steps (start, changes within a line, stop) are in :mod:`.lines`.

Every draw comes from the run's one random stream, in a fixed order: the steps are
the original generator cut at its seams, so a seed gives byte-identical output.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable
from datetime import date
from itertools import count
from typing import Literal

from mbcjourney.simulate.clinical import Clinic
from mbcjourney.simulate.inclusion import (
    choose_first_line,
    draw_follow_up,
    draw_patient,
    plan_work_up,
)
from mbcjourney.simulate.lines import modify_line, start_line, stop_line
from mbcjourney.simulate.results import PatientTruth
from mbcjourney.simulate.sources import AgendaItem, JourneyDays, Patient, Payload
from mbcjourney.simulate.tables import (
    A_BIOPSY,
    A_BONE0,
    A_CRISIS,
    A_IHC,
    A_IMAGING0,
    A_INCLUDE,
    A_ISH,
    A_PROGRESSION_BIOPSY,
    CONSENT_VERSIONS,
    CRISIS_CRITERIA,
    END_DEATH,
    END_HORIZON,
    END_START,
    INF,
    LABS,
)

EndReason = Literal["death", "lost", "withdrawn", "cutoff"]


class Journey:
    """The state one patient's steps share, and the steps themselves."""

    __slots__ = (
        "agenda", "assessments", "base_sod", "best", "bone_every", "concordant", "conversion",
        "crisis", "cur", "de_novo", "death_day", "drugs_now", "end", "end_code", "end_reason",
        "er_low", "first_start", "group", "horizon", "ihc0", "inc", "inc_date", "interval",
        "ish_day", "ish_result", "jit", "key1", "last_assessment1", "line_no", "line_ref",
        "misspelt1", "nadir", "next_bone", "next_img", "next_key", "on_line", "p", "pending",
        "pfs_drawn", "progression1", "r", "regimen1", "s1", "s2", "scope", "sim", "sites0",
        "specimen0", "specimen_site", "st", "stop", "ticket",
    )

    # drawn at inclusion (:mod:`.inclusion`)
    group: int
    sites0: list[str]
    crisis: bool
    er_low: bool
    de_novo: bool
    horizon: int
    end_reason: EndReason
    stop: int
    first_start: int
    concordant: bool
    next_key: str
    specimen_site: str
    specimen0: str
    ihc0: Payload
    ish_result: Payload
    pending: bool
    ish_day: int

    def __init__(self, sim: Clinic, idx: int, inc: int) -> None:
        self.sim = sim
        self.st = sim.st
        self.r = sim.r
        self.p = Patient(f"P-{idx + 1:06d}")
        self.inc = inc
        self.inc_date = date.fromordinal(inc)
        self.jit = self.st.imaging_jitter_days
        self.agenda: list[AgendaItem] = []
        self.ticket: Callable[[], int] = count().__next__
        draw_patient(self)
        draw_follow_up(self)
        choose_first_line(self)
        plan_work_up(self)
        # the line in course (none yet) and its tumour assessments
        self.cur = 0
        self.line_no = 0
        self.on_line = False
        self.line_ref = ""
        self.drugs_now: list[str] = []
        self.interval = 0
        self.next_img = self.next_bone = INF
        self.bone_every = 7 * self.st.bone_scan_interval_weeks
        self.assessments = 0
        self.best = "SD"
        self.base_sod = self.nadir = 0
        # ground truth of the first line (-1: did not happen)
        self.s1 = self.s2 = self.progression1 = self.last_assessment1 = -1
        self.death_day = self.pfs_drawn = -1
        self.key1: str | None = None
        self.regimen1: str | None = None
        self.misspelt1 = self.conversion = False
        self.scope: Literal["stop_followup", "erase"] | None = None
        # the end of the current phase
        self.end, self.end_code = (
            (self.first_start, END_START) if self.first_start < self.stop
            else (self.stop, END_HORIZON)
        )

    # -- lived in phases ------------------------------------------------------------------

    def days(self) -> JourneyDays:
        """Each next day this journey has facts for, sending them as it goes."""
        self.cur = self.agenda[0][0]
        yield self.cur
        while True:
            yield from self._scheduled()
            if self.end_code == END_HORIZON:
                yield from self._end_follow_up()
                break
            if self.end > self.cur:
                self.cur = self.end
                yield self.end
            if self.end_code == END_DEATH:
                self._die()
                break
            if self.end_code == END_START:
                start_line(self)
            else:
                stop_line(self)
        self._record_truth()

    def _scheduled(self) -> JourneyDays:
        """Every assessment, bone scan and planned item due before the end of this phase."""
        agenda = self.agenda
        while True:
            d, c = self.next_img, 0
            if self.next_bone < d:
                d, c = self.next_bone, 1
            if agenda and agenda[0][0] < d:
                d, c = agenda[0][0], 2
            if d >= self.end:
                return
            if d > self.cur:
                self.cur = d
                yield d
            if c == 0:
                self._tumour_assessment(d)
            elif c == 1:
                self._bone_scan(d)
            else:
                self._agenda_item(d)

    def _tumour_assessment(self, d: int) -> None:
        """An imaging visit on the line's cadence (or missed), with its exam and CA 15-3."""
        st = self.st
        r = self.r
        sim = self.sim
        p = self.p
        jit = self.jit
        self.next_img = d + self.interval + int(r() * (2 * jit + 1)) - jit
        if r() < st.missed_imaging_share:
            sim.n["missed_imaging"] += 1
            return
        self.assessments += 1
        assessments = self.assessments
        sod: int | None = None
        if r() < st.ne_response_share:
            response = "NE"
        else:
            best = self.best
            if best == "SD":
                response = "SD"
            elif best == "PR":
                response = "PR" if assessments >= 2 or r() < 0.6 else "SD"
            else:
                response = (
                    "CR" if assessments >= 3 or (assessments == 2 and r() < 0.6) else "PR"
                )
            if response == "CR":
                sod = 0
            elif response == "PR":
                sod = round(self.base_sod * (0.35 + r() * 0.34))
            else:
                sod = round(self.base_sod * (0.82 + r() * 0.3))
            self.nadir = min(self.nadir, sod)
            if r() >= st.sum_of_diameters_share:
                sod = None
        sim.emit(p, d, "imaging.performed", "radiology-ris", f"RIS-{sim.bits(36):09X}",
                 sim.imaging(sim.pick_modality(r()), response, sod,
                             False if r() < st.new_lesions_field_share else None),
                 True)
        if self.line_no == 1:
            self.last_assessment1 = d
        if r() < st.exam_at_imaging_share:
            sim.exam(p, d, self.line_no)
        if r() < st.ca153_at_imaging_share:
            sim.lab(p, d, len(LABS) - 1)

    def _bone_scan(self, d: int) -> None:
        """A bone scan (patients with bone metastases), the next one an interval later."""
        sim = self.sim
        jit = self.jit
        self.next_bone = d + self.bone_every + int(self.r() * (2 * jit + 1)) - jit
        sim.emit(self.p, d, "imaging.performed", "radiology-ris", f"RIS-{sim.bits(36):09X}",
                 sim.imaging("bone_scan", None, None, None))

    def _agenda_item(self, d: int) -> None:
        """The next one-off item planned for this day."""
        sim = self.sim
        p = self.p
        _, _, code, ref, stopped, added = heapq.heappop(self.agenda)
        if code == A_IHC:
            sim.emit(p, d, "ihc.recorded", "pathology-lis", self.specimen0, self.ihc0, True)
        elif code == A_BIOPSY:
            site = (self.specimen_site if self.specimen_site != "metastasis"
                    else sim.biopsy_site(p))
            sim.biopsy(p, d, "baseline", self.specimen0, site)
        elif code == A_ISH:
            sim.emit(p, d, "ihc.recorded", "pathology-lis", self.specimen0, self.ish_result)
        elif code == A_IMAGING0:
            self._baseline_imaging(d)
        elif code == A_BONE0:
            self._bone_scan(d)
        elif code == A_INCLUDE:
            self._include(d)
        elif code == A_CRISIS:
            self._assess_crisis(d)
        elif code == A_PROGRESSION_BIOPSY:
            self._progression_biopsy(d)
        else:
            modify_line(self, d, ref, stopped, added)

    def _baseline_imaging(self, d: int) -> None:
        r = self.r
        sim = self.sim
        modality = sim.pick_modality(r())
        sod = 20 + int(r() * 130) if r() < self.st.sum_of_diameters_share else None
        sim.emit(self.p, d, "imaging.performed", "radiology-ris", f"RIS-{sim.bits(36):09X}",
                 sim.imaging(modality, None, sod, None))

    def _include(self, d: int) -> None:
        st = self.st
        r = self.r
        sim = self.sim
        p = self.p
        version = next(v for since, v in CONSENT_VERSIONS if self.inc_date >= since)
        sim.emit(p, d, "patient.included", "research-crf", f"CRF-{p.pid}-INC", {
            "birth_year": p.birth_year,
            "sex": "male" if r() < st.male_share else "female",
            "centre": sim.pick_centre(r()),
            "consent_version": version,
            "presentation": "de_novo" if self.de_novo else "recurrent",
            "metastatic_sites": self.sites0,
        })

    def _assess_crisis(self, d: int) -> None:
        r = self.r
        if self.crisis:
            n_criteria = len(CRISIS_CRITERIA)
            first = int(r() * n_criteria)
            criteria = [CRISIS_CRITERIA[first]]
            if r() < 0.3:
                criteria.append(CRISIS_CRITERIA[(first + 1) % n_criteria])
            payload: Payload = {"present": True, "criteria": criteria}
        else:
            payload = {"present": False}
        self.sim.emit(self.p, d, "visceral_crisis.assessed", "research-crf",
                      f"CRF-{self.p.pid}-VC", payload)

    def _progression_biopsy(self, d: int) -> None:
        """A biopsy after a progression, with an IHC that may show receptor conversion."""
        st = self.st
        r = self.r
        sim = self.sim
        p = self.p
        specimen = sim.specimen_id(d)
        sim.biopsy(p, d, "progression", specimen, sim.biopsy_site(p))
        if r() < st.ihc_on_biopsy_share:
            er = p.er != (r() < st.er_conversion_rate)
            pr = p.pr != (r() < st.pr_conversion_rate)
            her2 = p.her2 != (r() < st.her2_conversion_rate)
            sim.emit(p, d, "ihc.recorded", "pathology-lis", specimen,
                     sim.ihc(p, specimen, "metastasis", er, pr, her2, False), True)
            if (er or pr) != (p.er or p.pr) or her2 != p.her2:
                self.conversion = True

    # -- the end --------------------------------------------------------------------------

    def _end_follow_up(self) -> JourneyDays:
        """Follow-up ends: at the data cut-off (nothing sent), a loss or a withdrawal."""
        if self.end_reason == "cutoff":
            return
        sim = self.sim
        p = self.p
        end = self.end
        self.cur = end
        yield end
        if self.end_reason == "lost":
            sim.n["lost"] += 1
            sim.emit(p, end, "followup.lost", "research-crf", f"CRF-{p.pid}-LOST", {})
        else:
            sim.n["withdrawn"] += 1
            self.scope = "erase" if self.r() < self.st.erase_share else "stop_followup"
            sim.emit(p, end, "consent.withdrawn", "research-crf", f"CRF-{p.pid}-WD",
                     {"scope": self.scope})

    def _die(self) -> None:
        sim = self.sim
        p = self.p
        end = self.end
        if self.on_line and self.r() < self.st.line_end_on_death_share:
            sim.emit(p, end, "line.ended", "oncology-prescribing", self.line_ref,
                     {"line_ref": self.line_ref, "reason": "death"})
        sim.emit(p, end, "death.recorded", "research-crf", f"CRF-{p.pid}-DEATH",
                 {"cause": sim.pick_cause(self.r())})
        sim.n["deaths"] += 1
        self.death_day = self.horizon = end
        self.end_reason = "death"

    def _record_truth(self) -> None:
        """What was drawn, as the engine should find it (DESIGN section 8 PFS rules)."""
        truths = self.sim.truths
        if truths is None:
            return
        s1 = self.s1
        pfs_days: int | None = None
        pfs_event: bool | None = None
        if s1 >= 0:
            if self.progression1 >= 0:
                pfs_days, pfs_event = self.progression1 - s1, True
            elif self.death_day >= 0 and self.s2 < 0:
                pfs_days, pfs_event = self.death_day - s1, True
            else:
                pfs_days = self.last_assessment1 - s1 if self.last_assessment1 >= 0 else 0
                pfs_event = False
        truths.append(PatientTruth(
            patient_id=self.p.pid,
            inclusion_date=self.inc_date,
            group=self.group,
            visceral_crisis=self.crisis,
            her2_pending=self.pending and not self.ish_day < self.stop,
            first_line_regimen_key=self.key1,
            first_line_regimen=self.regimen1,
            first_line_concordant=self.concordant if s1 >= 0 else None,
            first_line_start=date.fromordinal(s1) if s1 >= 0 else None,
            first_line_misspelt=self.misspelt1,
            pfs_drawn_days=self.pfs_drawn if s1 >= 0 else None,
            pfs_days=pfs_days,
            pfs_event=pfs_event,
            lines=self.line_no,
            receptor_conversion=self.conversion,
            end_date=date.fromordinal(self.horizon),
            end_reason=self.end_reason,
            withdrawal_scope=self.scope,
        ))
