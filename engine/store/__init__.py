"""The store: the SQL tables (store_models) and the Store class over them.
"""

from engine.store.facts import (
    USE_KINDS,
    FactTables,
)
from engine.store.runstore import (
    ENDED_STATUSES,
    MAX_DETAIL,
    RunSummary,
    RunTables,
    commit_then,
)
from engine.store.store import (
    API_WRITE_WAIT,
    FIRST_RETRY,
    LEASE,
    MAX_ATTEMPTS,
    MAX_ERROR,
    EventLike,
    RequeueOutcome,
    Store,
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
    "FactTables",
    "HealthRow",
    "RequeueOutcome",
    "RunRecord",
    "RunRow",
    "RunSummary",
    "RunTables",
    "Store",
    "commit_then",
    "retry_delay",
]
