"""The playbook engine: the language (load, validate, compile) and, later, the runtime."""

from engine.compiler import compile_playbook, version_of
from engine.durations import Duration, DurationError, parse_duration
from engine.model import Playbook, Step
from engine.parties import Party, parse_party
from engine.problems import RULES, Problem
from engine.validate import FileResult, Report, UsageError, check_text, validate_paths

__all__ = [
    "RULES",
    "Duration",
    "DurationError",
    "FileResult",
    "Party",
    "Playbook",
    "Problem",
    "Report",
    "Step",
    "UsageError",
    "check_text",
    "compile_playbook",
    "parse_duration",
    "parse_party",
    "validate_paths",
    "version_of",
]
