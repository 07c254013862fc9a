"""``python -m mbcjourney`` is the ``journey`` command."""

from mbcjourney.cli import main

if __name__ == "__main__":  # guarded: decode workers are spawned processes
    main()
