"""``python -m mbcjourney`` is the ``journey`` command."""

from mbcjourney.cli import main

main()
