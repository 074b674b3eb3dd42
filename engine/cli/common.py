"""What every csops subcommand shares: reading the settings, saying plainly why they are unusable.

Its own module so the subcommand modules (cli_events, cli_runs, cli_import) and the argparse
builder (main) all use it without importing one another.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config.settings import Settings

TALKS_TO_TEMPORAL = frozenset({"start", "event send", "event import", "runs"})
"""The commands that say which Temporal they use when it is not the default (stderr)."""


def load_settings(command: str, config_file: str = "", *, pointers: bool = True) -> Settings | None:
    """Settings from the environment and the config file; None (after saying why) when the file is unusable.

    ``pointers``: give each problem's hint and point to ``csops check-config`` (the report, forecast,
    tasks and suppression commands say the problems and the error only).
    """
    from engine.config.config import ConfigError
    from engine.config.settings import Settings

    try:
        settings = Settings.load(config_file=config_file)
    except ConfigError as exc:
        for p in exc.problems:
            hint = f" (hint: {p.hint})" if p.hint and pointers else ""
            print(f"{p.path}:{p.line}:{p.col}: {p.message}{hint}", file=sys.stderr)
        more = " (csops check-config says more)" if exc.problems and pointers else ""
        print(f"csops {command}: {exc}{more}", file=sys.stderr)
        return None
    if command in TALKS_TO_TEMPORAL and settings.temporal_from:
        api = f", API {settings.stack.api_url}" if settings.stack and settings.stack.api_url else ""
        print(f"csops {command}: using Temporal at {settings.temporal_address}{api} (from {settings.temporal_from})",
              file=sys.stderr)
    return settings


def unreachable(command: str, address: str, exc: BaseException) -> str:
    """What to say when Temporal cannot be reached: the OS's words, not the Rust client's whole error."""
    said = re.search(r'message: "([^"]+)"', str(exc))  # the OS's words inside the Rust client's error
    return (f"{command}: cannot reach Temporal at {address}: "
            f"{said.group(1) if said else str(exc).splitlines()[0][:300]} (is csops up running?)")
