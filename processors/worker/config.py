"""``journey worker``: its options, and the batching bounds they default to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mbcjourney.processors.histories import DEFAULT_CACHED_EVENTS
from mbcjourney.processors.kafkaio import DEAD_LETTER_TOPIC, EVENTS_TOPIC
from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings

if TYPE_CHECKING:
    from mbcjourney.processors.alerting import AlertConfig

TAKE_CHUNK = 2_000  # records per take_events chunk
BACKLOG_LAG = 5_000  # records behind the partitions' ends: gather chunks into big batches
# While catching up, a patient's rows are projected and written once per batch that
# touches them, from their whole history: the bigger the batch, the fewer times.  At
# 20,000 records and 2 s, a 2,000-patient backlog re-projected each patient 4-5 times.
BATCH_MAX = 50_000
GATHER_MAX_S = 5.0
# Still further behind, batches only extend histories (their deltas made durable as
# always); the patients they touch are projected and written, with the checkpoints,
# once this many records are applied, or when the backlog is nearly through.  A
# 10,000-patient backlog touched most patients in every batch: each batch
# re-projected ~8,000 whole histories for ~50,000 new events.
PROJECT_EVERY = 250_000
HEARTBEAT_S = 10.0
# The checkpoints a worker writes are owned by ``worker:<topic>``: a store holding any is
# written by live workers, and the embedded engine never re-projects it (engine.py).
WORKER_CONSUMER_PREFIX = "worker:"


@dataclass(frozen=True)
class WorkerConfig:
    """Everything ``journey worker`` can set; defaults match infra/ and docker-compose.yml."""

    bootstrap: str
    db_url: str
    app_id: str = "mbc-journey"
    topic: str = EVENTS_TOPIC
    dead_letter_topic: str = DEAD_LETTER_TOPIC
    partitions: int = 4
    replication: int = 1
    batch_max: int = BATCH_MAX
    batch_within_s: float = 0.05
    project_every: int = PROJECT_EVERY
    max_cached_events: int = DEFAULT_CACHED_EVENTS
    settings: ClinicalSettings = DEFAULT_CLINICAL
    log_level: str = "warning"
    heartbeat_file: Path | None = None  # touched every HEARTBEAT_S while the loop runs
    alerts: AlertConfig | None = None  # live alerting (processors/alerting/); None: off

    @property
    def consumer(self) -> str:
        """The checkpoint owner: offsets only mean something for one topic."""
        return f"{WORKER_CONSUMER_PREFIX}{self.topic}"
