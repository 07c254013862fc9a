"""Small Kafka admin helper for the local broker scripts and the pytest fixture.

Reads the topic definitions from ``infra/topics.txt`` (the single source of truth),
waits for a broker to become ready and creates the missing topics, using
kafka-python's admin client (works with kafka-python 2.x and 3.x).

Command line (used by ``start.sh`` and ``create-topics.sh``)::

    python infra/kafka/kafkactl.py wait   --bootstrap 127.0.0.1:19092 [--timeout 90] [--pid N]
    python infra/kafka/kafkactl.py ensure --bootstrap 127.0.0.1:19092 [--topics infra/topics.txt]
    python infra/kafka/kafkactl.py show   [--topics infra/topics.txt]

``tests/fixtures/kafka.py`` loads this file by path (it is not part of the package).

Format of topics.txt: one topic per line, whitespace separated::

    <name> <partitions> <cleanup.policy> [<topic config>=<value> ...]

``#`` starts a comment.  ``${VAR}`` and ``${VAR:-default}`` are expanded from the
environment (shell/compose syntax), e.g. ``${JOURNEY_KAFKA_PARTITIONS:-4}``.
"""

from __future__ import annotations

import argparse
import logging
import os
import re
import sys
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TOPICS_FILE = Path(__file__).resolve().parents[1] / "topics.txt"
CLEANUP_POLICIES = {"delete", "compact", "compact,delete", "delete,compact"}
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


@dataclass(frozen=True)
class TopicSpec:
    """One line of topics.txt."""

    name: str
    partitions: int
    cleanup_policy: str
    configs: Mapping[str, str] = field(default_factory=dict)

    def topic_configs(self) -> dict[str, str]:
        return {"cleanup.policy": self.cleanup_policy, **self.configs}


def expand(text: str, env: Mapping[str, str]) -> str:
    """Expand ``${VAR}`` / ``${VAR:-default}`` like a POSIX shell (empty counts as unset for :-)."""

    def repl(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        value = env.get(name, "")
        if value:
            return value
        if default is not None:
            return default
        raise ValueError(f"variable {name} is not set and has no default")

    return _VAR.sub(repl, text)


def load_topics(
    path: str | os.PathLike[str] | None = None, env: Mapping[str, str] | None = None
) -> list[TopicSpec]:
    """Parse topics.txt into TopicSpecs (raises ValueError on a malformed line)."""
    path = Path(path) if path is not None else DEFAULT_TOPICS_FILE
    env = os.environ if env is None else env
    specs: list[TopicSpec] = []
    for lineno, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            fields = expand(line, env).split()
            if len(fields) < 3:
                raise ValueError("expected: <name> <partitions> <cleanup.policy> [key=value ...]")
            name, partitions_text, policy, *extra = fields
            partitions = int(partitions_text)
            if partitions < 1:
                raise ValueError(f"partitions must be >= 1, got {partitions}")
            if policy not in CLEANUP_POLICIES:
                raise ValueError(f"unknown cleanup policy {policy!r}")
            configs: dict[str, str] = {}
            for item in extra:
                key, sep, value = item.partition("=")
                if not sep or not key:
                    raise ValueError(f"expected key=value, got {item!r}")
                configs[key] = value
        except ValueError as exc:
            raise ValueError(f"{path}:{lineno}: {exc}") from None
        specs.append(TopicSpec(name, partitions, policy, configs))
    names = [s.name for s in specs]
    if len(names) != len(set(names)):
        raise ValueError(f"{path}: duplicate topic names")
    return specs


# --------------------------------------------------------------------------- admin


def _kafka_python_major() -> int:
    import kafka

    return int(kafka.__version__.split(".", 1)[0])


def admin_client(bootstrap: str, timeout_ms: int = 10_000) -> Any:
    """A KafkaAdminClient with bounded timeouts (kafka-python 2.x and 3.x)."""
    from kafka.admin import KafkaAdminClient

    kwargs: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": "mbc-journey-infra",
        "request_timeout_ms": timeout_ms,
    }
    if _kafka_python_major() >= 3:
        kwargs["bootstrap_timeout_ms"] = timeout_ms
    return KafkaAdminClient(**kwargs)


def _quiet_kafka_logging() -> None:
    # Connection refusals while the broker boots are expected; keep stderr clean.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)


def wait_ready(bootstrap: str, timeout_s: float = 90.0, pid: int | None = None) -> dict[str, Any]:
    """Poll until the broker answers a metadata request listing at least one broker.

    Returns the cluster description.  Raises TimeoutError after ``timeout_s``, or
    RuntimeError at once if ``pid`` (the broker process) has exited.
    """
    deadline = time.monotonic() + timeout_s
    last_error: BaseException | None = None
    while True:
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise RuntimeError(f"broker process {pid} exited before becoming ready") from None
            except PermissionError:
                pass
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"Kafka at {bootstrap} not ready after {timeout_s:.0f}s: {last_error!r}"
            )
        try:
            admin = admin_client(bootstrap, timeout_ms=int(min(5.0, max(remaining, 0.5)) * 1000))
            try:
                cluster: dict[str, Any] = admin.describe_cluster()
            finally:
                admin.close()
            if cluster.get("brokers"):
                return cluster
            last_error = RuntimeError("no brokers in metadata yet")
        except Exception as exc:  # any failure means "not ready yet"
            last_error = exc
        time.sleep(0.25)


def _topic_name(info: Mapping[str, Any]) -> str:
    return str(info.get("name", info.get("topic")))  # 3.x: name, 2.x: topic


