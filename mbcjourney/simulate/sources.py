"""The source systems' side of a run: randomness, the arrival queue, and sending a fact.

:class:`Sources` holds what every step of a journey shares (the seeded random
stream, the heap of lines waiting to arrive, the counters of the summary) and sends
facts as hospital systems do: a few days late, sometimes wrong then retracted and
corrected, sometimes twice, sometimes with a malformed twin.
"""

from __future__ import annotations

import heapq
import random
from bisect import bisect_right
from collections import Counter
from collections.abc import Generator, Sequence
from datetime import date
from functools import cache
from itertools import accumulate
from typing import Any, Generic, TypeVar

import orjson

from mbcjourney.simulate.regimens import PUBLISHED_MEDIAN_PFS_MONTHS
from mbcjourney.simulate.results import LineTruth, PatientTruth
from mbcjourney.simulate.settings import SimulationSettings
from mbcjourney.simulate.tables import (
    BAD_DATES,
    DAY,
    DRUG_SWAPS,
    LOOKBACK_DAYS,
    MALFORMED_KINDS,
    REQUIRED_ENVELOPE,
    REQUIRED_PAYLOAD_FIELD,
    RETRACTION_REASONS,
    SYSTEM_DELAY,
    TAG_DUPLICATE,
    TAG_EVENT,
    TAG_MALFORMED,
    UNKNOWN_TYPES,
    UUID_CLEAR,
    UUID_SET,
    WORKDAY_SECONDS,
    WORKDAY_START,
)

_T = TypeVar("_T")


@cache
def clock_strings() -> tuple[str, ...]:
    """``THH:MM:SSZ`` for every second of a day (built once per process)."""
    return tuple(
        f"T{h:02d}:{m:02d}:{s:02d}Z" for h in range(24) for m in range(60) for s in range(60)
    )


def uuid4(bits: int) -> str:
    """The text of ``uuid.UUID(int=bits, version=4)``, without building the object."""
    h = f"{(bits & UUID_CLEAR) | UUID_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class Picker(Generic[_T]):
    """Weighted choice by bisection over cumulative weights."""

    __slots__ = ("_cum", "_items", "_total")

    def __init__(self, items: Sequence[_T], weights: Sequence[float]) -> None:
        self._items = tuple(items)
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]

    def __call__(self, u: float) -> _T:
        return self._items[bisect_right(self._cum, u * self._total)]


Payload = dict[str, Any]
JourneyDays = Generator[int, None, None]
AgendaItem = tuple[int, int, int, str, tuple[str, ...], tuple[str, ...]]
HeapItem = tuple[int, int, int, bytes | JourneyDays]


class Patient:
    """The little a journey keeps about its patient between events."""

    __slots__ = ("birth_year", "bone", "bone_agent", "brca", "ecog", "endocrine_before", "er",
                 "esr1", "group", "her2", "ki67", "pid", "pik3ca", "pr", "sites", "weight")

    def __init__(self, pid: str) -> None:
        self.pid = pid
        self.birth_year = 1960
        self.group = 1
        self.er = self.pr = self.her2 = False
        self.sites: list[str] = []
        self.bone = self.bone_agent = False
        self.pik3ca = self.esr1 = False
        self.brca = ""  # "BRCA1", "BRCA2" or "" (germline status, drawn once)
        self.ecog = 0
        self.weight = 68.0
        self.ki67 = -1  # known effects only: the patient's Ki-67 (%), drawn once
        self.endocrine_before = False  # known effects only: an earlier line held one


