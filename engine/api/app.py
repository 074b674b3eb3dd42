"""The HTTP API (ASGI, FastAPI): events in, runs, decisions and explain out, one-click unsubscribe.

Everything is under ``/v1`` and speaks JSON; errors are ``{"error": {"code", "message", "details"}}``
with a 4xx status for anything the caller can fix, never a 500 for bad input. Every operation but
health and unsubscribe needs ``Authorization: Bearer <CSOPS_API_TOKEN>`` (reads too: runs and
decisions name accounts). docs/api.md is the user's guide; ``/openapi.json`` the contract.

``POST /v1/events`` only validates and stores (one batch insert, idempotent by event id) and
answers 202; matching and starting runs is the ingestor's ``process_pending`` loop, started with
the app (``process``) or in another process (``csops api``'s child by default: engine/cli/apichild.py).
The queue is the store's events table, so a crash between storing and processing loses nothing:
the loop picks the events up when the app starts again.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.api.api_body import MAX_BODY, parse_json, read_body
from engine.api.api_errors import install as install_error_handlers
from engine.api.deps import (
    ERRORS,
    ApiError,
    Authorised,
    Deps,
    Ingesting,
    Suppressor,
    Unsubscriber,
    deps,
    error_response,
    errors,
)
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.schemafiles import schema_file
from engine.store.store import Store
from engine.triggers.matchproc import MatchWorker

__all__ = ["MAX_BATCH", "MAX_BODY", "ApiError", "Deps", "Ingesting", "create_app"]

log = logging.getLogger("csops.api")

MAX_BATCH = 1000
"""Most events in one POST /v1/events (the other limits are in engine/api/api_body.py)."""
PROCESS_IDLE = 1.0
"""Seconds the processing loop waits for new events before looking again (another API process or
a restart may have stored some; the ingestor wakes it at once for events it accepted)."""


class EventResultOut(BaseModel):
    """What became of one event."""

    id: str = Field(description="The event id ('' when it had none)")
    status: str = Field(description="accepted, unknown_account (stored, but the CRM has no such account: it "
                                    "starts nothing), duplicate (the id was stored before) or rejected")
    errors: list[str] = Field(description="Why it was rejected (one line per problem), or the unknown_account warning")


class EventsOut(BaseModel):
    """The answer to POST /v1/events: counts and one result per event, in the order sent."""

    accepted: int = Field(description="Stored, for an account the CRM has")
    unknown_accounts: int = Field(description="Stored, but for an account the CRM does not have (yet)")
    duplicates: int
    rejected: int
    results: list[EventResultOut]


class ProcessingOut(BaseModel):
    """Where the events this API stores are processed, and how that goes."""

    mode: str = Field(description="child (csops api's processing child, the default), in-process (this process) or "
                                  "none (another process: csops process)")
    running: bool = Field(description="Whether the processing runs now (a child that died is restarted after 1 s, "
                                      "doubling up to a minute while new ones keep dying young)")
    restarts: int = Field(description="How many times a processing child that died was replaced (0 otherwise)")
    last_exit: int | None = Field(description="The exit status of the last processing child that died (negative: the "
                                              "signal that ended it); null when none did")


class HealthOut(BaseModel):
    """The API is up."""

    status: str
    processing: ProcessingOut


class UnsubscribeOut(BaseModel):
    """The address will get no more marketing email."""

    unsubscribed: bool


def event_components() -> dict[str, Any]:
    """schemas/event.schema.json as OpenAPI components: ``Event`` and its ``$defs`` as ``Event_<name>``."""
    path = schema_file("event.schema.json")
    try:
        schema: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"Event": {"type": "object"}}
    text = json.dumps({k: v for k, v in schema.items() if k not in ("$schema", "$id")})
    moved = json.loads(text.replace('"#/$defs/', '"#/components/schemas/Event_'))
    defs = moved.pop("$defs", {})
    return {"Event": moved, **{f"Event_{name}": value for name, value in defs.items()}}


def event_body_schema(max_batch: int) -> dict[str, Any]:
    """The body of POST /v1/events: one event, or a batch."""
    event = {"$ref": "#/components/schemas/Event"}
    return {"oneOf": [event, {"type": "object", "required": ["events"], "additionalProperties": False,
                              "properties": {"events": {"type": "array", "items": event, "minItems": 1,
                                                        "maxItems": max_batch}}}]}


def _with_event_schema(app: FastAPI) -> None:
    """Add the event schema to the app's OpenAPI document (FastAPI does not know it: the body is read raw)."""
    plain = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = plain()
            doc.setdefault("components", {}).setdefault("schemas", {}).update(event_components())
            _add_links(doc)
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _ref(path: str, method: str) -> str:
    return "#/paths/" + path.replace("~", "~0").replace("/", "~1") + "/" + method


