"""``GET /v1/accounts/{account_id}/health``: an account's computed health with its breakdown (docs/api.md).

The model is ``app.state.health_model`` when the app was given one, else the ``health.yaml``
beside the playbooks the API serves. 404 when the account or the model is not there, 422 when the
model has problems; 503 when the API has no CRM.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from engine.api.deps import ApiError, Authorised, errors
from engine.health.hooks import file_beside, model_beside
from engine.health.view import account_health
from engine.language.health_model import HealthModel

__all__ = ["router"]

router = APIRouter(prefix="/v1")


@router.get("/accounts/{account_id}/health", tags=["health"], responses=errors(401, 404, 422, 503),
            summary="An account's health score, band, trend and each measure's value, points and share")
async def get_health(account_id: str, request: Request, d: Authorised) -> dict[str, Any]:
    """Computed now by the health model; ``recorded`` is the last score recorded (computed or sent)."""
    books = d.playbooks()
    model: HealthModel | None = getattr(request.app.state, "health_model", None) or model_beside(books)
    if model is None:
        path = file_beside(books)
        if path is not None:
            raise ApiError(422, "invalid_health_model", f"{path} has problems, so no score is computed; "
                           "csops validate says where and how to fix them")
        raise ApiError(404, "no_health_model", "no health model: put a health.yaml beside the playbooks "
                       "(docs/health.md)")
    if d.crm is None:
        raise ApiError(503, "no_crm", "the API has no CRM to read the account from")
    view = await account_health(d.store, d.crm, model, account_id, d.now())
    if view is None:
        raise ApiError(404, "not_found", f"no account {account_id!r} in the CRM")
    return view
