"""Run ``journey`` as a user does: a real subprocess, in a temporary working folder."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

Journey = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def journey(tmp_path: Path) -> Journey:
    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None,
            check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [sys.executable, "-m", "mbcjourney", "--quiet", *args],
            cwd=tmp_path, input=stdin, capture_output=True, text=True, timeout=600,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            raise AssertionError(f"journey {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stderr[-3000:]}")
        return result

    return run