_LINKS: tuple[tuple[str, str, str, str, str, dict[str, Any]], ...] = (
    ("/v1/events", "post", "202", "ExplainAccount", "/v1/accounts/{account_id}/explain",
     {"operationMethod": "get", "parameters": {"account_id": "$request.body#/account_id"}}),
    ("/v1/events", "post", "202", "AccountDecisions", "/v1/decisions",
     {"operationMethod": "get", "parameters": {"account": "$request.body#/account_id"}}),
    ("/v1/events", "post", "202", "RetryEvent", "/v1/events/retry",
     {"operationMethod": "post", "requestBody": {"ids": ["$response.body#/results/0/id"]}}),
    ("/v1/events/failed", "get", "200", "RetryFailed", "/v1/events/retry",
     {"operationMethod": "post", "requestBody": {"ids": ["$response.body#/events/0/id"]}}),
)
"""OpenAPI links between the event operations: what a client (and a stateful test) can do next."""


def _add_links(doc: dict[str, Any]) -> None:
    paths = doc.get("paths", {})
    for path, method, status, name, target, spec in _LINKS:
        answer = paths.get(path, {}).get(method, {}).get("responses", {}).get(status)
        target_method = spec["operationMethod"]
        if answer is None or target_method not in paths.get(target, {}):
            continue
        link = {k: v for k, v in spec.items() if k != "operationMethod"}
        answer.setdefault("links", {})[name] = {"operationRef": _ref(target, target_method), **link}


