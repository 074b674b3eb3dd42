"""What every API router shares: the dependencies, the token check, the error envelope and ApiError.

Its own module so the routers (engine/api/api_runs.py, api_start.py) and the app that mounts them
(engine/api/app.py) import it without importing one another.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Annotated, Any, Protocol

from fastapi import Depends, Request, Security
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from engine.errors import CsopsError
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.store.store import Store


class ErrorDetail(BaseModel):
    """What went wrong."""

    code: str = Field(description="Machine id: unauthorized, malformed_json, invalid_events, not_found...")
    message: str = Field(description="What is wrong and what to do, in plain words")
    details: Any = Field(default=None, description="More: per-event results, the fields at fault...")


class ErrorOut(BaseModel):
    """Every error answer."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut, "description": text} for code, text in (
        (400, "Malformed request (not JSON, a bad cursor)"), (401, "Missing or wrong bearer token"),
        (404, "No such thing"), (409, "Conflicts with the current state"), (413, "Body too large"),
        (415, "Content-Type is not JSON"), (422, "Invalid input, or over a limit; details say which"),
        (503, "A backend (the store, Temporal, the CRM) is busy or not available; Retry-After says when to retry"))}
"""The error answers, documented on every operation (each lists those it can give)."""


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The documented error answers with these status codes."""
    return {c: ERRORS[c] for c in codes}


class Ingesting(Protocol):
    """What the API needs of engine.triggers.ingest.Ingestor."""

    async def ingest(self, events: Sequence[Mapping[str, Any]]) -> Sequence[Any]:
        """Validate and store; one result (``id``, ``status``, ``errors``) per event, in order."""

    async def process_pending(self) -> Any:
        """Match stored, unprocessed events to playbooks and start runs."""

    async def run(self, *, poll: float) -> None:
        """``process_pending`` until cancelled: at once when ``ingest`` accepted events, else every ``poll`` s."""


class Unsubscriber(Protocol):
    """connectors.mailpolicy.Unsubscribe: who a token was made for."""

    def verify(self, token: str) -> str | None:
        """The address, or None for a token we did not sign."""


class Suppressor(Protocol):
    """connectors.suppression.SuppressionList."""

    async def add(self, email: str, reason: str = "", *, by: str = "") -> Any:
        """Never mail ``email`` again."""


@dataclass(kw_only=True)
class Deps:
    """What the routes use; built by ``create_app``."""

    store: Store
    """Events, runs, decisions, timelines."""
    ingestor: Ingesting
    """Validates and stores events; processes them in the background."""
    token: str | None
    """The bearer token (None: no auth, ``--insecure-dev`` only)."""
    workflows: Any = None
    """engine.runtime.runcontrol.Workflows: live status and cancel (None: Temporal not configured)."""
    crm: Any = None
    """The CRM explain reads accounts from."""
    playbooks: Callable[[], Mapping[str, Playbook]] = dict
    """The playbooks by id, read on each call (so a reload shows)."""
    calendar: Calendar = field(default_factory=Calendar)
    """Workdays and time zone for explain."""
    door: Any = None
    """engine.triggers.door.Door: POST /v1/runs starts runs through it (None: that route answers 503)."""
    unsubscribe: Unsubscriber | None = None
    """Verifies unsubscribe tokens (None: unsubscribe links not configured)."""
    suppressions: Suppressor | None = None
    """Where unsubscribed addresses go."""
    now: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    """The clock."""
    explainer: Any = None
    """engine.triggers.matchproc.MatchWorker: explain evaluates playbook conditions in its child process, with the
    matcher's time bound, so a slow one cannot freeze the API (None: on the event loop)."""

    def __repr__(self) -> str:  # the token is a secret
        return f"Deps(store={self.store!r}, token={'***' if self.token else None})"


class ApiError(CsopsError):
    """An answer other than success, rendered as ``{"error": {code, message, details}}``.

    Raised by routes only: what the CLI shares with the API raises the engine's errors
    (engine.errors), which engine/api/api_errors.py answers.
    """

    def __init__(self, status: int, code: str, message: str, details: Any = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details
        self.headers = dict(headers or {})


def error_response(status: int, code: str, message: str, details: Any = None,
                   headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The error envelope."""
    return JSONResponse({"error": {"code": code, "message": message, "details": details}}, status_code=status,
                        headers=dict(headers or {}))


_bearer = HTTPBearer(auto_error=False, description="CSOPS_API_TOKEN")


def deps(request: Request) -> Deps:
    """The app's dependencies."""
    found: Deps = request.app.state.deps
    return found


Credentials = Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)]


async def authorised(request: Request, creds: Credentials) -> Deps:
    """The dependencies, once the bearer token checks out (401 otherwise)."""
    d = deps(request)
    if d.token is None:
        return d
    challenge = {"WWW-Authenticate": 'Bearer realm="csops"'}
    if creds is None:
        raise ApiError(401, "unauthorized", "send the API token as 'Authorization: Bearer <token>' "
                       "(the value of CSOPS_API_TOKEN)", headers=challenge)
    # Constant time, so the token cannot be guessed byte by byte from response times.
    if not hmac.compare_digest(creds.credentials.encode("utf-8"), d.token.encode("utf-8")):
        raise ApiError(401, "unauthorized", "the API token is wrong: use the value of CSOPS_API_TOKEN",
                       headers={"WWW-Authenticate": 'Bearer realm="csops", error="invalid_token"'})
    return d


Authorised = Annotated[Deps, Depends(authorised)]
"""A route parameter: the dependencies, after the token check."""
