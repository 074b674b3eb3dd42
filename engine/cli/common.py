"""What every csops subcommand shares: reading the settings, saying plainly why they are unusable.

Its own module so the subcommand modules (cli_events, cli_runs, cli_import) and the argparse
builder (main) all use it without importing one another.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.config.settings import Settings

TALKS_TO_TEMPORAL = frozenset({"start", "event send", "event import", "runs"})
"""The commands that say which Temporal they use when it is not the default (stderr)."""


def load_settings(command: str, config_file: str = "") -> Settings | None:
    """Settings from the environment and the config file; None (after saying why) when the file is unusable."""
    from engine.config.config import ConfigError
    from engine.config.settings import Settings

    try:
        settings = Settings.load(config_file=config_file)
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{p.path}:{p.line}:{p.col}: {p.message}" + (f" (hint: {p.hint})" if p.hint else ""),
                  file=sys.stderr)
        print(f"csops {command}: {exc} (csops check-config says more)" if exc.problems else f"csops {command}: {exc}",
              file=sys.stderr)
        return None
    if command in TALKS_TO_TEMPORAL and settings.temporal_from:
        api = f", API {settings.stack.api_url}" if settings.stack and settings.stack.api_url else ""
        print(f"csops {command}: using Temporal at {settings.temporal_address}{api} (from {settings.temporal_from})",
              file=sys.stderr)
    return settings
