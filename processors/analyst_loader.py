"""Loading an analyst's projection file: ``journey replay --projection path/to/file.py[:OBJECT]``.

The API a projection is written against (:class:`Projection`, :class:`Column`,
``@projection``) is pure and lives with the projections
(:mod:`mbcjourney.projections.analyst`); importing a file from a path is I/O,
so it is done here, by the processors that replay it.
"""

from __future__ import annotations

import importlib.util
import inspect
import sys
import traceback
import uuid
from dataclasses import replace
from pathlib import Path
from types import ModuleType

from mbcjourney.projections.analyst import Projection, ProjectionLoadError, same_file

__all__ = ["load_projection"]


def load_projection(spec: str) -> Projection:
    """The projection of ``path/to/module.py[:object]``; a clear error when it cannot be had.

    Without ``:object`` the module must hold exactly one :class:`Projection`.
    """
    path_text, attribute = spec, ""
    if not spec.endswith(".py") and ":" in spec:
        path_text, _, attribute = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise ProjectionLoadError(f"projection file {path} does not exist")
    module = _import(path)
    if attribute:
        if not hasattr(module, attribute):
            raise ProjectionLoadError(f"{path} has no object {attribute!r}")
        found = getattr(module, attribute)
        if not isinstance(found, Projection):
            raise ProjectionLoadError(
                f"{path}:{attribute} is a {type(found).__name__}, not a Projection: "
                "declare it with @projection(name, columns=[...])")
    else:
        candidates = [v for v in vars(module).values() if isinstance(v, Projection)]
        if len(candidates) != 1:
            raise ProjectionLoadError(
                f"{path} holds {len(candidates)} projections; name one as {path}:OBJECT"
                if candidates else
                f"{path} holds no projection: declare one with @projection(name, columns=[...])")
        found = candidates[0]
    _check_signature(found, f"{path}:{attribute}" if attribute else str(path))
    return found if found.source_file else replace(found, source_file=str(path.resolve()))


def _import(path: Path) -> ModuleType:
    name = f"_journey_projection_{uuid.uuid5(uuid.NAMESPACE_URL, str(path.resolve())).hex}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ProjectionLoadError(f"{path} is not a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except ProjectionLoadError as exc:
        sys.modules.pop(name, None)
        raise ProjectionLoadError(f"{path}: {exc}") from None
    except BaseException as exc:  # SyntaxError, ImportError, anything the module raises
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        line = _line_of(exc, path)
        raise ProjectionLoadError(f"cannot import projection file {path}{line}: "
                                  f"{type(exc).__name__}: {exc}") from None
    return module


def _line_of(exc: BaseException, path: Path) -> str:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f" (line {exc.lineno})"
    own = [f for f in traceback.extract_tb(exc.__traceback__) if same_file(f.filename, str(path))]
    return f" (line {own[-1].lineno})" if own else ""


def _check_signature(found: Projection, where: str) -> None:
    function = found.function
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):
        raise ProjectionLoadError(f"{where}: {found.name!r} is not callable") from None
    try:
        signature.bind(object(), object())
    except TypeError:
        raise ProjectionLoadError(
            f"{where}: projection {found.name!r} must be a function of (history, settings); "
            f"its signature is {function.__name__}{signature}") from None
