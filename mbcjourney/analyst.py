"""Analyst projections: the public import name of :mod:`mbcjourney.projections.analyst`.

Write a projection against this module (see that module, and
docs/analyst-projections.md)::

    from mbcjourney.analyst import Column, PatientHistory, ClinicalSettings, projection

The API is pure and lives with the projections; :func:`load_projection` (a file
from a path) lives with the processors that replay it
(:mod:`mbcjourney.processors.analyst_loader`).  Both are re-exported here.
"""

from mbcjourney.processors.analyst_loader import load_projection
from mbcjourney.projections.analyst import (
    PATIENT_ID,
    ClinicalSettings,
    Column,
    PatientHistory,
    Projection,
    ProjectionFailed,
    ProjectionLoadError,
    Row,
    erased,
    facts,
    lines,
    projection,
)

__all__ = [
    "PATIENT_ID",
    "ClinicalSettings",
    "Column",
    "PatientHistory",
    "Projection",
    "ProjectionFailed",
    "ProjectionLoadError",
    "Row",
    "erased",
    "facts",
    "lines",
    "load_projection",
    "projection",
]
