"""The playbook language: YAML with positions, the schema walker and checks, expressions and their
sandbox, the model and compiler, validation, coverage and calendars. Pure: no temporalio, FastAPI or
SQLAlchemy, nothing above it.
"""

from engine.language.compiler import (
    compile_playbook,
    version_of,
)
from engine.language.context import (
    as_datetime,
    business_days_fn,
    evaluate,
    render,
    render_json,
    to_eval,
)
from engine.language.coverage import (
    Coverage,
    load_coverage,
)
from engine.language.coverage_resolve import (
    CoverageError,
    NextInPool,
    resolve,
)
from engine.language.durations import (
    Duration,
    DurationError,
    parse_duration,
)
from engine.language.model import (
    ContractMilestone,
    EventTrigger,
    HealthDrop,
    LifecycleChange,
    Manual,
    NewUsage,
    Playbook,
    Schedule,
    Step,
    Trigger,
)
from engine.language.parties import (
    Party,
    parse_party,
)
from engine.language.problems import (
    RULES,
    Problem,
    make,
)
from engine.language.report import (
    as_text,
)
from engine.language.schemafiles import (
    schema_file,
)
from engine.language.sizes import (
    ACTIVITY_SECONDS,
)
from engine.language.structure import (
    Hook,
    Walker,
    describe,
    load_schema,
    walk_top_level,
)
from engine.language.textfmt import (
    colour_verdicts,
    count,
    green,
    money,
    red,
    yellow,
)
from engine.language.validate import (
    COVERAGE_NAMES,
    FileResult,
    Report,
    UsageError,
    check_document,
    check_text,
    expand,
    validate_paths,
)
from engine.language.yamlpos import (
    Document,
    Path,
    load,
    read,
)

__all__ = [
    "ACTIVITY_SECONDS",
    "COVERAGE_NAMES",
    "RULES",
    "ContractMilestone",
    "Coverage",
    "CoverageError",
    "Document",
    "Duration",
    "DurationError",
    "EventTrigger",
    "FileResult",
    "HealthDrop",
    "Hook",
    "LifecycleChange",
    "Manual",
    "NewUsage",
    "NextInPool",
    "Party",
    "Path",
    "Playbook",
    "Problem",
    "Report",
    "Schedule",
    "Step",
    "Trigger",
    "UsageError",
    "Walker",
    "as_datetime",
    "as_text",
    "business_days_fn",
    "check_document",
    "check_text",
    "colour_verdicts",
    "compile_playbook",
    "count",
    "describe",
    "evaluate",
    "expand",
    "green",
    "load",
    "load_coverage",
    "load_schema",
    "make",
    "money",
    "parse_duration",
    "parse_party",
    "read",
    "red",
    "render",
    "render_json",
    "resolve",
    "schema_file",
    "to_eval",
    "validate_paths",
    "version_of",
    "walk_top_level",
    "yellow",
]
