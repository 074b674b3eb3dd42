"""What the report commands share (settings, a root, output), apart from engine/cli/cli_reports.py so that
the forecast's commands (engine/cli/cli_forecast.py), which cli_reports.py registers, need not import it back.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from engine.config.config import ConfigError
from engine.config.settings import Settings
from engine.root import Root

__all__ = ["EXIT_USAGE", "emit", "settings_or_none", "with_root"]

EXIT_USAGE = 2


def settings_or_none(command: str) -> Settings | None:
    """The settings; None (after saying why on stderr) when the configuration is unusable."""
    try:
        return Settings.load()
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{p.path}:{p.line}:{p.col}: {p.message}", file=sys.stderr)
        print(f"csops {command}: {exc}", file=sys.stderr)
        return None


def with_root(command: str, work: Callable[[Root], Awaitable[int]]) -> int:
    """Run ``work`` with a root built from the settings; configuration and build errors exit 2."""
    from engine.wiring import BuildError

    settings = settings_or_none(command)
    if settings is None:
        return EXIT_USAGE

    async def go() -> int:
        async with Root(settings) as root:
            return await work(root)
    try:
        return asyncio.run(go())
    except (BuildError, ConfigError) as exc:
        print(f"csops {command}: {exc}", file=sys.stderr)
        return EXIT_USAGE


def emit(data: Any, fmt: str, as_text: Callable[[Any], str]) -> None:
    """Print the data as JSON or text."""
    print(json.dumps(data, indent=2) if fmt == "json" else as_text(data))
