"""The public API of ``engine`` is pinned: adding or dropping a name is a deliberate change."""

from __future__ import annotations

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
