"""The store: the SQL tables (store_models) and the Store class over them.
"""

from engine.store.store import (
    API_WRITE_WAIT,
    ENDED_STATUSES,
    FIRST_RETRY,
    LEASE,
    MAX_ATTEMPTS,
    MAX_DETAIL,
    MAX_ERROR,
    USE_KINDS,
    EventLike,
    RequeueOutcome,
    Store,
    T,
    retry_delay,
)
from engine.store.store_models import (
    AuditRow,
    DecisionRecord,
    EventRecord,
    HealthRow,
    RunRecord,
    RunRow,
)

__all__ = [
    "API_WRITE_WAIT",
    "ENDED_STATUSES",
    "FIRST_RETRY",
    "LEASE",
    "MAX_ATTEMPTS",
    "MAX_DETAIL",
    "MAX_ERROR",
    "USE_KINDS",
    "AuditRow",
    "DecisionRecord",
    "EventLike",
    "EventRecord",
    "HealthRow",
    "RequeueOutcome",
    "RunRecord",
    "RunRow",
    "Store",
    "T",
    "retry_delay",
]