class Sources:
    """The shared state of one run and the sending of facts (see the module docstring)."""

    def __init__(self, settings: SimulationSettings, *, collect_truth: bool) -> None:
        st = settings
        self.st = st
        self.rng = random.Random(st.seed)
        self.r = self.rng.random
        self.bits = self.rng.getrandbits
        self.expo = self.rng.expovariate
        self.medians = {**PUBLISHED_MEDIAN_PFS_MONTHS, **st.medians_months}
        self.base = st.start.toordinal() - LOOKBACK_DAYS - 2
        self.days = [
            date.fromordinal(d).isoformat()
            for d in range(self.base, st.data_cutoff.toordinal() + 400)
        ]
        self.clock = clock_strings()
        self.cutoff = st.data_cutoff.toordinal()
        self.heap: list[HeapItem] = []
        self.seq = 0
        self.truths: list[PatientTruth] | None = [] if collect_truth else None
        self.line_truths: list[LineTruth] | None = (
            [] if collect_truth and st.known_effects else None)
        self.specimens = 0
        self.misspelt = 0
        self.by_type: Counter[str] = Counter()
        self.malformed: Counter[str] = Counter()
        self.n = Counter[str]()
        self.pick_group = Picker((1, 2, 3), st.group_shares)
        self.pick_centre = Picker(st.centres, st.centre_weights)
        self.pick_her2_hr = Picker(("0", "1+", "2+"), st.her2_ihc_mix_hr_positive)
        self.pick_her2_tn = Picker(("0", "1+", "2+"), st.her2_ihc_mix_triple_negative)
        self.pick_modality = Picker(("CT", "PET-CT", "MRI"), st.modality_mix)
        self.pick_best1 = Picker(("CR", "PR", "SD"), st.best_response_first_line)
        self.pick_best_later = Picker(("CR", "PR", "SD"), st.best_response_later_lines)
        self.pick_cause = Picker(("disease", "treatment", "other", "unknown"), st.death_cause_mix)
        self.first_line = {k: Picker(list(m), list(m.values())) for k, m in
                           st.first_line_mix.items()}
        self.non_concordant = {k: Picker(list(m), list(m.values())) for k, m in
                               st.non_concordant_mix.items()}
        self.later_line = {k: Picker(list(m), list(m.values())) for k, m in
                           st.later_line_mix.items()}

    # -- sending --------------------------------------------------------------------

    def specimen_id(self, day: int) -> str:
        """The next specimen number, as the pathology system numbers them per year."""
        self.specimens += 1
        return f"S{self.days[day - self.base][2:4]}-{self.specimens:06d}"

    def emit(self, p: Patient, day: int, etype: str, system: str, ref: str,
              payload: Payload, correctable: bool = False) -> None:
        """Send one fact as its source would: delayed, sometimes wrong then corrected."""
        st = self.st
        r = self.r
        low, extra = SYSTEM_DELAY[system]
        delay = low + int(r() * r() * (extra + 1))
        if r() < st.late_arrival_share:
            late_low, late_high = st.late_arrival_days
            delay += late_low + int(r() * (late_high - late_low + 1))
            self.n["late_arrivals"] += 1
        key = (day + delay) * DAY + WORKDAY_START + int(r() * WORKDAY_SECONDS)
        if correctable and r() < st.correction_share:
            wrong = self.corrupt(etype, payload)
            if wrong is not None:
                wrong_id = self.post(p, day, key, etype, system, ref, wrong, False)
                fix_low, fix_high = st.correction_delay_days
                key += (fix_low + int(r() * (fix_high - fix_low + 1))) * DAY + int(r() * 7200)
                retraction = {"target_event_id": wrong_id,
                              "reason": RETRACTION_REASONS[int(r() * len(RETRACTION_REASONS))]}
                self.post(p, day, key, "event.retracted", system, ref, retraction, False)
                self.post(p, day, key + 60 + int(r() * 600), etype, system, ref, payload, False)
                self.n["corrections"] += 1
                return
        self.post(p, day, key, etype, system, ref, payload, True)

    def post(self, p: Patient, day: int, key: int, etype: str, system: str, ref: str,
              payload: Payload, disorder: bool) -> str:
        """Serialise one event line and queue it (plus any duplicate or malformed twin)."""
        st = self.st
        r = self.r
        event_id = uuid4(self.bits(128))
        occurred = self.days[day - self.base]
        if r() < st.missing_recorded_at_share:
            self.n["missing_recorded_at"] += 1
            event: Payload = {
                "event_id": event_id, "event_type": etype, "schema_version": 1,
                "patient_id": p.pid, "occurred_at": occurred,
                "source": {"system": system, "reference": ref}, "payload": payload,
            }
        else:
            event = {
                "event_id": event_id, "event_type": etype, "schema_version": 1,
                "patient_id": p.pid, "occurred_at": occurred,
                "recorded_at": self.days[key // DAY - self.base] + self.clock[key % DAY],
                "source": {"system": system, "reference": ref}, "payload": payload,
            }
        # orjson hands back a buffer with spare capacity (about 4 KiB); the copy keeps
        # lines waiting in the heap at their real size.
        line = bytes(memoryview(orjson.dumps(event)))
        self.by_type[etype] += 1
        if disorder and r() < st.out_of_order_share:
            key += DAY + int(r() * 29 * DAY)
            self.n["out_of_order"] += 1
        heap = self.heap
        self.seq += 1
        heapq.heappush(heap, (key, self.seq, TAG_EVENT, line))
        if r() < st.duplicate_share:
            self.n["duplicates"] += 1
            self.seq += 1
            heapq.heappush(heap, (key + 60 + int(r() * 7 * DAY), self.seq, TAG_DUPLICATE, line))
        if r() < st.malformed_share:
            self.malformed_twin(p, day, key, event, line)
        return event_id

    def malformed_twin(self, p: Patient, day: int, key: int, event: Payload,
                        line: bytes) -> None:
        """A broken line sent near a good one (it never shares the good one's event id)."""
        r = self.r
        index = int(r() * len(MALFORMED_KINDS))
        kind = MALFORMED_KINDS[index]
        if kind == "truncated_json":
            bad = line[: 1 + int(r() * (len(line) - 2))]
        else:
            twin = dict(event, event_id=uuid4(self.bits(128)))
            if kind == "unknown_event_type":
                twin["event_type"] = UNKNOWN_TYPES[int(r() * len(UNKNOWN_TYPES))]
            elif kind == "missing_field":
                name = REQUIRED_PAYLOAD_FIELD.get(twin["event_type"])
                if name is not None and r() < 0.5:
                    twin["payload"] = {k: v for k, v in twin["payload"].items() if k != name}
                else:
                    del twin[REQUIRED_ENVELOPE[int(r() * len(REQUIRED_ENVELOPE))]]
            elif kind in ("er_out_of_range", "her2_ihc_invalid"):
                specimen = self.specimen_id(day)
                twin["event_type"] = "ihc.recorded"
                twin["source"] = {"system": "pathology-lis", "reference": specimen}
                twin["payload"] = {
                    "specimen_id": specimen, "specimen_site": "metastasis",
                    "er_percent": (150, 101, -5, 1000)[int(r() * 4)]
                    if kind == "er_out_of_range" else 80,
                    "pr_percent": 20,
                    "her2_ihc": ("4+", "++", "positive", "3")[int(r() * 4)]
                    if kind == "her2_ihc_invalid" else "1+",
                    "her2_ish": "not_done",
                }
            elif kind == "death_before_birth":
                year = p.birth_year - 1 - int(r() * 30)
                twin["event_type"] = "death.recorded"
                twin["occurred_at"] = f"{year:04d}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}"
                twin["source"] = {"system": "research-crf", "reference": f"CRF-{p.pid}-DEATH"}
                twin["payload"] = {"cause": "disease"}
            elif kind == "bad_date":
                twin["occurred_at"] = BAD_DATES[int(r() * len(BAD_DATES))]
            else:  # wrong_type
                twin["schema_version"] = "1"
            bad = bytes(memoryview(orjson.dumps(twin)))
        self.malformed[kind] += 1
        self.seq += 1
        heapq.heappush(self.heap, (key + 1 + int(r() * 600), self.seq, TAG_MALFORMED + index, bad))

    def corrupt(self, etype: str, payload: Payload) -> Payload | None:
        """The fact as a source gets it wrong, or None when this kind is never corrected."""
        r = self.r
        wrong = dict(payload)
        if etype == "ihc.recorded":
            if r() < 0.5:
                wrong["er_percent"] = 0 if payload["er_percent"] >= 1 else 90
            else:
                wrong["her2_ihc"] = "3+" if payload["her2_ihc"] in ("0", "1+") else "1+"
        elif etype == "imaging.performed":
            response = payload.get("recist_response")
            if response is None:
                return None
            others = [x for x in ("CR", "PR", "SD", "PD") if x != response]
            wrong["recist_response"] = others[int(r() * len(others))]
        elif etype == "lab.recorded":
            wrong["value"] = round(payload["value"] * 10, 2)
        elif etype == "clinical_exam.recorded":
            if "weight_kg" in payload:
                wrong["weight_kg"] = round(payload["weight_kg"] + 10 + int(r() * 20), 1)
            else:
                wrong["ecog"] = (payload["ecog"] + 1) % 5
        elif etype == "line.started":
            drugs: list[str] = payload["drugs"]
            for i, name in enumerate(drugs):
                swap = DRUG_SWAPS.get(name.lower())
                if swap is not None:
                    wrong["drugs"] = [*drugs[:i], swap, *drugs[i + 1:]]
                    break
            else:
                return None
        else:
            return None
        return wrong
