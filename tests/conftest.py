"""Shared fixtures: real services come from tests/fixtures (infra/ scripts or testcontainers)."""

from mbcjourney import logs

pytest_plugins = ["tests.fixtures.postgres", "tests.fixtures.kafka", "tests.fixtures.ports"]

logs.configure("warning")
