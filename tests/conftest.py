"""Shared fixtures: real services come from tests/fixtures (infra/ scripts or testcontainers)."""

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.kafka"]

from mbcjourney import logs

logs.configure("warning")
