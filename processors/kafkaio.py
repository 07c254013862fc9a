"""Kafka plumbing shared by the publisher and the workers: records, dead letters, topic checks.

* :class:`SourceRecord` is a consumed record reduced to what processing needs,
  whichever client read it (faust in the worker, ``kafkaread`` when a gap is re-read).
* Dead letters on ``mbc.dead-letter``: the original bytes as the value, the
  patient id as the key when it could be read (else none), and the reason, the
  origin (``file:line`` or ``topic/partition/offset``) and the ids in headers --
  never payload values.
* Topics are checked before anything is produced or consumed, because a broker
  that auto-creates topics would otherwise create a one-partition event log.

Clients are created by the functions that use them, through :func:`connect`, never at
import time.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import socket
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, TypeVar

import structlog

from mbcjourney.events.errors import ConfigurationError, ServiceUnavailable
from mbcjourney.events.limits import MAX_EVENT_BYTES
from mbcjourney.processors.deadletters import DeadLetter, sealed_original
from mbcjourney.processors.sealing import Cipher

log = structlog.get_logger(__name__)

EVENTS_TOPIC = "mbc.clinical-events"
DEAD_LETTER_TOPIC = "mbc.dead-letter"
METADATA_TIMEOUT_S = 20.0
# How long a command waits for a broker that does not answer before it says so; the
# client's own default is 30 s, spent retrying with a back-off that grows to 30 s.
CONNECT_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0  # one TCP connection attempt
PROBE_RETRY_S = 0.5
RECONNECT_BACKOFF_MAX_MS = 1_000

Headers = list[tuple[str, bytes]]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """One record of the event topic, as processing sees it."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp_ms: int

    @property
    def received_at(self) -> datetime:
        """The broker timestamp: fills a missing ``recorded_at`` the same way on every replay."""
        return datetime.fromtimestamp(self.timestamp_ms / 1000, UTC)


# Header of a dead letter whose record was a tombstone (no value), not an empty value.
TOMBSTONE_HEADER = "tombstone"
# A dead letter over MAX_EVENT_BYTES (a line too long to publish) goes to the topic cut
# to its first MAX_EVENT_BYTES bytes, with its full length and its sha256 in these.
TRUNCATED_FROM_HEADER = "truncated_from_bytes"
SHA256_HEADER = "original_sha256"
# The producer's largest request (kafka-python's default, stated): above the largest
# record we send (a line of MAX_EVENT_BYTES or a cut dead letter, its key and headers),
# below the broker's message.max.bytes (its default, 1048588, which infra/kafka keeps).
MAX_REQUEST_BYTES = 1_048_576
BROKER_MESSAGE_MAX_BYTES = 1_048_588


def dead_letter_for(record: SourceRecord, letter: DeadLetter) -> DeadLetter:
    """``letter`` for ``record``, completed from the record itself.

    The record's key names the patient when the body could not; a record without a
    value (a tombstone) is flagged, since its original bytes, b"", look like an empty
    value's.
    """
    if letter.patient_id is None and record.key:
        letter = replace(letter, patient_id=record.key.decode(errors="replace")[:64])
    if record.value is None:
        letter = replace(letter, tombstone=True)
    return letter


def dead_letter_message(letter: DeadLetter, cipher: Cipher | None = None
                        ) -> tuple[bytes | None, bytes, Headers]:
    """(key, value, headers) of a dead letter on the dead-letter topic; with ``cipher``
    the value is sealed (:func:`~mbcjourney.processors.deadletters.sealed_original`)."""
    headers: Headers = [
        ("reason", letter.reason.encode()),
        ("origin", letter.origin.encode()),
        ("received_at", letter.received_at.astimezone(UTC).isoformat().encode()),
    ]
    for name in ("event_id", "event_type"):
        value = getattr(letter, name)
        if value is not None:
            headers.append((name, value.encode()))
    if letter.tombstone:  # the value is b"" either way: a record without one says so here
        headers.append((TOMBSTONE_HEADER, b"true"))
    key = letter.patient_id.encode() if letter.patient_id else None
    value = letter.original
    if len(value) > MAX_EVENT_BYTES:  # would not fit a record: its head, and what it was
        headers += [(TRUNCATED_FROM_HEADER, str(len(value)).encode()),
                    (SHA256_HEADER, hashlib.sha256(value).hexdigest().encode())]
        value = value[:MAX_EVENT_BYTES]
    if cipher is not None and cipher.enabled:
        value = sealed_original(cipher, replace(letter, original=value))
    return key, value, headers


def header(headers: Iterable[tuple[str, bytes]], name: str) -> str | None:
    """The text of header ``name`` (first occurrence), or None."""
    for key, value in headers:
        if key == name:
            return value.decode()
    return None


# --- topics ------------------------------------------------------------------------