def create_app(*, store: Store, ingestor: Ingesting, token: str | None, workflows: Any = None, crm: Any = None,
               playbooks: Callable[[], Mapping[str, Playbook]] | Mapping[str, Playbook] | None = None,
               calendar: Calendar | None = None, door: Any = None, unsubscribe: Unsubscriber | None = None,
               suppressions: Suppressor | None = None, now: Callable[[], datetime] | None = None,
               insecure: bool = False, process: bool = True,
               alongside: Callable[[], contextlib.AbstractAsyncContextManager[Any]] | None = None,
               processing: Callable[[], Mapping[str, Any]] | None = None) -> FastAPI:
    """The API app over the given parts.

    Args:
        store: The engine's store.
        ingestor: engine.triggers.ingest.Ingestor (or alike).
        token: The bearer token clients must send.
        workflows: engine.runtime.runcontrol.Workflows for live status and cancel; None: those answer 503.
        crm: The CRM explain reads accounts from; None: explain answers 503.
        playbooks: The playbooks by id, or a function giving them.
        calendar: Workdays and time zone (default: Monday to Friday, UTC).
        door: engine.triggers.door.Door for POST /v1/runs (engine/root.py builds it); None: that route answers 503.
        unsubscribe: Verifies unsubscribe tokens; None: the unsubscribe routes answer 404.
        suppressions: The suppression list unsubscribed addresses go to.
        now: The clock (default: the system's, UTC).
        insecure: Serve without a token (development on loopback only).
        process: Run the ingestor's processing loop while the app runs.
        alongside: What else runs while the app runs, entered at its startup and left at its shutdown
            (``csops api``'s event processing child: engine/cli/apichild.py).
        processing: How ``GET /v1/health`` reports the processing (``ProcessingOut``'s fields; the child's
            ``ProcessingChild.status``); None: ``in-process`` (running) with ``process``, else ``none``.

    Raises:
        ValueError: no token and not ``insecure``.
    """
    if not token and not insecure:
        raise ValueError("the API needs a token: set CSOPS_API_TOKEN to a long random value "
                         "(e.g. from `openssl rand -hex 32`), or use --insecure-dev on your own machine")
    pbs = playbooks if callable(playbooks) else (lambda: dict(playbooks or {}))
    d = Deps(store=store, ingestor=ingestor, token=token or None, workflows=workflows, crm=crm, playbooks=pbs,
             calendar=calendar or Calendar(), door=door, unsubscribe=unsubscribe, suppressions=suppressions,
             now=now or (lambda: datetime.now(UTC)), explainer=MatchWorker())

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        task = asyncio.create_task(ingestor.run(poll=PROCESS_IDLE)) if process else None
        try:
            async with alongside() if alongside is not None else contextlib.nullcontext():
                yield
        finally:
            await asyncio.to_thread(d.explainer.close)  # its child, if an explain started one
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    app = FastAPI(title="csops API", version="1", lifespan=lifespan,
                  description="Events in; runs, trigger decisions and explain out. Bearer token on every "
                              "operation except health and unsubscribe. Errors: {error: {code, message, details}}.")
    app.state.deps = d
    _handlers(app)
    install_error_handlers(app)
    here = {"mode": "in-process" if process else "none", "running": process, "restarts": 0, "last_exit": None}
    _routes(app, processing or (lambda: here))
    from engine.api.api_runs import router
    from engine.api.api_sources import router as sources_router
    from engine.api.api_start import router as start_router
    from engine.api.api_suppressions import router as suppressions_router

    app.include_router(router)
    app.include_router(start_router)
    app.include_router(sources_router)
    app.include_router(suppressions_router)
    from engine.api.api_reports import router as reports_router

    app.include_router(reports_router)
    from engine.api.api_health import router as health_router

    app.include_router(health_router)
    from engine.api.console import install as install_console

    install_console(app)  # the web console under /console (engine/api/console/, docs/console.md)
    _with_event_schema(app)
    return app


