"""One account's health as ``csops health show`` and ``GET /v1/accounts/{id}/health`` show it.

The score is computed now from the model (the breakdown: each measure's value, points and share),
beside the last recorded score (which may be a sent one) and the trend over 7 and 30 days of the
recorded history with the computed score as the latest point.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from connectors.base import CRM
from engine.health.recompute import latest_health, recompute_account
from engine.health.score import Score, trend
from engine.language.health_model import HealthModel
from engine.store.store import Store

__all__ = ["account_health", "as_text", "score_view"]


async def account_health(store: Store, crm: CRM, model: HealthModel, account_id: str,
                         now: datetime) -> dict[str, Any] | None:
    """The account's health as JSON; None when the CRM does not know the account."""
    done = await recompute_account(store, crm, model, account_id, now)
    if done is None:
        return None
    history = [(at, s) for at, s, _ in await store.health_since(account_id, now - timedelta(days=30), prior=True)]
    if done.result.score is not None:
        history.append((now, done.result.score))
    recorded = (await latest_health(store, account_id)).get(account_id)
    return {"account_id": account_id, "model": model.name, "model_file": model.source, "at": now.isoformat(),
            **done.result.as_dict(),
            "trend": {"7d": trend(history, now, 7), "30d": trend(history, now, 30)},
            "recorded": None if recorded is None else {"score": recorded[0], "band": recorded[1]}}


def _num(value: Any, sign: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:+g}" if sign else f"{value:g}"


def as_text(view: dict[str, Any]) -> str:
    """The breakdown as a table: "why is Acme red?"."""
    score = view["score"]
    head = (f"{view['account_id']}: health {_num(score)} ({view['band'] or 'no score'}) by model {view['model']}; "
            f"trend 7d {_num(view['trend']['7d'], '+')}, 30d {_num(view['trend']['30d'], '+')}")
    lines = [head]
    if view["recorded"] is not None:
        lines.append(f"  last recorded: {_num(view['recorded']['score'])} ({view['recorded']['band'] or 'no band'})")
    lines.append(f"  {'bucket':<14}{'score':>7}{'share':>8}")
    for b in view["buckets"]:
        lines.append(f"  {b['bucket']:<14}{_num(b['score']):>7}{b['weight'] * 100:>7.0f}%")
    lines.append(f"  {'measure':<22}{'bucket':<14}{'value':>9}{'points':>8}{'share':>8}  note")
    for m in view["measures"]:
        lines.append(f"  {m['measure']:<22}{m['bucket']:<14}{_num(m['value']):>9}{_num(m['points']):>8}"
                     f"{m['weight'] * 100:>7.0f}%  {m['note']}".rstrip())
    if score is None:
        lines.append("  no measure has an input for this account, so there is no score (nothing is recorded)")
    return "\n".join(lines)


def score_view(model: HealthModel, result: Score, account_id: str = "") -> dict[str, Any]:
    """A computed score (``csops health simulate``) in the shape of ``account_health``, without history."""
    return {"account_id": account_id, "model": model.name, "model_file": model.source, "at": None,
            **result.as_dict(), "trend": {"7d": None, "30d": None}, "recorded": None}
