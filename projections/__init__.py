"""Pure projections: deterministic folds of one patient's sorted history.

Nothing here imports SQLAlchemy, Kafka or faust, or reads a clock; "now",
the data cut-off and the "known at" instant are arguments.
"""

from mbcjourney.projections.history import EVERYTHING, PatientHistory, View, build_history
from mbcjourney.projections.journey import Journey, LineRow, PatientRow, project_journey

__all__ = [
    "EVERYTHING",
    "Journey",
    "LineRow",
    "PatientHistory",
    "PatientRow",
    "View",
    "build_history",
    "project_journey",
]
