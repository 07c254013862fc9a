"""One run: a discrete-event merge of patient journeys into arrival order."""

from __future__ import annotations

import heapq
from collections.abc import Iterator

from mbcjourney.simulate.clinical import Clinic
from mbcjourney.simulate.journey import Journey
from mbcjourney.simulate.results import SimulationSummary
from mbcjourney.simulate.tables import DAY, LOOKBACK_DAYS, MALFORMED_KINDS


class Simulation(Clinic):
    """One run: a discrete-event merge of patient journeys into arrival order.

    Each journey is a generator that yields the next day it has something to
    say; the heap holds journeys keyed by that day and lines keyed by arrival
    time, so a line is released once no journey can still produce an earlier one.
    """

    def run(self) -> Iterator[tuple[int, bytes]]:
        """(tag, line) in arrival order; tags are ``TAG_*`` of :mod:`.tables`."""
        st = self.st
        r = self.r
        start = st.start.toordinal()
        inclusions = sorted(start + int(r() * st.accrual_days) for _ in range(st.patients))
        heap = self.heap
        push = heapq.heappush
        pop = heapq.heappop
        spawned = 0
        total = len(inclusions)
        while True:
            if spawned < total and (
                not heap or (inclusions[spawned] - LOOKBACK_DAYS) * DAY <= heap[0][0]
            ):
                journey = Journey(self, spawned, inclusions[spawned]).days()
                self.seq += 1
                push(heap, (next(journey) * DAY, self.seq, 0, journey))
                spawned += 1
                continue
            if not heap:
                return
            _, _, tag, obj = pop(heap)
            if isinstance(obj, bytes):
                yield tag, obj
                continue
            try:
                day = next(obj)
            except StopIteration:
                continue
            self.seq += 1
            push(heap, (day * DAY, self.seq, 0, obj))

    def summary(self, lines: int) -> SimulationSummary:
        n = self.n
        return SimulationSummary(
            patients=self.st.patients,
            lines=lines,
            events=sum(self.by_type.values()),
            events_by_type=dict(sorted(self.by_type.items())),
            duplicates=n["duplicates"],
            malformed=sum(self.malformed.values()),
            malformed_by_kind={kind: self.malformed[kind] for kind in MALFORMED_KINDS},
            corrections=n["corrections"],
            missing_recorded_at=n["missing_recorded_at"],
            late_arrivals=n["late_arrivals"],
            out_of_order=n["out_of_order"],
            missed_imaging=n["missed_imaging"],
            deaths=n["deaths"],
            lost_to_followup=n["lost"],
            withdrawals=n["withdrawn"],
        )
