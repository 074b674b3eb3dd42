"""The public API of ``engine`` is pinned: adding or dropping a name is a deliberate change."""

from __future__ import annotations

import importlib

import pytest

import engine

PUBLIC = {
    "RULES", "Duration", "DurationError", "FileResult", "Playbook", "Party", "Problem", "Report", "Step",
    "UsageError", "check_text", "compile_playbook", "parse_duration", "parse_party", "validate_paths", "version_of",
}


def test_exported_members() -> None:
    assert set(engine.__all__) == PUBLIC
    for name in engine.__all__:
        member = getattr(engine, name)
        if hasattr(member, "__module__"):
            assert member.__module__.startswith("engine."), name


SUBPACKAGES: dict[str, set[str]] = {
    "language": {
        "ACTIVITY_SECONDS", "COVERAGE_NAMES", "ContractMilestone", "Coverage", "CoverageError", "Document",
        "Duration", "DurationError", "EventTrigger", "FileResult", "HealthDrop", "Hook", "LifecycleChange",
        "Manual", "NewUsage", "NextInPool", "Party", "Path", "Playbook", "Problem", "RULES", "Report", "Schedule",
        "Step", "Trigger", "UsageError", "Walker", "as_datetime", "as_text", "business_days_fn", "check_document",
        "check_text", "colour_verdicts", "compile_playbook", "count", "describe", "evaluate", "expand", "green",
        "load", "load_coverage", "load_schema", "make", "money", "parse_duration", "parse_party", "read", "red",
        "render", "render_json", "resolve", "schema_file", "to_eval", "validate_paths", "version_of",
        "walk_top_level", "yellow",
    },
    "config": {
        "BuiltinCRMConfig", "CRMConfig", "CalendarConfig", "ChatConfig", "Config", "ConfigError", "DEFAULT_CONFIG",
        "EmailConfig", "HubSpotConfig", "MarketingCap", "NAME", "OutboxChatConfig", "OutboxEmailConfig",
        "SMTPConfig", "SMTP_PORTS", "SalesforceConfig", "ScanConfig", "Settings", "SlackConfig", "Stack",
        "StoreConfig", "TemporalConfig", "UnsubscribeConfig", "WEEKDAYS", "WebhooksConfig", "alive",
        "hide_password", "load_config", "parse_config", "read_stack", "remove_stack", "write_stack",
    },
    "store": {
        "API_WRITE_WAIT", "AuditRow", "DecisionRecord", "ENDED_STATUSES", "EventLike", "EventRecord",
        "FIRST_RETRY", "FactTables", "HealthRow", "LEASE", "MAX_ATTEMPTS", "MAX_DETAIL", "MAX_ERROR",
        "RequeueOutcome", "RunRecord", "RunRow", "RunSummary", "RunTables", "Store", "USE_KINDS", "commit_then",
        "retry_delay",
    },
    "payloads": {
        "AlertInput", "ContextInput", "EmailInput", "Event", "HttpInput", "NoteInput", "OpenTask", "Recipient",
        "RunInput", "RunOutcome", "RunState", "RunStatus", "StartInput", "StepOutcome", "StepResult", "StepScope",
        "TaskChangeInput", "TaskInput", "UpdateInput", "account_data", "contact_data", "full_context", "guard",
        "read_view", "run_id_for", "scoped_context", "user_data", "view_data", "view_of",
    },
    "triggers": {
        "COLUMNS", "Check", "Decision", "Door", "EventSignal", "Facts", "ImportReport", "IngestResult", "Ingestor",
        "ManualStart", "SEPARATORS", "Scan", "SignalRun", "Start", "StartRefused", "decide", "explain",
        "explain_account", "facts_for", "find_due", "import_csv", "lookup", "milestone_playbooks", "parse_delimiter",
        "parse_event", "probe_trigger", "start_by_hand", "start_from_step", "today_of", "validate_event",
    },
    "runtime": {
        "DailyScan", "EFFECTS", "PlaybookActivities", "PlaybookRun", "RETRY", "ScanActivities", "ScheduleTick",
        "TIMEOUT", "TemporalWorkflows", "begin_run", "cancel_run", "connect", "ensure_schedule", "is_running",
        "load_playbooks", "outage", "redacting", "refresh", "refreshed", "run_detail", "sandbox_runner", "start_run",
        "temporal_signaller", "temporal_starter",
    },
    "sim": {
        "CalendarError", "PlaybookError", "SimulationError", "TriggerEventError", "find_playbook", "layered",
        "load_calendar_file", "load_playbook", "parse_start", "read_trigger_event", "run_tests", "simulate",
    },
    "api": {
        "ApiError", "Authorised", "Credentials", "Deps", "ERRORS", "ErrorDetail", "ErrorOut", "EventResultOut",
        "EventsOut", "HealthOut", "Ingesting", "MAX_BATCH", "PROCESS_IDLE", "Suppressor", "UnsubscribeOut",
        "Unsubscriber", "authorised", "create_app", "deps", "error_response", "errors", "event_body_schema",
        "event_components", "parse_events", "read_body",
    },
    "health": {
        "BUCKETS", "Bands", "Bucket", "HEALTH_NAMES", "HealthModel", "Line", "Measure", "Missing", "Override", "RULES",
        "Range", "SCHEMA_FILE", "Score", "Source", "Threshold", "check_health", "health_beside", "load_health",
        "parse_health", "points", "score", "trend", "weights_for",
    },
    "reports": {
        "Completed", "TOLERANCE", "TaskClosed", "UnknownTask", "complete_task", "flag", "list_tasks",
        "playbook_report", "refresh_open_runs", "workload_report",
    },
    "sources": {
        "Delivery", "GenericMap", "GenericSignature", "KINDS", "Mapped", "Refused", "SourceConfig", "VENDORS",
        "Vendor", "parse_sources",
    },
    "api.console": {"PREFIX", "install"},
    "cli": {
        "TALKS_TO_TEMPORAL", "cmd_check_config", "cmd_start", "cmd_up", "cmd_validate", "load_settings", "main",
        "run", "temporal_binary",
    },
}


@pytest.mark.parametrize("name", sorted(SUBPACKAGES))
def test_each_subpackage_exports_exactly_its_pinned_names(name: str) -> None:
    package = importlib.import_module(f"engine.{name}")
    assert set(package.__all__) == SUBPACKAGES[name]
    assert len(package.__all__) == len(set(package.__all__)), "a name listed twice"
    for member in package.__all__:
        assert hasattr(package, member), member
