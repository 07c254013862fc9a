"""A table recovery that stops making progress is noticed (the worker then stops, to restart)."""

from __future__ import annotations

from mbcjourney.processors.faust_app import RecoveryWatch


def test_a_recovery_without_progress_stalls_after_the_threshold() -> None:
    watch = RecoveryWatch(stall_s=60.0)
    watch.started(partitions=2, now=1000.0)
    assert watch.stalled_for(1059.9) is None
    assert watch.stalled_for(1060.0) == 60.0
    assert watch.stalled_for(1075.0) == 75.0


def test_progress_restarts_the_count() -> None:
    watch = RecoveryWatch(stall_s=60.0)
    watch.started(partitions=2, now=1000.0)
    watch.progressed(now=1050.0)
    assert watch.stalled_for(1100.0) is None
    assert watch.stalled_for(1110.0) == 60.0


def test_a_completed_recovery_never_stalls() -> None:
    watch = RecoveryWatch(stall_s=60.0)
    watch.started(partitions=4, now=1000.0)
    watch.completed()
    assert watch.stalled_for(10_000.0) is None
    watch.progressed(now=10_001.0)  # records after completion are live work, not recovery
    assert watch.stalled_for(20_000.0) is None


def test_a_rebalance_that_assigns_nothing_has_nothing_to_recover() -> None:
    watch = RecoveryWatch(stall_s=60.0)
    watch.started(partitions=2, now=1000.0)
    watch.started(partitions=0, now=1010.0)  # a third worker joined: this one got nothing
    assert watch.stalled_for(5000.0) is None


def test_each_rebalance_starts_a_new_count() -> None:
    watch = RecoveryWatch(stall_s=60.0)
    watch.started(partitions=4, now=1000.0)
    watch.started(partitions=2, now=1050.0)
    assert watch.stalled_for(1100.0) is None
    assert watch.stalled_for(1110.0) == 60.0