def connect(client: Callable[..., T], bootstrap: str, *,
            timeout_s: float = CONNECT_TIMEOUT_S, **config: Any) -> T:
    """A kafka-python ``client`` (``KafkaConsumer``, ``KafkaProducer``) connected to ``bootstrap``.

    A broker that does not answer within ``timeout_s`` is one clear
    :class:`ServiceUnavailable`.  Reachability is probed with plain sockets first:
    a kafka-python 3.0 client whose bootstrap fails leaves its I/O thread and a
    socket behind, and logs a line per retry.
    """
    from kafka.errors import KafkaError

    deadline = wait_for_broker(bootstrap, timeout_s)
    try:
        with quiet_logger("kafka"):
            return client(bootstrap_servers=bootstrap.split(","),
                          bootstrap_timeout_ms=int(max(deadline - time.monotonic(), 1.0) * 1000),
                          reconnect_backoff_max_ms=RECONNECT_BACKOFF_MAX_MS, **config)
    except KafkaError as exc:  # a socket answers, but not a Kafka broker
        raise unavailable(bootstrap, timeout_s, str(exc)) from None


def wait_for_broker(bootstrap: str, timeout_s: float = CONNECT_TIMEOUT_S) -> float:
    """Return once ``bootstrap`` accepts a TCP connection: the deadline a client has left.

    One clear :class:`ServiceUnavailable` if none does within ``timeout_s``; every
    client (kafka-python here, aiokafka in ``kafkaread``) is made after this probe.
    """
    deadline = time.monotonic() + timeout_s
    _wait_until_reachable(bootstrap, deadline, timeout_s)
    return deadline


def broker_reachable(bootstrap: str, timeout_s: float = 2.0) -> bool:
    """Whether a bootstrap address accepts a TCP connection now (a readiness probe)."""
    try:
        _wait_until_reachable(bootstrap, time.monotonic() + timeout_s, timeout_s)
    except ServiceUnavailable:
        return False
    return True


def _wait_until_reachable(bootstrap: str, deadline: float, timeout_s: float) -> None:
    """Return once one bootstrap address accepts a TCP connection; retry until ``deadline``."""
    attempt, error = 0, "no address"
    while True:
        attempt += 1
        for host, port in _addresses(bootstrap):
            wait = min(PROBE_TIMEOUT_S, max(deadline - time.monotonic(), 0.1))
            try:
                with socket.create_connection((host, port), timeout=wait):
                    return
            except OSError as exc:
                error = f"{host}:{port}: {exc.strerror or type(exc).__name__}"
        left = deadline - time.monotonic()
        if left <= 0:
            raise unavailable(bootstrap, timeout_s, error)
        log.info("kafka.unreachable", bootstrap=bootstrap, attempt=attempt, error=error)
        time.sleep(min(PROBE_RETRY_S, left))  # a broker being started answers soon


def _addresses(bootstrap: str) -> list[tuple[str, int]]:
    """``host:port,[::1]:port`` as (host, port) pairs; Kafka's port 9092 when none is given."""
    addresses = []
    for server in bootstrap.split(","):
        host, colon, port = server.strip().rpartition(":")
        if not colon or "]" in port:
            host, port = server.strip(), "9092"
        if not port.isdigit():
            raise ConfigurationError(f"--bootstrap {bootstrap!r}: {server!r} is not HOST:PORT")
        addresses.append((host.strip("[]"), int(port)))
    return addresses


def unavailable(bootstrap: str, timeout_s: float, error: str) -> ServiceUnavailable:
    return ServiceUnavailable(
        f"Kafka at {bootstrap} does not answer within {timeout_s:g} s ({error}); is the "
        "broker running? (bash infra/kafka/start.sh starts one)")


@contextlib.contextmanager
def quiet_logger(name: str) -> Iterator[None]:
    """Hold back a Kafka client's own log lines (one per failed connection attempt) while
    it starts, unless they were asked for: the broker probe's one error says it all."""
    client_log = logging.getLogger(name)
    if client_log.isEnabledFor(logging.INFO):
        yield
        return
    level = client_log.level
    client_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        client_log.setLevel(level)


def _metadata_consumer(bootstrap: str) -> Any:
    from kafka import KafkaConsumer

    return connect(KafkaConsumer, bootstrap, group_id=None, enable_auto_commit=False,
                   client_id="journey-metadata",
                   request_timeout_ms=int(METADATA_TIMEOUT_S * 1000) + 1000)


def topic_partitions(bootstrap: str, topics: Iterable[str]) -> dict[str, int]:
    """Partition counts of those ``topics`` that exist (never creates one)."""
    consumer = _metadata_consumer(bootstrap)
    try:
        known = consumer.topics()  # metadata of all topics: no auto-creation
        counts: dict[str, int] = {}
        for topic in topics:
            if topic in known:
                counts[topic] = len(consumer.partitions_for_topic(topic) or ())
        return counts
    finally:
        consumer.close()


def require_topics(bootstrap: str, expected: Mapping[str, int | None]) -> dict[str, int]:
    """Check each topic exists (with the expected partition count when given)."""
    counts = topic_partitions(bootstrap, expected)
    for topic, partitions in expected.items():
        if topic not in counts:
            raise ConfigurationError(
                f"Kafka topic {topic!r} does not exist on {bootstrap}; create the topics of "
                f"infra/topics.txt first (bash infra/kafka/start.sh does)")
        if partitions is not None and counts[topic] != partitions:
            raise ConfigurationError(
                f"Kafka topic {topic!r} has {counts[topic]} partitions, expected {partitions} "
                f"(--partitions)")
    return counts


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Next offset to be written, per partition of ``topic``."""
    from kafka import TopicPartition

    consumer = _metadata_consumer(bootstrap)
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        ends = consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(offset) for tp, offset in ends.items()}
    finally:
        consumer.close()
