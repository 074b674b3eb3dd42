"""The web console: the runs, accounts, playbooks, tasks and decisions of csops, for people, in a browser.

Served by the API process under ``/console`` (engine/api/app.py calls :func:`install`); server-rendered
HTML (Jinja2) with a little optional JavaScript, everything served from this package. Nothing is
shown before sign-in: per-person passwords (users in the store, ``csops console user add``) or,
behind an identity proxy, a trusted header (off by default). docs/console.md is the user's guide.

The console's tables and its users and sessions live in the store (engine/store/console_models.py,
engine/store/console_auth.py), ``csops console ...`` in engine/cli/cli_console.py.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from engine.api.console.web import ConsoleConfig

__all__ = ["PREFIX", "install"]

PREFIX = "/console"
"""Where the console is served on the API's address."""


def install(app: FastAPI, config: ConsoleConfig | None = None) -> None:
    """Serve the console on ``app`` under ``/console`` (settings from CSOPS_CONSOLE_* when ``config`` is None)."""
    from engine.api.console.routes import mount

    mount(app, config)

