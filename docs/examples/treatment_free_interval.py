"""Treatment-free interval between consecutive lines: one row per pair of lines.

Study question.  How long do patients stay off treatment between one line and
the next (a classic marker of endocrine sensitivity, and a covariate of
treatment-response models)?

Lines are the engine's own (numbered in clinical order; a line ends at
``line.ended``, the next line's start, or death).  The interval runs from the
end of line k to the start of line k+1, in days; 0 when line k only ended
because line k+1 started.

    journey replay --source cohort.jsonl --into sqlite:///analysis.db \\
        --projection docs/examples/treatment_free_interval.py
    journey projections export treatment_free_interval 1 --db sqlite:///analysis.db
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from itertools import pairwise

from mbcjourney.analyst import ClinicalSettings, Column, PatientHistory, lines, projection


@projection("treatment_free_interval", columns=[
    Column("from_line", int, key=True),
    Column("to_line", int, nullable=False),
    Column("from_regimen", str, nullable=False),
    Column("to_regimen", str, nullable=False),
    Column("end_reason", str),  # line.ended reason, or next_line
    Column("end_date", date, nullable=False),
    Column("next_start", date, nullable=False),
    Column("tfi_days", int, nullable=False),
])
def treatment_free_interval(history: PatientHistory, settings: ClinicalSettings
                            ) -> Iterator[tuple[object, ...]]:
    derived = lines(history)
    for line, following in pairwise(derived):
        end = line.end if line.end is not None else following.start
        yield (line.number, following.number, line.regimen, following.regimen, line.end_reason,
               end, following.start, (following.start - end).days)
