"""Live alerting: overdue windows raised and resolved as the workers project patients.

One job per module: :mod:`.config` (``journey worker --alerts`` options, the
clock), :mod:`.tables` (the ``alerts`` and ``alert_patients`` tables and their
rows), :mod:`.live` (evaluation against the projection store: per patient and on
a timer, the outbox; its docstring tells how), :mod:`.emitter` (publishing to
``mbc.alerts``).  Delivery to people is :mod:`mbcjourney.processors.webhook`, what
coordinators did with alerts :mod:`mbcjourney.processors.alert_actions`, the
worker's assembly :mod:`mbcjourney.processors.alerting_live`.
"""

from mbcjourney.processors.alerting.config import (
    ALERTS_TOPIC,
    DEFAULT_INTERVAL_S,
    AlertConfig,
    Clock,
    system_clock,
)
from mbcjourney.processors.alerting.emitter import Emitter, KafkaEmitter
from mbcjourney.processors.alerting.live import (
    FLUSH_BATCH,
    FULL_SWEEP_TICKS,
    MAX_MARKS,
    Changes,
    Delivery,
    LiveAlerts,
    Progress,
    TickStats,
)
from mbcjourney.processors.alerting.tables import (
    OPEN,
    RESOLVED,
    AlertMessage,
    AlertRecord,
    AlertTables,
)

__all__ = [
    "ALERTS_TOPIC", "DEFAULT_INTERVAL_S", "FLUSH_BATCH", "FULL_SWEEP_TICKS", "MAX_MARKS", "OPEN",
    "RESOLVED", "AlertConfig", "AlertMessage", "AlertRecord", "AlertTables", "Changes", "Clock",
    "Delivery", "Emitter", "KafkaEmitter", "LiveAlerts", "Progress", "TickStats",
    "system_clock",
]
