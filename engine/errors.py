"""The engine's one error root: every error the engine raises on purpose is a ``CsopsError``.

A caller that wants "any csops error, shown as one clear line" catches ``CsopsError``. Errors say
what went wrong in the engine's words, never as an HTTP status: the API maps them to statuses at
its boundary only (engine/api/api_errors.py: ``Refusal`` and ``BodyError``; the routes map the
others they catch), the CLI to exit codes. A function the CLI shares with the API
(engine/runtime/runcontrol.py, engine/triggers/explainaccount.py, engine/api/api_body.py) raises
these, never the API's own ``ApiError``. Errors that also read as a ``ValueError`` (a bad value in
user input) keep that base too, so existing ``except ValueError`` callers keep working. The tree
(module where each is defined; tests/unit/test_errors.py checks it against the code)::

    CsopsError                    engine.errors
    ├── TemporaryOutage           engine.errors                (Temporal unreachable: retry, never give up)
    ├── Refusal                   engine.errors                (a request turned down: code, message, details)
    │   ├── NotFound              engine.errors                (no such run, account, playbook; the API: 404)
    │   ├── Conflict              engine.errors                (not in this state, e.g. the run ended; 409)
    │   └── Unavailable           engine.errors                (Temporal or the CRM unreachable or not set up; 503)
    ├── UsageError                engine.language.validate     (bad arguments, missing files)
    ├── DurationError             engine.language.durations    (also ValueError)
    ├── LimitExceeded             engine.language.sizes        (also ValueError)
    │   └── BusinessDaysTooFar    engine.language.workcalendar (also CalendarError)
    ├── CalendarError             engine.language.workcalendar (also ValueError)
    ├── CoverageError             engine.language.coverage_resolve
    ├── ConfigError               engine.config.config         (csops.yaml)
    ├── StartRefused              engine.triggers.door         (code says which rule; the API maps it)
    ├── MatchTimeout              engine.triggers.matchproc
    ├── ImportFileError           engine.triggers.csvread
    ├── Bad                       engine.triggers.csvcells     (one CSV cell; csvimport reports it per row)
    ├── BuildError                engine.wiring                (connectors from csops.yaml)
    ├── SimulationError           engine.sim.simulate
    ├── PlaybookError             engine.sim.simplaybooks      (also ValueError)
    ├── CalendarError             engine.sim.simcalendar       (a simulation's calendar file; also ValueError)
    ├── TriggerEventError         engine.sim.simtrigger        (also ValueError)
    ├── SeedError                 engine.sim.recording         (also ValueError)
    ├── BodyError                 engine.api.api_body          (a JSON body; the API maps its code to 400/413/415/422)
    ├── ApiError                  engine.api.deps              (an HTTP answer: raised by routes only)
    ├── UpError                   engine.cli.up                (csops up)
    ├── Refused                   engine.sources.base          (a webhook delivery turned down; the API maps its code)
    ├── UnknownTask               engine.reports.inbox         (also LookupError)
    ├── TaskClosed                engine.reports.inbox         (also ValueError)
    ├── BacktestError             engine.health.backtest
    ├── SignInNeeded              engine.api.console.web       (the console shows the sign-in page)
    └── Forbidden                 engine.api.console.web       (the console shows a 403 page)

Deliberately outside the tree (so an ``except CsopsError`` never swallows them)::

    ConnectorError                connectors.base              (connectors never import the engine)
    ├── RetryableError            connectors.base              (the activity retries)
    └── PermanentError            connectors.base              (the step fails at once)
        ├── TokenRefused          connectors.hubspot_http
        ├── RefusedError          connectors.netguard
        └── AuthError             connectors.salesforce_errors
    RunEnd                        engine.runtime.runbase       (how a run ends: raised and caught in PlaybookRun)
    StepFailed                    engine.runtime.runbase       (a step failed: caught in PlaybookRun)

Exceptions with a private name (``_TooBig``...) never leave their module.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Conflict", "CsopsError", "NotFound", "Refusal", "TemporaryOutage", "Unavailable"]


class CsopsError(Exception):
    """The root of every error the engine raises on purpose."""


class TemporaryOutage(CsopsError):
    """A service the engine needs (Temporal) is unreachable for now; the work is retried without limit."""


class Refusal(CsopsError):
    """A request the engine turns down: ``code`` a machine id (``unknown_run``), ``message`` in plain words.

    The CLI prints the message; the API answers ``{"error": {code, message, details}}`` with the
    status of the subclass (engine/api/api_errors.py).
    """

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


class NotFound(Refusal):
    """What the request names does not exist: a run, an account, a playbook."""


class Conflict(Refusal):
    """The request does not fit the current state, e.g. cancelling a run that has ended."""


class Unavailable(Refusal):
    """A backend the request needs (Temporal, the CRM) cannot be reached or is not configured here."""
