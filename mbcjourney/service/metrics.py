"""Prometheus metrics of one app: requests, latencies, events by outcome and reason.

Labels are route templates, methods, status codes and rejection reasons (field
paths and rules), never a path's values, a query or a payload.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

if TYPE_CHECKING:
    from mbcjourney.service.backend import ItemResult

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("journey_http_requests_total", "HTTP requests answered",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("journey_http_request_seconds", "Time to answer, seconds",
                                 ["method", "route"], registry=self.registry,
                                 buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5,
                                          5, 10))
        self.events = Counter("journey_events_total", "POST /v1/events items by outcome",
                              ["outcome", "reason"], registry=self.registry)

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def count_events(self, results: Iterable[ItemResult]) -> None:
        counts = Tally((r.outcome, r.error.reason_code if r.error is not None else "")
                         for r in results)
        for (outcome, reason), count in counts.items():  # one label lookup per kind
            self.events.labels(outcome, reason).inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
