"""The API's boundary for errors: the engine's errors become HTTP answers here, and only here.

Every route's error is the JSON envelope ``{"error": {"code", "message", "details"}}``, never
Starlette's plain-text "Internal Server Error":

- a :class:`~engine.errors.Refusal` that a function shared with the CLI raised is answered with its
  subclass's status (:data:`STATUS`: ``NotFound`` 404, ``Conflict`` 409, ``Unavailable`` 503);
- a :class:`~engine.api.api_body.BodyError` with its code's status (:data:`BODY_STATUS`), and a
  refused webhook delivery (``engine.sources.base.Refused``) likewise (:data:`SOURCE_STATUS`, by its route);
- a store that is locked or unreachable (``RetryableError`` from the database layer: SQLite's
  "database is locked" after the API's short busy timeout, a PostgreSQL lock timeout, a lost
  connection) is **503** ``store_unavailable`` with ``Retry-After``;
- anything else unexpected is **500** ``internal_error``; the traceback goes to the log only
  (it may name tables or values), the answer gives a reference to find it there.
"""

from __future__ import annotations

import json
import logging
import uuid
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from connectors.base import RetryableError
from engine.api.api_body import BodyError
from engine.errors import Conflict, NotFound, Refusal, Unavailable

__all__ = ["BODY_STATUS", "RETRY_AFTER", "SOURCE_STATUS", "STATUS", "JsonErrors", "install", "status_of",
           "unavailable"]

log = logging.getLogger("csops.api")

RETRY_AFTER = 5
"""Seconds a client is told to wait (``Retry-After``) before sending again after a 503."""


STATUS: dict[type[Refusal], int] = {NotFound: 404, Conflict: 409, Unavailable: 503}
"""The HTTP status of each kind of refusal."""
BODY_STATUS = {"malformed_json": 400, "duplicate_key": 400, "body_too_large": 413, "unsupported_media_type": 415,
               "limit_exceeded": 422}
"""The HTTP status of each BodyError code (engine.api.api_body.BODY_CODES)."""
SOURCE_STATUS = {"not_verified": 401, "bad_signature": 401, "stale_timestamp": 401, "malformed_json": 400,
                 "not_an_event": 422}
"""The HTTP status of each code of a refused webhook delivery (engine.sources.base.REFUSED_CODES; the
sources route, engine/api/api_sources.py, answers them)."""


def status_of(exc: Refusal) -> int:
    """The HTTP status of a refusal (the console answers its pages with it too); 400 for another kind."""
    return next((status for kind, status in STATUS.items() if isinstance(exc, kind)), 400)


def _envelope(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details}}


def unavailable(exc: RetryableError) -> JSONResponse:
    """503 for a store (``store_unavailable``) or another backend (``backend_unavailable``) that is busy or down."""
    wait = max(1, round(exc.retry_after)) if exc.retry_after else RETRY_AFTER
    store = str(exc).startswith("database unavailable")
    what = "the store is busy or unreachable" if store else "a backend (the CRM, Temporal) is unreachable"
    return JSONResponse(_envelope("store_unavailable" if store else "backend_unavailable",
                                  f"{what} ({exc}); send the same request again in {wait} s (events already "
                                  "stored answer duplicate)", {"retry_after": wait}),
                        status_code=503, headers={"Retry-After": str(wait)})


def install(app: FastAPI) -> None:
    """Add the refusal, body, store-outage and catch-all handlers to ``app``."""

    @app.exception_handler(Refusal)
    async def refused(request: Request, exc: Refusal) -> JSONResponse:
        return JSONResponse(_envelope(exc.code, exc.message, exc.details), status_code=status_of(exc))

    @app.exception_handler(BodyError)
    async def body_error(request: Request, exc: BodyError) -> JSONResponse:
        return JSONResponse(_envelope(exc.code, exc.message, exc.details), status_code=BODY_STATUS[exc.code])

    @app.exception_handler(RetryableError)
    async def store_down(request: Request, exc: RetryableError) -> JSONResponse:
        log.warning("%s %s: store unavailable: %s", request.method, request.url.path, exc)
        return unavailable(exc)

    app.add_middleware(JsonErrors)


class JsonErrors:
    """ASGI middleware: an exception no handler took becomes a JSON 500 (logged with a reference)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def sending(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, sending)
        except ClientDisconnect:  # the client went away mid-body: nobody to answer
            return
        except Exception:
            ref = uuid.uuid4().hex[:12]
            log.exception("%s %s failed (ref %s)", scope.get("method", ""), scope.get("path", ""), ref)
            if started:  # too late for another answer: the server closes the connection
                raise
            body = json.dumps(_envelope("internal_error", f"something went wrong on the server's side (ref {ref} in "
                                        "its log); it is not your request's fault: try again later or report it",
                                        {"ref": ref})).encode()
            await send({"type": "http.response.start", "status": 500,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
