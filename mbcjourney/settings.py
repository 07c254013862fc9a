"""The entry points' settings: where the embedded database is.

The clinical settings live with the projections that read them
(:mod:`mbcjourney.projections.settings`); they are re-exported here so that
``from mbcjourney.settings import ClinicalSettings`` goes on working.
"""

from __future__ import annotations

import os

from mbcjourney.projections.settings import DEFAULT_CLINICAL, ClinicalSettings, problems

__all__ = ["DEFAULT_CLINICAL", "DEFAULT_DB_URL", "ClinicalSettings", "database_url", "problems"]

DEFAULT_DB_URL = "sqlite:///journey.db"


def database_url(explicit: str | None = None) -> str:
    """``--db`` wins, then ``JOURNEY_DB``, then ``sqlite:///journey.db`` in the working folder."""
    return explicit or os.environ.get("JOURNEY_DB") or DEFAULT_DB_URL
