"""The tests' one polling helper returns what the predicate found, or fails naming the wait."""

from __future__ import annotations

import asyncio

import pytest

from tests.support.polling import eventually, eventually_async


def test_eventually_returns_the_first_truthy_value() -> None:
    answers = iter([None, 0, "ready"])
    assert eventually(lambda: next(answers), timeout=5, what="an answer", interval=0) == "ready"


def test_eventually_names_what_it_waited_for_and_what_it_saw() -> None:
    with pytest.raises(AssertionError,
                       match=r"timed out after 0.01s waiting for the moon: still dark"):
        eventually(lambda: False, timeout=0.01, what="the moon", detail=lambda: "still dark")


def test_a_predicate_that_fails_fails_at_once() -> None:
    def died() -> bool:
        raise AssertionError("worker exited 1")

    with pytest.raises(AssertionError, match="worker exited 1"):
        eventually(died, timeout=60, what="never")


def test_eventually_async_awaits_the_predicate() -> None:
    polls: list[int] = []

    async def third_time() -> int:
        polls.append(1)
        return len(polls) if len(polls) >= 3 else 0

    assert asyncio.run(eventually_async(third_time, timeout=5, what="3 polls", interval=0)) == 3

    async def never() -> bool:
        return False

    with pytest.raises(AssertionError, match="waiting for nothing"):
        asyncio.run(eventually_async(never, timeout=0.01, what="nothing"))
