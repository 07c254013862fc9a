"""The service fixtures' one discovery policy: env var, else a container, else the script."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator

import pytest

from tests.fixtures import services
from tests.fixtures.services import discover

Log = list[str]


def source(name: str, log: Log, *, fails: bool = False) -> services.Source:
    @contextlib.contextmanager
    def start() -> Iterator[str]:
        log.append(f"start {name}")
        if fails:
            raise RuntimeError(f"{name} would not start")
        try:
            yield f"{name}:1"
        finally:
            log.append(f"stop {name}")

    return start


def ready_unless(*bad: str) -> Callable[[str], str]:
    def ready(address: str) -> str:
        if address in bad:
            raise ConnectionError(f"{address} does not answer")
        return f"ready {address}"

    return ready


@pytest.fixture
def docker(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, str]]:
    """What ``docker info`` answers (set by the test); no real Docker is asked."""
    answer = [(True, "")]
    monkeypatch.setattr(services, "docker_answers", lambda: answer[0])
    monkeypatch.delenv("JOURNEY_TEST_SVC", raising=False)
    monkeypatch.delenv("CI", raising=False)
    return answer


def found(log: Log, ready: Callable[[str], str], *, container_fails: bool = False,
          script_fails: bool = False) -> str:
    with discover("Test service", env_var="JOURNEY_TEST_SVC", ready=ready,
                  container=source("container", log, fails=container_fails),
                  script=source("script", log, fails=script_fails),
                  script_label="infra/test/start.sh") as address:
        log.append(f"use {address}")
        return address


def test_the_environment_variable_wins_and_starts_nothing(
        docker: list[tuple[bool, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_TEST_SVC", " given:9 ")
    log: Log = []
    assert found(log, ready_unless()) == "ready given:9"
    assert log == ["use ready given:9"]


def test_a_wrong_environment_variable_is_reported_not_replaced(
        docker: list[tuple[bool, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JOURNEY_TEST_SVC", "given:9")
    log: Log = []
    with pytest.raises(pytest.skip.Exception,
                       match=r"JOURNEY_TEST_SVC is set but unusable: .*given:9 does not answer"):
        found(log, ready_unless("given:9"))
    assert log == []


def test_a_container_when_docker_answers_stopped_after_use(
        docker: list[tuple[bool, str]]) -> None:
    log: Log = []
    assert found(log, ready_unless()) == "ready container:1"
    assert log == ["start container", "use ready container:1", "stop container"]


def test_without_docker_the_script(docker: list[tuple[bool, str]]) -> None:
    docker[0] = (False, "no docker command")
    log: Log = []
    assert found(log, ready_unless()) == "ready script:1"
    assert log == ["start script", "use ready script:1", "stop script"]


def test_a_container_that_never_gets_ready_is_stopped_and_the_script_tried(
        docker: list[tuple[bool, str]]) -> None:
    log: Log = []
    assert found(log, ready_unless("container:1")) == "ready script:1"
    assert log == ["start container", "stop container", "start script", "use ready script:1",
                   "stop script"]


def test_nothing_works_skips_with_every_reason_and_fails_in_ci(
        docker: list[tuple[bool, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    docker[0] = (False, "docker info failed: permission denied")
    with pytest.raises(pytest.skip.Exception) as skipped:
        found([], ready_unless(), script_fails=True)
    assert str(skipped.value) == (
        "no Test service for integration tests: no Docker engine (docker info failed: "
        "permission denied); infra/test/start.sh: script would not start")
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI=true: integration tests must not skip"):
        found([], ready_unless(), container_fails=True, script_fails=True)
