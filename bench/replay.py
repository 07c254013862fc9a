"""python -m bench.replay --events N: replay throughput from SQLite and from Kafka.

On a simulated cohort of about N events, ingested into an embedded SQLite log
(and published to a Kafka topic, keyed by patient id):

* replay of the built-in ``journey`` projection from the SQLite log, beside
  reading and JSON-decoding the same log in patient order (the baseline);
* replay from the Kafka topic (staged, then folded per patient), beside reading
  the topic with the same consumer and JSON-decoding every record.

Every phase runs in a fresh process (``bench.harness.run_phase``) and reports
its own peak resident memory; run two sizes to see that it stays flat.
Targets: >= 150,000 events/s from SQLite; Kafka >= 50 % of its raw read rate.
``--profile FILE`` also writes a cProfile of the SQLite replay (top functions) to FILE,
and of the Kafka replay to FILE.kafka.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import orjson

from bench.harness import Phases, run_here, run_phase
from bench.harness import report as print_report
from bench.phases import read_log_baseline
from mbcjourney.processors.sources import KafkaSource

TOPIC_PARTITIONS = 4


# --- phases (each run in its own process) ------------------------------------------------------


def prepare(events: str, seed: str, workdir: str) -> int:
    """Simulate about ``events`` events and ingest them into ``workdir``/log-N-S.db (cached)."""
    from mbcjourney.engine import EmbeddedEngine
    from mbcjourney.processors.ingest import numbered_lines
    from mbcjourney.simulate import SimulationSettings, write_cohort

    folder = Path(workdir)
    db = folder / f"log-{events}-{seed}.db"
    if db.exists():
        from mbcjourney.processors.db import make_engine
        from mbcjourney.processors.eventlog import SqlEventLog

        existing = make_engine(f"sqlite:///{db}")
        count = SqlEventLog(existing).count()
        existing.dispose()
        return count
    probe = folder / "probe.jsonl"
    with probe.open("wb") as out:
        sample = write_cohort(SimulationSettings(patients=500, seed=int(seed)), out)
    patients = max(1, round(int(events) * 500 / sample.events))
    cohort = folder / f"cohort-{events}-{seed}.jsonl"
    with cohort.open("wb") as out:
        write_cohort(SimulationSettings(patients=patients, seed=int(seed)), out)
    partial = db.with_suffix(".partial")
    engine = EmbeddedEngine(f"sqlite:///{partial}")
    with cohort.open("rb") as stream:
        summary = engine.ingest(numbered_lines(stream), origin="bench",
                                received_at=datetime(2026, 7, 1, tzinfo=UTC))
    engine.close()
    partial.rename(db)
    cohort.unlink()
    return int(summary.accepted)


def _kafka(bootstrap_topic: str, crcs: str) -> KafkaSource:
    bootstrap, topic = bootstrap_topic.split("/", 1)
    return KafkaSource(bootstrap, topic, check_crcs=crcs == "on")


def _replay(source_kind: str, source_arg: str, into: str, profile: str = "",
            crcs: str = "on") -> int:
    from mbcjourney.processors.db import make_engine
    from mbcjourney.processors.replay import JourneyTarget, Replay
    from mbcjourney.processors.sources import SqliteLogSource
    from mbcjourney.settings import DEFAULT_CLINICAL

    target = Path(into)
    for stale in target.parent.glob(target.name + "*"):
        stale.unlink()
    engine = make_engine(f"sqlite:///{target}")
    source = (SqliteLogSource(Path(source_arg)) if source_kind == "sqlite"
              else _kafka(source_arg, crcs))
    runner = Replay(engine, source, JourneyTarget(), DEFAULT_CLINICAL)
    if profile:
        profiler = cProfile.Profile()
        result = profiler.runcall(runner.run)
        text = io.StringIO()
        pstats.Stats(profiler, stream=text).sort_stats("tottime").print_stats(25)
        Path(profile).write_text(text.getvalue())
    else:
        result = runner.run()
    engine.dispose()
    return result.counts.read


def replay_sqlite(db: str, into: str, profile: str = "") -> int:
    return _replay("sqlite", db, into, profile)


def replay_kafka(bootstrap_topic: str, into: str, crcs: str, profile: str = "") -> int:
    return _replay("kafka", bootstrap_topic, into, profile, crcs=crcs)


def read_kafka(bootstrap_topic: str, crcs: str) -> int:
    """Baseline: the whole topic with the replay's own consumer, every record JSON-decoded."""
    source = _kafka(bootstrap_topic, crcs)
    snapshot = source.snapshot()
    count = 0
    for records, _ in source.read(snapshot, source.start(snapshot)):
        for record in records:
            orjson.loads(record.raw or b"null")
        count += len(records)
    return count


