"""Check the import contracts of pyproject.toml (``[tool.importlinter]``) with lint-imports.

import-linter's graph builder (grimp) finds a package's modules by walking the
folder of its ``__init__``.  Installed in editable mode, ``mbcjourney`` is the
folder ``mbcjourney/`` and its sub-packages are mapped from ``events/``,
``projections/`` ... by setuptools' import hook, which grimp does not follow:
it would see the entry points alone and pass every contract.  So this runs
lint-imports from the link tree that :mod:`typecheck` builds (the installed
layout, as symlinks), where ``mbcjourney`` is found first and all of it is
walked.  Extra arguments go to lint-imports (e.g. ``--contract layers``).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from typecheck import ROOT, build_tree

EXPECTED = ("mbcjourney.events", "mbcjourney.projections", "mbcjourney.processors",
            "mbcjourney.cli")


def main(args: list[str]) -> int:
    tree = build_tree(ROOT / ".typecheck" / "imports")
    (tree / "pyproject.toml").symlink_to(ROOT / "pyproject.toml")  # where lint-imports looks
    env = {**os.environ, "PYTHONPATH": str(tree)}
    command = shutil.which("lint-imports", path=str(Path(sys.executable).parent)) or "lint-imports"
    # Guard against the failure this script exists for: a graph without the mapped packages.
    probe = ("import grimp, mbcjourney, sys; g = grimp.build_graph('mbcjourney'); "
             f"missing = [m for m in {EXPECTED!r} if m not in g.modules]; "
             "sys.exit('lint-imports would not see: ' + ', '.join(missing) if missing else 0)")
    status = subprocess.call([sys.executable, "-c", probe], cwd=tree, env=env)
    if status:
        return status
    return subprocess.call([command, "--no-cache", *args], cwd=tree, env=env)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
