"""``POST /v1/runs``: a person starts a playbook for an account over the API, as ``csops start`` does.

Both go through engine/triggers/door.py's ``start_by_hand``: the playbook needs a ``manual`` trigger, and the
audience, one active run, the entry key and the cooldown apply; ``force`` with a ``reason`` passes
the rules that allow it. docs/api.md documents the answers.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from temporalio.service import RPCError

from engine.api.deps import ApiError, Authorised, errors

router = APIRouter(prefix="/v1")

STATUS = {"unknown_playbook": 404, "unknown_account": 404, "reason_required": 422}
"""HTTP status of each refusal that is not a rule saying no (those answer 409)."""


class StartIn(BaseModel):
    """Start ``playbook`` for ``account_id``."""

    playbook: str = Field(min_length=1, max_length=200, description="The playbook id")
    account_id: str = Field(min_length=1, max_length=200, description="The account id in the CRM")
    occurrence: str = Field(default="", max_length=200,
                            description="Occurrence key; when given it wins over the playbook's entry.key")
    force: bool = Field(default=False, description="Start past the audience, cooldown, an expression error or a "
                                                   "missing manual trigger (never past an active run, a used "
                                                   "occurrence key or a disabled playbook); needs reason")
    reason: str = Field(default="", max_length=1000, description="Why it is forced: recorded with the decision "
                                                                 "and in the run's trigger.forced")
    by: str = Field(default="", max_length=200, description="Who starts it, for the record (default: api)")


class StartOut(BaseModel):
    """The run was started."""

    outcome: str = Field(description="started")
    run_id: str = Field(description="The run's id: GET /v1/runs/{run_id} shows it")
    reason: str = Field(description="started, or forced for a forced start")
    message: str = Field(description="The decision in plain words (a forced start says what it passed and why)")


@router.post("/runs", response_model=StartOut, status_code=201, tags=["runs"],
             summary="Start a playbook for an account (a manual trigger)",
             responses=errors(400, 401, 404, 409, 422, 503))
async def post_run(body: StartIn, d: Authorised) -> Any:
    from engine.triggers.door import StartRefused, start_by_hand

    if d.door is None:
        raise ApiError(503, "starts_unavailable", "starting runs is not configured here (no CRM or Temporal)")
    try:
        done = await start_by_hand(d.door, body.playbook, body.account_id, by=body.by.strip() or "api",
                                   occurrence=body.occurrence, force=body.force, reason=body.reason, via="api")
    except StartRefused as exc:
        details: dict[str, Any] = {"reason": exc.code}
        if exc.enrolment is not None:
            details.update(outcome=exc.enrolment.outcome, run_id=exc.enrolment.decision.run_id)
        code = exc.code if exc.code in STATUS or exc.code == "no_manual_trigger" else "start_suppressed"
        raise ApiError(STATUS.get(exc.code, 409), code, exc.message, details) from None
    except (RuntimeError, RPCError) as exc:  # "Failed client connect", or Temporal refused: recorded as failed
        raise ApiError(503, "temporal_unavailable", f"Temporal cannot be reached: {exc}") from None
    return JSONResponse(StartOut(outcome=done.outcome, run_id=done.decision.run_id, reason=done.decision.reason,
                                 message=done.message).model_dump(), status_code=201)