def publish(db: str, bootstrap_topic: str) -> int:
    """The log's events into a topic keyed by patient id (skipped when already there)."""
    import sqlite3

    from kafka import KafkaProducer
    from kafka.admin import KafkaAdminClient, NewTopic

    from mbcjourney.processors.sources import KafkaSource

    bootstrap, topic = bootstrap_topic.split("/", 1)
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    expected = conn.execute("SELECT COUNT(*) FROM events").fetchone()[0]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    if topic not in admin.list_topics():
        admin.create_topics([NewTopic(topic, TOPIC_PARTITIONS, 1)])
    admin.close()
    source = KafkaSource(bootstrap, topic)
    for _ in range(60):  # the new topic's metadata reaches the client
        try:
            present = sum(source.snapshot()["end_offsets"].values())
            break
        except Exception:
            time.sleep(0.5)
    else:
        raise SystemExit(f"topic {topic} did not appear")
    if present == expected:
        return 0
    if present:
        raise SystemExit(f"topic {topic} holds {present} records, not {expected}: delete it")
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=50,
                             batch_size=1 << 20, max_request_size=8 << 20)
    count = 0
    for patient_id, body in conn.execute("SELECT patient_id, body FROM events ORDER BY position"):
        producer.send(topic, value=body.encode(), key=patient_id.encode())
        count += 1
    producer.flush()
    producer.close()
    conn.close()
    return count


PHASES: Phases = {
    "prepare": ("simulate + ingest (setup)", prepare),
    "read-log": ("read + JSON-decode log (baseline)", read_log_baseline),
    "replay-sqlite": ("replay journey from SQLite", replay_sqlite),
    "publish": ("publish log to Kafka (setup)", publish),
    "read-kafka": ("read + JSON-decode Kafka (baseline)", read_kafka),
    "replay-kafka": ("replay journey from Kafka", replay_kafka),
}


# --- the run -------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--workdir", type=Path, default=Path(".cache/bench"))
    parser.add_argument("--bootstrap", default="127.0.0.1:19092",
                        help="Kafka bootstrap server (host:port)")
    parser.add_argument("--no-kafka", action="store_true", help="SQLite phases only")
    parser.add_argument("--kafka-crcs", choices=("on", "off"), default="on",
                        help="check record CRCs when reading Kafka (the default: on; "
                             "aiokafka checks them in C)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write a cProfile of the SQLite replay to this file (and of "
                             "the Kafka replay to FILE.kafka)")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    workdir = args.workdir.resolve()

    setup = run_phase("bench.replay", "phase", "prepare", str(args.events), str(args.seed),
                      str(workdir))
    db = workdir / f"log-{args.events}-{args.seed}.db"
    print(f"log: {db} ({setup.events:,} events, setup {setup.seconds:.0f} s)")
    read_log_m = run_phase("bench.replay", "phase", "read-log", str(db))
    replay_m = run_phase("bench.replay", "phase", "replay-sqlite", str(db),
                         str(workdir / "replay-sqlite.db"),
                         str(args.profile.resolve()) if args.profile else "")
    rows = [(replay_m, read_log_m)]
    targets = {replay_m.name: ">= 150,000 events/s"}
    if not args.no_kafka:
        where = f"{args.bootstrap}/bench.replay.{args.events}.{args.seed}"
        published = run_phase("bench.replay", "phase", "publish", str(db), where)
        if published.events:
            print(f"published {published.events:,} events in {published.seconds:.0f} s")
        read_kafka_m = run_phase("bench.replay", "phase", "read-kafka", where, args.kafka_crcs)
        replay_kafka_m = run_phase("bench.replay", "phase", "replay-kafka", where,
                                   str(workdir / "replay-kafka.db"), args.kafka_crcs,
                                   f"{args.profile.resolve()}.kafka" if args.profile else "")
        rows.append((replay_kafka_m, read_kafka_m))
        targets[replay_kafka_m.name] = ">= 50 % of baseline"
    print_report(f"Replay, single process, {setup.events:,} events", rows, targets)


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "phase":
        run_here(PHASES, sys.argv[2], sys.argv[3:])
    else:
        main()
