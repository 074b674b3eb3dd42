"""The playbook engine: subpackages by concern (docs/architecture.md); this top level re-exports the
language's main entry points."""

from engine import shims
from engine.language.compiler import compile_playbook, version_of
from engine.language.durations import Duration, DurationError, parse_duration
from engine.language.model import Playbook, Step
from engine.language.parties import Party, parse_party
from engine.language.problems import RULES, Problem
from engine.language.validate import FileResult, Report, UsageError, check_text, validate_paths

shims.install()

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
