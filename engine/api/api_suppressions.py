"""``/v1/suppressions``: the suppression list over the API, as ``csops suppression`` has it, audited.

GET lists the entries (who added each, when, why); POST adds an address; DELETE takes one off; GET
``/v1/suppressions/log`` shows every addition and removal with who and why. A reason is required to
add or remove, so the log always says why. The list is ``app.state.suppression_list`` (``csops api``
sets it from the composition root); without it these answer 503.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from engine.api.deps import ApiError, Authorised, errors

__all__ = ["router"]

router = APIRouter(prefix="/v1")


class SuppressIn(BaseModel):
    """Suppress ``email``."""

    email: str = Field(min_length=3, max_length=320, description="The address (any letter case)")
    reason: str = Field(min_length=1, max_length=200, description="Why: kept with the entry and in the log")
    by: str = Field(default="", max_length=200, description="Who, for the record (default: api)")


def _list(request: Request) -> Any:
    found = getattr(request.app.state, "suppression_list", None)
    if found is None:
        raise ApiError(503, "suppressions_unavailable", "the suppression list is not configured in this process")
    return found


def _entry(e: Any) -> dict[str, Any]:
    return {"email": e.email, "reason": e.reason, "created_at": e.created_at.isoformat(), "by": e.by}


@router.get("/suppressions", tags=["suppressions"], summary="The suppression list: each address, why, who, when",
            responses=errors(401, 503))
async def list_suppressions(request: Request, d: Authorised) -> JSONResponse:
    entries = await _list(request).list()
    return JSONResponse({"count": len(entries), "suppressions": [_entry(e) for e in entries]})


@router.get("/suppressions/log", tags=["suppressions"], summary="Every addition and removal, newest first",
            responses=errors(401, 503))
async def suppression_log(request: Request, d: Authorised, email: str | None = Query(default=None, max_length=320),
                          limit: int = Query(default=100, ge=1, le=1000)) -> JSONResponse:
    rows = await _list(request).log(email, limit)
    return JSONResponse({"log": [{"at": r.at.isoformat(), "action": r.action, "email": r.email, "reason": r.reason,
                                  "by": r.by} for r in rows]})


@router.post("/suppressions", tags=["suppressions"], summary="Suppress an address (201; 200 if it already was)",
             status_code=201, responses={**errors(400, 401, 422, 503), 200: {"description": "Already suppressed"}})
async def add_suppression(body: SuppressIn, request: Request, d: Authorised) -> JSONResponse:
    try:
        new = await _list(request).add(body.email, body.reason, by=body.by or "api")
    except ValueError:
        raise ApiError(422, "invalid_email", f"{body.email!r:.80} is not an email address") from None
    return JSONResponse({"email": body.email.strip().lower(), "added": new}, status_code=201 if new else 200)


@router.delete("/suppressions/{email}", tags=["suppressions"], summary="Take an address off the list (with why)",
               responses=errors(401, 404, 422, 503))
async def remove_suppression(email: str, request: Request, d: Authorised,
                             reason: str = Query(min_length=1, max_length=200, description="Why: kept in the log"),
                             by: str = Query(default="", max_length=200)) -> JSONResponse:
    if not await _list(request).remove(email, by=by or "api", reason=reason):
        raise ApiError(404, "not_suppressed", f"{email!r:.80} is not on the suppression list")
    return JSONResponse({"email": email.strip().lower(), "removed": True})
