"""``HOME/stack.json``: the addresses a running ``csops up`` serves, so the other commands find them.

``csops up --port 7300`` writes it once its parts are up and removes it when it stops. A file
whose process is gone (``csops up`` was killed) is stale: it is ignored, and the next ``csops up``
replaces it. ``Settings.load`` reads it when ``CSOPS_TEMPORAL_ADDRESS`` is not set.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

__all__ = ["NAME", "Stack", "alive", "read_stack", "remove_stack", "write_stack"]

NAME = "stack.json"


@dataclass(frozen=True, kw_only=True)
class Stack:
    """What one ``csops up`` serves."""

    pid: int
    """The ``csops up`` process."""
    temporal_address: str
    """host:port of the Temporal it started (or was given)."""
    api_url: str = ""
    """The HTTP API's base URL ("" when it serves none)."""
    ui_url: str = ""
    """The Temporal web UI ("" when it started no dev server)."""


def alive(pid: int) -> bool:
    """Whether a process with this id exists (one of another user counts)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_stack(home: Path, *, live_only: bool = True) -> Stack | None:
    """The stack recorded under ``home``; None when there is none, it is unreadable, or (``live_only``) stale."""
    try:
        data = json.loads((home / NAME).read_text(encoding="utf-8"))
        stack = Stack(pid=int(data["pid"]), temporal_address=str(data["temporal_address"]),
                      api_url=str(data.get("api_url", "")), ui_url=str(data.get("ui_url", "")))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return stack if alive(stack.pid) or not live_only else None


def write_stack(home: Path, stack: Stack) -> None:
    """Record ``stack`` under ``home`` (written whole, then renamed: a reader never sees half a file)."""
    home.mkdir(parents=True, exist_ok=True)
    tmp = home / f".{NAME}.{os.getpid()}"
    tmp.write_text(json.dumps(asdict(stack), indent=2) + "\n", encoding="utf-8")
    tmp.replace(home / NAME)


def remove_stack(home: Path, pid: int) -> None:
    """Remove the record if it is ``pid``'s (never another ``csops up``'s)."""
    found = read_stack(home, live_only=False)
    if found is not None and found.pid == pid:
        (home / NAME).unlink(missing_ok=True)