def _handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [{"where": ".".join(str(p) for p in e.get("loc", ())), "message": str(e.get("msg", ""))}
                    for e in exc.errors()]
        said = "; ".join(f"{p['where']}: {p['message']}" for p in problems)
        return error_response(422, "invalid_request", f"the request is not valid: {said}", problems)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        words = {404: ("not_found", f"there is no {request.url.path}; see /openapi.json for the routes"),
                 405: ("method_not_allowed", f"{request.method} is not allowed on {request.url.path}"),
                 400: ("malformed_json", "the body is not valid JSON; send a JSON object as the operation's "
                                         "schema in /openapi.json says")}
        code, message = words.get(exc.status_code, ("http_error", str(exc.detail)))
        return error_response(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def parse_events(body: bytes) -> list[Any]:
    """The events of a body: one event object, or ``{"events": [...]}`` (parsed off the event loop when big).

    Raises:
        BodyError: 400 for malformed JSON, 422 over a limit (engine/api/api_body.py).
        ApiError: 422 for another shape or a batch of 0 or over MAX_BATCH.
    """
    doc = await asyncio.to_thread(parse_json, body) if len(body) > 65_536 else parse_json(body)
    if not isinstance(doc, dict):
        raise ApiError(422, "invalid_body", f"the body is a JSON {_kind(doc)}; send one event object or "
                       '{"events": [...]}')
    if "events" not in doc:
        return [doc]
    events = doc["events"]
    others = sorted(k for k in doc if k != "events")
    if others:
        named = ", ".join(map(repr, others))[:200]
        raise ApiError(422, "invalid_body", f"a batch body holds only 'events', not also {named}; "
                       "send the events' fields inside each event")
    if not isinstance(events, list):
        raise ApiError(422, "invalid_body", f"'events' is a JSON {_kind(events)}; it must be an array of events")
    if not events or len(events) > MAX_BATCH:
        raise ApiError(422, "invalid_batch_size", f"a batch holds 1 to {MAX_BATCH} events, this one {len(events)}; "
                       "split it into several requests")
    return events


def _kind(value: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(value), "number")


def _routes(app: FastAPI, processing: Callable[[], Mapping[str, Any]]) -> None:
    @app.post("/v1/events", status_code=202, response_model=EventsOut, tags=["events"],
              summary="Send one event or a batch of up to 1,000",
              responses={**errors(400, 401, 413, 415, 422, 503), 202: {"description": "Per-event results"}},
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": event_body_schema(MAX_BATCH)}}}})
    async def post_events(request: Request, d: Authorised) -> Response:
        items = await parse_events(await read_body(request))
        # A locked or unreachable store raises RetryableError: 503 with Retry-After (engine/api/api_errors.py).
        answers = await d.ingestor.ingest(items)
        done = [{"id": r.id, "status": r.status, "errors": list(r.errors)} for r in answers]
        counts = Counter(r.status for r in answers)  # one pass: a batch of 1,000 is counted once, not four times
        body = {"accepted": counts["accepted"], "unknown_accounts": counts["unknown_account"],
                "duplicates": counts["duplicate"], "rejected": counts["rejected"], "results": done}
        if counts["rejected"] == len(done):
            first = done[0]["errors"][0] if done[0]["errors"] else "invalid"
            return error_response(422, "invalid_events", f"no event was accepted: {first}"
                                  + (f" (and {len(done) - 1} more rejected)" if len(done) > 1 else ""), body)
        return JSONResponse(body, status_code=202)

    @app.get("/v1/health", response_model=HealthOut, tags=["meta"],
             summary="Is the API up, and where and how its events are processed (no token needed)")
    async def health() -> HealthOut:
        return HealthOut(status="ok", processing=ProcessingOut(**processing()))

    _unsubscribe_routes(app)


def _unsubscribe_routes(app: FastAPI) -> None:
    def address(d: Deps, token: str) -> str:
        if d.unsubscribe is None or d.suppressions is None:
            raise ApiError(404, "unsubscribe_not_configured", "unsubscribe links are not configured here "
                           "(email.unsubscribe in csops.yaml)")
        email = d.unsubscribe.verify(token)
        if email is None or "@" not in email:
            raise ApiError(404, "unknown_token", "this unsubscribe link is not valid: it may be cut short or "
                           "from an older secret; reply to the email to unsubscribe instead")
        return email

    @app.post("/v1/unsubscribe/{token}", response_model=UnsubscribeOut, tags=["unsubscribe"],
              summary="One-click unsubscribe (RFC 8058); the token is the proof, no bearer token",
              responses={404: ERRORS[404]})
    async def unsubscribe(token: str, request: Request) -> UnsubscribeOut:
        d = deps(request)
        email = address(d, token)
        assert d.suppressions is not None
        # RFC 8058 clients send List-Unsubscribe=One-Click; a form button may send nothing: both unsubscribe.
        await d.suppressions.add(email, "unsubscribed", by="unsubscribe link")
        return UnsubscribeOut(unsubscribed=True)

    @app.get("/v1/unsubscribe/{token}", response_class=HTMLResponse, tags=["unsubscribe"],
             summary="The confirmation page (a GET never unsubscribes: link scanners follow links)",
             responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}},
                        404: {"description": "Not a valid link (a page saying so)",
                              "content": {"text/html": {"schema": {"type": "string"}}}}})
    async def unsubscribe_page(token: str, request: Request) -> HTMLResponse:
        try:
            address(deps(request), token)
        except ApiError as exc:  # a person reads this one: a page, not JSON
            return HTMLResponse(_PAGE_BAD.format(message=html.escape(exc.message)), status_code=404)
        return HTMLResponse(_PAGE)


_PAGE = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head><body>
<h1>Unsubscribe</h1><p>Stop receiving these emails?</p>
<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">
<button type="submit">Unsubscribe</button></form></body></html>"""
_PAGE_BAD = """<!doctype html><html><head><meta charset="utf-8"><title>Unsubscribe</title></head><body>
<h1>Unsubscribe</h1><p>{message}</p></body></html>"""

