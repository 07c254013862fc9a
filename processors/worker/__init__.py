"""The live projection worker: event topic in, projection rows in PostgreSQL out.

The scale-out deployment is assembled by :func:`mbcjourney.bootstrap.run_worker`
(the faust app itself is built in :mod:`~mbcjourney.processors.faust_app`);
:class:`BatchProcessor` is the processing, written against small ports so it runs with
fakes in the unit tests.  Records arrive in chunks (``stream.take_events``), handed to a processing
task so that the consumer fills the next chunk meanwhile; live, what is held is
processed at once; while catching up on a backlog (``BACKLOG_LAG`` records behind
or more), chunks are gathered into batches of up to ``batch_max`` records, so a
patient is projected and written once for many events.
Per batch:

1. **Contiguity.**  Per partition, the worker knows the last offset it projected
   (the checkpoint stored with the rows).  Offsets the consumer skipped (Kafka's
   committed offset may be ahead of the rows, see below) are read again from the
   topic (:class:`~mbcjourney.processors.kafkaread.RangeReader`) and processed
   first.  A table that lost its changelog is rebuilt the same way, from offset 0.
2. **History.**  Each record is admitted (``processors/admission.py``: decoded
   against the contract, its key and the birth year checked; refused: dead
   letter) and offered to its patient's history (a changelog-backed faust table):
   new, duplicate, or conflicting ``event_id`` (dead letter, first one wins), as
   in the embedded log.
3. **Projection.**  Every patient touched by a record beyond the checkpoint is
   re-projected once per batch from their whole history, with
   :func:`mbcjourney.projections.views.project`; late and out-of-order facts just change
   what that fold sees.  Far behind a backlog, batches only extend histories
   (step 4's deltas included) until ``PROJECT_EVERY`` records are applied or the
   backlog is nearly through; every patient touched meanwhile is then projected
   once, and written with the checkpoints in step 4.
4. **Durability, in this order.**  The batch's changelog deltas and dead letters
   are awaited until the broker acknowledged them (``acks=all``); then the rows
   of the touched patients and the partitions' checkpoints are written in ONE
   PostgreSQL transaction (in a thread, while the next batch is decoded and
   projected; one write in flight, in batch order), together with every event
   applied as new since the previous write, appended to the SQL event log
   (:mod:`~mbcjourney.processors.applied_events`): the readers that fold the log
   (cut-off and known-at views, overdue as of a day, alerts) see what the rows
   cover, never less.  Records at or below a stored checkpoint only feed the
   history: redelivery is harmless (a repeat in the log is a duplicate, stored once).

Kafka's committed offsets are a hint, never the truth.  faust acks a chunk when
the next one is requested (and in a ``finally``, also when processing raised or
was cancelled), and its pre-commit producer flush gives up after 0.1 s without
progress; this worker also gathers chunks and writes behind.  So offsets may be
committed before their rows exist.  What makes ``kill -9`` harmless is the
invariant of step 4 -- the checkpoint in PostgreSQL only covers records whose
history deltas the broker already holds -- plus step 1, which re-reads whatever
was committed past the checkpoint.  Before partitions move to another worker
(rebalance), the worker processes and stores what it holds.

One job per module: :mod:`.config` (``WorkerConfig``, the batching bounds),
:mod:`.ports` (what the processing writes to), :mod:`.sink` (``ProjectionSink``),
:mod:`.batches` (``BatchProcessor``); the faust app is
:mod:`mbcjourney.processors.faust_app`, the wiring :mod:`mbcjourney.bootstrap`.
"""

from mbcjourney.processors.worker.batches import BatchProcessor, BatchStats
from mbcjourney.processors.worker.config import (
    BACKLOG_LAG,
    BATCH_MAX,
    GATHER_MAX_S,
    HEARTBEAT_S,
    PROJECT_EVERY,
    TAKE_CHUNK,
    WORKER_CONSUMER_PREFIX,
    WorkerConfig,
)
from mbcjourney.processors.worker.ports import Changelog, DeadLetters, Ranges, RowWriter
from mbcjourney.processors.worker.sink import (
    WRITE_ATTEMPTS,
    WRITE_BACKOFF_S,
    LoggedStore,
    ProjectionSink,
)

__all__ = [
    "BACKLOG_LAG", "BATCH_MAX", "GATHER_MAX_S", "HEARTBEAT_S", "PROJECT_EVERY", "TAKE_CHUNK",
    "WORKER_CONSUMER_PREFIX", "WRITE_ATTEMPTS", "WRITE_BACKOFF_S", "BatchProcessor",
    "BatchStats", "Changelog", "DeadLetters", "LoggedStore", "ProjectionSink", "Ranges",
    "RowWriter", "WorkerConfig",
]
