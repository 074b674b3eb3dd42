"""The Temporal runtime: the PlaybookRun workflow and its activities, the starter, the one Temporal
adapter (run statuses, the start and signal callables), the scan workflow and the run record.
"""

from engine.runtime.activities import (
    PlaybookActivities,
)
from engine.runtime.redaction import (
    redacting,
)
from engine.runtime.runbase import (
    RETRY,
    TIMEOUT,
)
from engine.runtime.runcontrol import (
    TemporalWorkflows,
    cancel_run,
    refreshed,
    run_detail,
)
from engine.runtime.runrecord import (
    is_running,
    refresh,
)
from engine.runtime.scanflow import (
    DailyScan,
    ScanActivities,
    ScheduleTick,
    ensure_schedule,
)
from engine.runtime.starter import (
    begin_run,
    connect,
    load_playbooks,
    start_run,
)
from engine.runtime.temporal import (
    outage,
    temporal_signaller,
    temporal_starter,
)
from engine.runtime.workflow import (
    EFFECTS,
    PlaybookRun,
    sandbox_runner,
)

__all__ = [
    "EFFECTS",
    "RETRY",
    "TIMEOUT",
    "DailyScan",
    "PlaybookActivities",
    "PlaybookRun",
    "ScanActivities",
    "ScheduleTick",
    "TemporalWorkflows",
    "begin_run",
    "cancel_run",
    "connect",
    "ensure_schedule",
    "is_running",
    "load_playbooks",
    "outage",
    "redacting",
    "refresh",
    "refreshed",
    "run_detail",
    "sandbox_runner",
    "start_run",
    "temporal_signaller",
    "temporal_starter",
]
