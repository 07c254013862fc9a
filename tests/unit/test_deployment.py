"""docker-compose.yml stays a valid deployment of this code (no Docker engine needed).

The compose file is checked by ``docker-compose config`` where the client exists;
here its worker command is parsed by the real CLI, with the compose environment,
so a renamed or removed option fails a test instead of a container at start-up.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from mbcjourney.cli import cli
from mbcjourney.cli.live import worker
from mbcjourney.cli.service import serve

ROOT = Path(__file__).resolve().parents[2]


def _compose() -> dict[str, Any]:
    loaded = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def _parsed_worker_options(args: list[str], monkeypatch: pytest.MonkeyPatch,
                           command: Any = worker) -> dict[str, Any]:
    """Run ``journey ARGS`` as the container's entry point would, up to the command's start."""
    seen: dict[str, Any] = {}
    monkeypatch.setattr(command, "callback", lambda **options: seen.update(options))
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen, "the command did not reach `journey worker`"
    return seen


def test_the_image_runs_the_journey_command() -> None:
    assert 'ENTRYPOINT ["journey"]' in (ROOT / "Dockerfile").read_text()


def test_workers_run_with_the_compose_settings_and_raise_alerts(
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _compose()["services"]["worker"]
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, str(value))
    options = _parsed_worker_options([str(arg) for arg in service["command"]], monkeypatch)
    assert options["bootstrap"] == "kafka:9092"
    assert options["db"].startswith("postgresql+psycopg://journey:journey@postgres:5432/")
    assert options["partitions"] == int(service["environment"]["JOURNEY_KAFKA_PARTITIONS"])
    assert options["alerts_on"] is True
    assert {"kafka", "postgres", "topics"} <= set(service["depends_on"])


def test_topics_come_from_the_scripts_topic_list() -> None:
    command = " ".join(_compose()["services"]["topics"]["command"])
    assert "infra/topics.txt" in command
    assert (ROOT / "infra" / "topics.txt").is_file()


def test_the_api_serves_the_scale_out_deployment_with_a_readiness_check(
        monkeypatch: pytest.MonkeyPatch) -> None:
    service = _compose()["services"]["api"]
    for name, value in {**_compose()["x-journey"]["environment"]}.items():
        monkeypatch.setenv(name, str(value))
    options = _parsed_worker_options([str(arg) for arg in service["command"]], monkeypatch,
                                     serve)
    assert options["bootstrap"] == "kafka:9092"
    assert options["db"].startswith("postgresql+psycopg://journey:journey@postgres:5432/")
    assert (options["host"], options["port"]) == ("0.0.0.0", 8000)
    assert "/readyz" in " ".join(service["healthcheck"]["test"])
    assert service["ports"] == ["127.0.0.1:8000:8000"]
    assert {"kafka", "postgres", "topics"} <= set(service["depends_on"])
