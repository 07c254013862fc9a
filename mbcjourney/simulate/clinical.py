"""Clinical content as each source system words it: IHC reports, imaging, labs, drugs...

:class:`Clinic` adds to the sending of :class:`.sources.Sources` the facts a journey
step asks for, each consistent with what the patient is (receptor status, group,
markers) and worded as its system sends it (brand names, varied case, optional fields).
"""

from __future__ import annotations

import math

from mbcjourney.simulate.regimens import REGIMENS
from mbcjourney.simulate.sources import Patient, Payload, Sources
from mbcjourney.simulate.tables import (
    BRANDS,
    DAYS_PER_MONTH,
    END_DEATH,
    END_HORIZON,
    LABS,
    REGIONS,
    TARGETED,
    UNKNOWN_DRUGS,
)


class Clinic(Sources):
    """The sources of one run, with the clinical facts they send (see the module docstring)."""

    def drug_name(self, generic: str) -> str:
        """A drug as a prescribing system sends it: generic or brand, in varied case."""
        st = self.st
        r = self.r
        u = r()
        if u < st.unknown_drug_share:
            self.misspelt += 1
            if r() < 0.3:
                return UNKNOWN_DRUGS[int(r() * len(UNKNOWN_DRUGS))]
            cut = 1 + int(r() * (len(generic) - 2))
            return generic[:cut] + generic[cut] + generic[cut:]  # a doubled letter
        brands = BRANDS.get(generic)
        if brands is not None and u < st.unknown_drug_share + st.brand_name_share:
            name = brands[int(r() * len(brands))]
            v = r()
            return name if v < 0.6 else name.upper() if v < 0.85 else name.lower()
        v = r()
        return generic if v < 0.8 else generic.capitalize() if v < 0.95 else generic.upper()

    def percent_high(self) -> int:
        r = self.r
        return 10 * (5 + int(r() * 6)) if r() < 0.8 else 11 + int(r() * 39)

    def ihc(self, p: Patient, specimen: str, site: str, er: bool, pr: bool, her2: bool,
             er_low: bool) -> Payload:
        """An IHC report consistent with the receptor status (ASCO/CAP 2018)."""
        st = self.st
        r = self.r
        if her2:
            if r() < st.her2_2plus_share_group2:
                ihc, ish = "2+", "amplified"
            else:
                ihc, ish = "3+", ("amplified" if r() < 0.3 else "not_done")
        else:
            ihc = (self.pick_her2_hr if er or pr else self.pick_her2_tn)(r())
            ish = "not_amplified" if ihc == "2+" else "not_done"
        payload: Payload = {
            "specimen_id": specimen,
            "specimen_site": site,
            "er_percent": (1 + int(r() * 10) if er_low else self.percent_high()) if er else 0,
            "pr_percent": 5 * (1 + int(r() * 20)) if pr else 0,
            "her2_ihc": ihc,
            "her2_ish": ish,
        }
        if ish != "not_done" and r() < st.ish_numbers_share:
            ratio, copies = self.ish_numbers(ihc, ish == "amplified")
            payload["her2_ish_ratio"] = ratio
            payload["her2_copy_number"] = copies
        if r() < st.ki67_share:
            low, span = ((5, 30), (15, 45), (30, 60))[p.group - 1]
            if not st.known_effects:
                payload["ki67_percent"] = low + int(r() * span)
            else:  # the tumour's own Ki-67, in every report (drawn at the first)
                if p.ki67 < 0:
                    p.ki67 = low + int(r() * span)
                payload["ki67_percent"] = p.ki67
        return payload

    def ish_numbers(self, ihc: str, amplified: bool) -> tuple[float, float]:
        """HER2/CEP17 ratio and mean HER2 copies, in the ASCO/CAP group that gives the result."""
        r = self.r
        u = r()
        if amplified:
            if ihc == "2+" and u < 0.15:  # group 3: ratio < 2.0, copies >= 6 -> amplified at 2+
                ratio, copies = 1.30 + r() * 0.55, 6.2 + r() * 2.8
            else:  # group 1
                ratio, copies = 2.2 + r() * 3.8, 4.5 + r() * 10.5
        elif ihc == "2+" and u < 0.10:  # group 4: ratio < 2.0, 4 <= copies < 6
            ratio, copies = 1.2 + r() * 0.65, 4.2 + r() * 1.6
        elif ihc == "2+" and u < 0.15:  # group 2: ratio >= 2.0, copies < 4
            ratio, copies = 2.1 + r() * 0.9, 2.5 + r() * 1.2
        else:  # group 5
            ratio, copies = 1.0 + r() * 0.8, 1.5 + r() * 2.2
        return round(ratio, 2), round(copies, 1)

    def imaging(self, modality: str, response: str | None, sod: int | None,
                 new_lesions: bool | None) -> Payload:
        payload: Payload = {"modality": modality, "regions": REGIONS[modality],
                             "recist_response": response}
        if sod is not None:
            payload["sum_of_diameters_mm"] = sod
        if new_lesions is not None:
            payload["new_lesions"] = new_lesions
        return payload

    def exam(self, p: Patient, day: int, line_no: int) -> int:
        """Send the visit's ECOG (and usually weight); returns the ECOG sent."""
        r = self.r
        ecog = min(4, p.ecog + max(0, line_no - 1) // 2 + (1 if r() < 0.1 else 0))
        payload: Payload = {"ecog": ecog}
        if r() < 0.9:
            payload["weight_kg"] = round(p.weight * (1 - 0.015 * line_no) + self.rng.gauss(0, 1), 1)
        self.emit(p, day, "clinical_exam.recorded", "research-crf", f"CRF-{p.pid}-EXAM",
                   payload, True)
        return ecog

    def lab(self, p: Patient, day: int, which: int) -> None:
        r = self.r
        test, loinc, unit, mean, sd, decimals = LABS[which]
        if test == "CA 15-3":
            value = round(mean * math.exp(self.rng.gauss(0, 0.8)), decimals)
        else:
            value = round(max(mean * 0.2, self.rng.gauss(mean, sd)), decimals)
        if r() < 0.9:
            payload: Payload = {"test": test, "loinc": loinc, "value": float(value), "unit": unit}
        else:
            payload = {"test": test, "value": float(value), "unit": unit}
        self.emit(p, day, "lab.recorded", "lab-lis", f"LAB-{self.bits(32):08X}", payload, True)

    def biopsy(self, p: Patient, day: int, reason: str, specimen: str, site: str) -> bool:
        """Send a biopsy (and its omics biomarkers); True when samples went to omics."""
        st = self.st
        r = self.r
        omics = r() < st.omics_share
        samples = [f"OMX-{specimen}-DNA", f"OMX-{specimen}-RNA"] if omics else []
        self.emit(p, day, "biopsy.performed", "biobank", specimen,
                   {"specimen_id": specimen, "site": site, "reason": reason,
                    "omics_samples": samples})
        if omics:
            self.biomarkers(p, day, samples[0], reason == "progression")
        return omics

    def biomarkers(self, p: Patient, day: int, sample: str, progression: bool) -> None:
        r = self.r
        emit = self.emit
        panel = "NGS tissue panel"
        if p.group in (1, 2):
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "PIK3CA",
                  "result": "mutated" if p.pik3ca else "wild_type"})
        if p.group == 1:
            if progression and not p.esr1 and r() < self.st.esr1_acquired_share:
                p.esr1 = True
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "ESR1", "result": "mutated" if p.esr1 else "wild_type"})
        if p.group == 3:
            for marker in ("BRCA1", "BRCA2"):
                emit(p, day, "biomarker.recorded", "omics-lab", sample,
                     {"assay": panel, "marker": marker,
                      "result": "mutated" if p.brca == marker else "wild_type"})
            cps = int(r() * r() * 60)
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": "PD-L1 IHC 22C3", "marker": "PD-L1 CPS",
                  "result": "positive" if cps >= 10 else "negative", "value": cps, "unit": "CPS"})
            tmb = round(math.exp(self.rng.gauss(1.2, 0.7)), 1)
            emit(p, day, "biomarker.recorded", "omics-lab", sample,
                 {"assay": panel, "marker": "TMB", "result": "high" if tmb >= 10 else "low",
                  "value": tmb, "unit": "mut/Mb"})

    def median_days(self, key: str, line_no: int) -> float:
        st = self.st
        months = self.medians[key]
        if line_no >= 2:
            if REGIMENS[key].first_line_trial:
                months *= st.later_line_factor
            months *= st.later_line_decay ** max(0, line_no - 2)
        return months * DAYS_PER_MONTH

    def later_regimen(self, p: Patient, line_no: int) -> str:
        """A later-line regimen; targeted ones only for a patient with their marker."""
        pick = self.later_line[f"group{p.group}:{'2' if line_no == 2 else '3+'}"]
        for _ in range(4):
            key = pick(self.r())
            marker = TARGETED.get(key)
            if marker is None or getattr(p, marker):
                return key
        return "capecitabine"

    def imaging_interval(self, group: int, chemo: bool) -> int:
        st = self.st
        short = group == 3 or (group == 1 and chemo)
        return 7 * (st.imaging_interval_short_weeks if short else st.imaging_interval_long_weeks)

    def biopsy_site(self, p: Patient) -> str:
        candidates = [site for site in p.sites if site != "brain"] or p.sites
        return candidates[int(self.r() * len(candidates))]

    def supportive_care(self, progression: int, stop: int) -> tuple[int, int]:
        """No further line: death after a short survival, unless follow-up ends first."""
        median = self.st.best_supportive_care_median_months * DAYS_PER_MONTH
        death = progression + 1 + int(self.expo(math.log(2) / median))
        return (death, END_DEATH) if death < stop else (stop, END_HORIZON)

    # -- one patient ----------------------------------------------------------------
