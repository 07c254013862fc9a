"""stderr is one stream of JSON lines, libraries included; an absent broker is one error."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading
from collections.abc import Iterator

import pytest
import structlog
from kafka import KafkaConsumer, KafkaProducer

from mbcjourney import logs
from mbcjourney.errors import ConfigurationError, ServiceUnavailable
from mbcjourney.processors.kafkaio import _addresses, connect


@pytest.fixture
def stderr() -> Iterator[io.StringIO]:
    """What the logs write, configured as the CLI does; pytest's stream again afterwards."""
    original, written = sys.stderr, io.StringIO()
    logs.configure("warning", stream=written)
    try:
        yield written
    finally:
        logs.configure("warning", stream=original)


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_library_records_are_json_lines_with_their_logger(stderr: io.StringIO) -> None:
    logging.getLogger("kafka.net.manager").warning("Bootstrap %s not ready", "bootstrap-0")
    logging.getLogger("kafka.net.manager").info("below the configured level")
    try:
        raise ZeroDivisionError("division by zero")
    except ZeroDivisionError:
        logging.getLogger("faust.worker").exception("crashed")
    structlog.get_logger("ours").warning("worker.batch", records=3)

    first, second, third = _lines(stderr)
    assert first["event"] == "Bootstrap bootstrap-0 not ready"
    assert (first["level"], first["logger"]) == ("warning", "kafka.net.manager")
    assert str(first["timestamp"]).endswith("Z")
    assert (second["level"], second["logger"]) == ("error", "faust.worker")
    assert str(second["exception"]).startswith("Traceback")
    assert "ZeroDivisionError" in str(second["exception"])
    assert (third["event"], third["records"]) == ("worker.batch", 3)


@pytest.mark.parametrize("client", [KafkaConsumer, KafkaProducer])
def test_an_unreachable_broker_is_one_clear_error(client: type, closed_port: int,
                                                  stderr: io.StringIO) -> None:
    bootstrap = f"127.0.0.1:{closed_port}"
    with pytest.raises(ServiceUnavailable) as raised:
        connect(client, bootstrap, timeout_s=0.5)
    assert str(raised.value).startswith(
        f"Kafka at {bootstrap} does not answer within 0.5 s ({bootstrap}: Connection refused)")
    assert "infra/kafka/start.sh" in str(raised.value)
    # No kafka-python client was made: a failed one leaves its I/O thread running.
    assert not [t.name for t in threading.enumerate() if t.name.startswith("kafka-io")]
    assert stderr.getvalue() == ""  # nothing else at the default level


def test_retries_are_logged_when_asked_for(closed_port: int, stderr: io.StringIO) -> None:
    logs.configure("info", stream=stderr)
    with pytest.raises(ServiceUnavailable):
        connect(KafkaConsumer, f"127.0.0.1:{closed_port}", timeout_s=1.2)
    retries = [line for line in _lines(stderr) if line["event"] == "kafka.unreachable"]
    assert [line["attempt"] for line in retries] == list(range(1, len(retries) + 1))
    assert len(retries) >= 2
    assert retries[0]["error"] == f"127.0.0.1:{closed_port}: Connection refused"


@pytest.mark.parametrize(("bootstrap", "addresses"), [
    ("127.0.0.1:19092", [("127.0.0.1", 19092)]),
    ("a:1, b:2", [("a", 1), ("b", 2)]),
    ("[::1]:9093", [("::1", 9093)]),
    ("kafka", [("kafka", 9092)]),
])
def test_bootstrap_addresses(bootstrap: str, addresses: list[tuple[str, int]]) -> None:
    assert _addresses(bootstrap) == addresses


def test_a_bootstrap_that_is_not_host_port_is_named() -> None:
    with pytest.raises(ConfigurationError, match="'kafka:ninety' is not HOST:PORT"):
        _addresses("kafka:ninety")
