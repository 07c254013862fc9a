"""Shared fixtures: real services come from tests/fixtures (infra/ scripts or testcontainers)."""

import os
import tempfile
from pathlib import Path

from mbcjourney import logs
from mbcjourney.processors.keys import MASTER_KEY_ENV, write_master_key

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.kafka", "tests.fixtures.ports"]

logs.configure("warning")

# One master key for the whole run, as a deployment has one (the scale-out stores
# refuse to start without it); set before any test, so spawned commands inherit it.
# Tests of the embedded default (a key created beside the database) unset it.
if not os.environ.get(MASTER_KEY_ENV):
    _KEYS_DIR = Path(tempfile.mkdtemp(prefix="journey-test-keys-"))
    write_master_key(_KEYS_DIR / "master-key")
    os.environ[MASTER_KEY_ENV] = str(_KEYS_DIR / "master-key")
