"""Run mypy on the installed layout (``mbcjourney.events`` lives in ``events/`` ...).

mypy does not follow setuptools' editable import hook, so this builds a link
tree ``.typecheck/mbcjourney`` mirroring the package-dir mapping of
pyproject.toml and type-checks that, plus the tests and benchmarks.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_tree(tree: Path = ROOT / ".typecheck") -> Path:
    """The link tree of the installed layout, rebuilt in ``tree``; also used by lint-imports."""
    mapping = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-dir"]
    shutil.rmtree(tree, ignore_errors=True)
    root_pkg = tree / "mbcjourney"
    root_pkg.mkdir(parents=True)
    for entry in (ROOT / mapping["mbcjourney"]).iterdir():
        if entry.suffix in (".py", ".typed") or (entry / "__init__.py").is_file():
            (root_pkg / entry.name).symlink_to(entry)
        elif entry.is_dir() and (entry / "__init__.py").is_file():  # mbcjourney.cli
            (root_pkg / entry.name).symlink_to(entry, target_is_directory=True)
    for name, folder in mapping.items():
        if name != "mbcjourney":
            (tree / Path(*name.split("."))).symlink_to(ROOT / folder, target_is_directory=True)
    return tree


def main() -> int:
    tree = build_tree()
    env = {**os.environ, "MYPYPATH": str(tree)}
    status = subprocess.call([sys.executable, "-m", "mypy", "-p", "mbcjourney"], cwd=ROOT, env=env)
    targets = [t for t in ("tests", "bench") if any((ROOT / t).rglob("*.py"))]
    status |= subprocess.call([sys.executable, "-m", "mypy", *targets], cwd=ROOT, env=env)
    return status


if __name__ == "__main__":
    sys.exit(main())
