"""What the report commands share (a root built from the settings, output), apart from
engine/cli/cli_reports.py so that the forecast's commands (engine/cli/cli_forecast.py), which
cli_reports.py registers, need not import it back. The settings are read as every command reads them
(engine/cli/common.py ``load_settings``), with its plain lines (no hints, no pointer to check-config).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any

from engine.cli.common import load_settings
from engine.config.config import ConfigError
from engine.root import Root

__all__ = ["EXIT_USAGE", "emit", "with_root"]

EXIT_USAGE = 2


def with_root(command: str, work: Callable[[Root], Awaitable[int]]) -> int:
    """Run ``work`` with a root built from the settings; configuration and build errors exit 2."""
    from engine.wiring import BuildError

    settings = load_settings(command, pointers=False)
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