def _partition_ready(p: Mapping[str, Any]) -> bool:
    leader = p.get("leader_id", p.get("leader", -1))  # 3.x: leader_id, 2.x: leader
    return p.get("error_code", 0) == 0 and leader is not None and leader >= 0


def describe_partitions(admin: Any, names: Iterable[str]) -> dict[str, int]:
    """Partition counts of the existing topics among ``names`` (missing ones are absent)."""
    names = list(names)
    if not names:
        return {}
    result: dict[str, int] = {}
    for info in admin.describe_topics(names):
        if info.get("error_code", 0) == 0 and info.get("partitions"):
            result[_topic_name(info)] = len(info["partitions"])
    return result


def create_topic(
    admin: Any,
    name: str,
    partitions: int,
    replication_factor: int = 1,
    configs: Mapping[str, str] | None = None,
    timeout_ms: int = 30_000,
) -> None:
    """Create one topic (raises kafka.errors.TopicAlreadyExistsError if it exists)."""
    configs = dict(configs or {})
    if _kafka_python_major() >= 3:
        admin.create_topics(
            {
                name: {
                    "num_partitions": partitions,
                    "replication_factor": replication_factor,
                    "configs": configs,
                }
            },
            timeout_ms=timeout_ms,
        )
    else:  # kafka-python 2.x only knows NewTopic (deprecated in 3.x)
        from kafka.admin import NewTopic

        admin.create_topics(
            [
                NewTopic(
                    name=name,
                    num_partitions=partitions,
                    replication_factor=replication_factor,
                    topic_configs=configs,
                )
            ],
            timeout_ms=timeout_ms,
        )


def wait_topics(admin: Any, names: Iterable[str], timeout_s: float = 30.0) -> None:
    """Block until every topic is in metadata with a leader for every partition."""
    names = list(names)
    deadline = time.monotonic() + timeout_s
    while True:
        pending = set(names)
        try:
            for info in admin.describe_topics(names):
                parts = info.get("partitions") or []
                if info.get("error_code", 0) == 0 and parts and all(map(_partition_ready, parts)):
                    pending.discard(_topic_name(info))
        except Exception:  # retried until the deadline
            pass
        if not pending:
            return
        if time.monotonic() >= deadline:
            raise TimeoutError(f"topics not ready after {timeout_s:.0f}s: {sorted(pending)}")
        time.sleep(0.1)


def ensure_topics(
    bootstrap: str, specs: Iterable[TopicSpec], replication_factor: int = 1, timeout_s: float = 30.0
) -> tuple[list[str], list[str]]:
    """Create the topics that are missing; return (created, warnings).

    Existing topics are left alone; a partition count differing from the spec is
    reported as a warning (partitions can only grow, and never silently).
    """
    from kafka.errors import TopicAlreadyExistsError

    specs = list(specs)
    created: list[str] = []
    warnings: list[str] = []
    admin = admin_client(bootstrap, timeout_ms=int(timeout_s * 1000))
    try:
        existing = describe_partitions(admin, [s.name for s in specs])
        for spec in specs:
            if spec.name in existing:
                if existing[spec.name] != spec.partitions:
                    warnings.append(
                        f"{spec.name} has {existing[spec.name]} partitions, "
                        f"topics.txt says {spec.partitions}"
                    )
                continue
            try:
                create_topic(
                    admin,
                    spec.name,
                    spec.partitions,
                    replication_factor,
                    spec.topic_configs(),
                    timeout_ms=int(timeout_s * 1000),
                )
                created.append(spec.name)
            except TopicAlreadyExistsError:  # created concurrently
                pass
        wait_topics(admin, [s.name for s in specs], timeout_s)
    finally:
        admin.close()
    return created, warnings


# ---------------------------------------------------------------------------- CLI


def _say(message: str) -> None:
    sys.stderr.write(f"kafka: {message}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kafkactl", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="cmd", required=True)
    p_wait = sub.add_parser("wait", help="wait until the broker is ready")
    p_wait.add_argument("--bootstrap", required=True)
    p_wait.add_argument("--timeout", type=float, default=90.0)
    p_wait.add_argument("--pid", type=int, help="abort early if this process exits")
    p_ensure = sub.add_parser("ensure", help="create the topics of topics.txt that are missing")
    p_ensure.add_argument("--bootstrap", required=True)
    p_ensure.add_argument("--topics", default=str(DEFAULT_TOPICS_FILE))
    p_ensure.add_argument("--replication-factor", type=int, default=1)
    p_show = sub.add_parser("show", help="print the parsed topics.txt")
    p_show.add_argument("--topics", default=str(DEFAULT_TOPICS_FILE))
    args = parser.parse_args(argv)
    _quiet_kafka_logging()

    try:
        if args.cmd == "wait":
            cluster = wait_ready(args.bootstrap, args.timeout, args.pid)
            _say(f"ready at {args.bootstrap} (cluster {cluster.get('cluster_id')})")
        elif args.cmd == "ensure":
            specs = load_topics(args.topics)
            created, warnings = ensure_topics(args.bootstrap, specs, args.replication_factor)
            for w in warnings:
                _say(f"warning: {w}")
            _say(f"topics ok ({len(specs)} defined, created: {', '.join(created) or 'none'})")
        else:
            for s in load_topics(args.topics):
                extra = " ".join(f"{k}={v}" for k, v in s.configs.items())
                line = f"{s.name} {s.partitions} {s.cleanup_policy} {extra}".rstrip()
                sys.stdout.write(line + "\n")
    except (TimeoutError, RuntimeError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
