"""The ``journey`` command: a thin shell over the engine; every command has --help.

Each command that reads or writes the embedded engine takes ``--db URL`` (or the
``JOURNEY_DB`` environment variable; default ``sqlite:///journey.db``).

One module per command group (:mod:`~mbcjourney.cli.embedded`,
:mod:`~mbcjourney.cli.live`, :mod:`~mbcjourney.cli.reading`,
:mod:`~mbcjourney.cli.contract`, :mod:`~mbcjourney.cli.replay`,
:mod:`~mbcjourney.cli.alerts`), sharing only :mod:`~mbcjourney.cli.options` and
:mod:`~mbcjourney.cli.output`; :mod:`~mbcjourney.cli.main` builds the tree.
The ``journey`` entry point is ``mbcjourney.cli:main``.
"""

from mbcjourney.cli.main import cli, main

__all__ = ["cli", "main"]
