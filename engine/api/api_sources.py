"""``POST /v1/sources/{name}``: a vendor's webhook in, verified, mapped, ingested.

No bearer token: the vendor cannot send one, so the delivery's signature (or shared secret) is the
proof, checked before the body is parsed. The configured sources are ``app.state.sources`` (name →
SourceConfig; ``csops api`` sets them from csops.yaml). Answers (docs/sources.md):

- 202 ``accepted`` / ``duplicate`` (the vendor's event id was stored before: nothing happens twice)
  / ``ignored`` (a type csops does not map, or no account in the payload: the vendor need not retry);
  an account the CRM does not have is stored like any event and listed in ``unknown_accounts``.
- 401 not verified (a missing or wrong signature, a stale timestamp): nothing stored.
- 404 no source by that name; 400 a body that is not JSON; 413 too large; 422 not the vendor's shape.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from engine.api.api_body import read_body
from engine.api.api_errors import SOURCE_STATUS
from engine.api.deps import ApiError, deps, errors
from engine.config.sourceconfig import SourceConfig
from engine.sources.base import Delivery, Refused
from engine.sources.registry import VENDORS

__all__ = ["router"]

log = logging.getLogger("csops.sources")
router = APIRouter(prefix="/v1")


def _source(request: Request, name: str) -> SourceConfig:
    sources: Mapping[str, SourceConfig] = getattr(request.app.state, "sources", None) or {}
    cfg = sources.get(name)
    if cfg is None or cfg.kind not in VENDORS:
        raise ApiError(404, "unknown_source", f"there is no source named {name!r:.80} here; sources are configured "
                       f"under sources: in csops.yaml ({', '.join(sorted(sources)) or 'none configured'})")
    return cfg


@router.post("/sources/{name}", status_code=202, tags=["sources"],
             summary="Receive a vendor's webhook (Stripe, Zendesk, ...); its signature is the proof, no bearer token",
             responses=errors(400, 401, 404, 413, 422))
async def receive(name: str, request: Request) -> JSONResponse:
    cfg = _source(request, name)
    d = deps(request)
    vendor = VENDORS[cfg.kind]
    body = await read_body(request)
    now = d.now() if callable(d.now) else datetime.now(UTC)
    delivery = Delivery(body=body, headers={k.lower(): v for k, v in request.headers.items()},
                        query=dict(request.query_params), now=now)
    try:
        vendor.verify(cfg, delivery)
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Refused("malformed_json", "the body is not valid JSON") from None
        except RecursionError:  # nested deeper than the parser goes: no vendor sends that
            raise Refused("malformed_json", "the body's JSON is nested too deeply") from None
        mapped = vendor.map(cfg, payload, now)
    except Refused as exc:  # the engine's words become HTTP here
        log.warning("source %s: delivery refused (%s): %s", cfg.name, exc.code, exc.message)
        http = SOURCE_STATUS[exc.code]
        headers = {"WWW-Authenticate": f'Signature realm="csops source {cfg.name}"'} if http == 401 else None
        raise ApiError(http, exc.code, exc.message, headers=headers) from None
    if not mapped.events:
        return JSONResponse({"source": cfg.name, "status": "ignored", "reason": mapped.ignored, "events": [],
                             "unknown_accounts": []}, status_code=202)
    results = await d.ingestor.ingest(list(mapped.events))
    done = [{"id": r.id, "type": e["type"], "account_id": e["account_id"], "status": r.status,
             "errors": list(r.errors)} for r, e in zip(results, mapped.events, strict=True)]
    if any(r["status"] == "rejected" for r in done):
        raise ApiError(422, "invalid_events", "the delivery maps to an event csops cannot take: "
                       + "; ".join(e for r in done for e in r["errors"]), {"events": done})
    status = "duplicate" if all(r["status"] == "duplicate" for r in done) else "accepted"
    return JSONResponse({"source": cfg.name, "status": status, "reason": "", "events": done,
                         "unknown_accounts": list(dict.fromkeys(
                             r["account_id"] for r in done if r["status"] == "unknown_account"))}, status_code=202)

