"""Triggers: event inputs, the matcher, enrolment, the one door into a run, ingest, scans and
CSV import. No temporalio, FastAPI or SQLAlchemy import: starting a run goes through a ``Start``
callable the composition root (engine/root.py) builds over Temporal.
"""

from engine.triggers.csvimport import (
    COLUMNS,
    ImportReport,
    import_csv,
)
from engine.triggers.csvread import (
    SEPARATORS,
    parse_delimiter,
)
from engine.triggers.door import (
    Door,
    StartRefused,
    start_by_hand,
    start_from_step,
)
from engine.triggers.enrol import (
    Start,
    facts_for,
)
from engine.triggers.explain import (
    explain,
)
from engine.triggers.explainaccount import (
    explain_account,
)
from engine.triggers.ingest import (
    Ingestor,
    SignalRun,
)
from engine.triggers.ingest_facts import (
    parse_event,
    validate_event,
)
from engine.triggers.ingest_notes import (
    IngestResult,
)
from engine.triggers.matcher import (
    decide,
    probe_trigger,
    today_of,
)
from engine.triggers.scan import (
    find_due,
    milestone_playbooks,
)
from engine.triggers.signals import (
    Check,
    Decision,
    EventSignal,
    Facts,
    ManualStart,
    Scan,
    lookup,
)

__all__ = [
    "COLUMNS",
    "SEPARATORS",
    "Check",
    "Decision",
    "Door",
    "EventSignal",
    "Facts",
    "ImportReport",
    "IngestResult",
    "Ingestor",
    "ManualStart",
    "Scan",
    "SignalRun",
    "Start",
    "StartRefused",
    "decide",
    "explain",
    "explain_account",
    "facts_for",
    "find_due",
    "import_csv",
    "lookup",
    "milestone_playbooks",
    "parse_delimiter",
    "parse_event",
    "probe_trigger",
    "start_by_hand",
    "start_from_step",
    "today_of",
    "validate_event",
]
