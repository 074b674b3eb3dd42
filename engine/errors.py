"""The engine's one error root: every error the engine raises on purpose is a ``CsopsError``.

A caller that wants "any csops error, shown as one clear line" catches ``CsopsError``; the API maps
errors to HTTP statuses at its boundary only (engine/api/api_errors.py, engine/api/deps.py), the CLI to exit codes.
Errors that also read as a ``ValueError`` (a bad value in user input) keep that base too, so
existing ``except ValueError`` callers keep working. The tree (module where each is defined)::

    CsopsError
    ├── UsageError              engine.language.validate     (bad arguments, missing files)
    ├── DurationError           engine.language.durations    (also ValueError)
    ├── LimitExceeded           engine.language.sizes        (also ValueError)
    ├── CalendarError           engine.language.workcalendar (also ValueError)
    ├── CoverageError           engine.language.coverage_resolve
    ├── ConfigError             engine.config.config         (csops.yaml)
    ├── TemporaryOutage         engine.errors                (Temporal unreachable: retry, never give up)
    ├── StartRefused            engine.triggers.door
    ├── MatchTimeout            engine.triggers.matchproc
    ├── ImportFileError         engine.triggers.csvread
    ├── BuildError              engine.wiring                (connectors from csops.yaml)
    ├── SimulationError         engine.sim.simulate
    ├── PlaybookError           engine.sim.simplaybooks      (also ValueError)
    ├── CalendarError           engine.sim.simcalendar       (a simulation's calendar file; also ValueError)
    ├── TriggerEventError       engine.sim.simtrigger        (also ValueError)
    ├── SeedError               engine.sim.recording         (also ValueError)
    ├── BodyError               engine.api.api_body          (a request body)
    ├── ApiError                engine.api.deps              (carries its HTTP status; API and CLI share it)
    ├── Unavailable             engine.api.api_runs          (Temporal down while reading a run)
    └── UpError                 engine.cli.up                (csops up)

Connector errors (``connectors.base.ConnectorError``: Retryable, Permanent) are not engine errors:
connectors never import the engine.
"""

from __future__ import annotations

__all__ = ["CsopsError", "TemporaryOutage"]


class CsopsError(Exception):
    """The root of every error the engine raises on purpose."""


class TemporaryOutage(CsopsError):
    """A service the engine needs (Temporal) is unreachable for now; the work is retried without limit."""
