"""``python -m tests.support.small_commit_groups ARGS``: the ``journey`` CLI, with ingest
commit groups of :data:`GROUP_LINES` lines instead of 100,000.

Why: a kill test needs a store interrupted between many commit groups; at the
production size that takes a 100,000-event cohort per ingest (minutes each).  Only the
group size changes, and only in the process run this way (importing this module changes
nothing); every line still goes through the same admission and writer.
"""

from __future__ import annotations

GROUP_LINES = 2_000


def shrink_commit_groups() -> None:
    from mbcjourney.processors import ingest

    ingest.COMMIT_ROWS = ingest.COMMIT_LINES = GROUP_LINES
    ingest.READ_AHEAD = 1
    assert ingest.ingest_lines.__kwdefaults__ is not None
    ingest.ingest_lines.__kwdefaults__["batch_size"] = GROUP_LINES // 4


if __name__ == "__main__":  # guarded: decode workers are spawned processes
    from mbcjourney.cli import main

    shrink_commit_groups()
    main()
