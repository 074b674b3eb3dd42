"""The store: the SQL tables (store_models) and the Store class over them.
"""

from engine.store.store import (
    API_WRITE_WAIT,
    FIRST_RETRY,
    LEASE,
    MAX_ATTEMPTS,
    MAX_ERROR,
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
    "FIRST_RETRY",
    "LEASE",
    "MAX_ATTEMPTS",
    "MAX_ERROR",
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
