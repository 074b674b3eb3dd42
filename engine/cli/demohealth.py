"""The health model's part of ``csops demo``: inputs for the sample accounts, Acme's drop, its breakdown.

Before the scenario the demo sends each of Acme, Globex and Initech a month of inputs (logins,
a meeting, an NPS answer, key features used), so the model computes their baseline scores
(green); then, instead of sending Acme a score, it sends what went wrong (the champion left,
seats unused, invoices overdue, escalations) and the model computes the drop that starts the
health-drop-risk play. At the end it prints Acme's breakdown from ``GET /v1/accounts/acme/health``.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from engine.health.view import as_text

__all__ = ["DROP_WHAT", "send_baseline", "send_drop", "show_breakdown"]

Say = Callable[[str], None]
DEMO_ACCOUNTS = ("acme", "globex", "initech")
DROP_WHAT = "Acme Corp's champion leaves, seats go unused, invoices are overdue, four escalations"
FEATURES = ("reports", "dashboards", "integrations")


def _event(ident: str, kind: str, account: str, at: datetime, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"id": ident, "type": kind, "account_id": account, "occurred_at": at.isoformat(), "data": data or {}}


def baseline_events(now: datetime, tag: str) -> list[dict[str, Any]]:
    """A month of healthy inputs for each demo account (times half a day off window edges)."""
    out = []
    for account in DEMO_ACCOUNTS:
        mark = f"demo-{tag}-{account}"
        out += [_event(f"{mark}-login-{i}", "usage.login", account, now - timedelta(days=i, hours=12))
                for i in range(30)]  # 30 logins in the last 30 days, 25 in the 30 before: trend 1.2
        out += [_event(f"{mark}-login-before-{i}", "usage.login", account, now - timedelta(days=31 + i, hours=12))
                for i in range(25)]
        out += [_event(f"{mark}-meeting", "meeting.held", account, now - timedelta(days=10)),
                _event(f"{mark}-nps", "survey.nps", account, now - timedelta(days=20), {"score": 9})]
        out += [_event(f"{mark}-uses-{f}", "usage.feature_used", account, now - timedelta(days=60), {"feature": f})
                for f in FEATURES]
    return out


def drop_events(now: datetime, tag: str) -> list[dict[str, Any]]:
    """What goes wrong at Acme; the fields change first (its id sorts first), so one recompute sees it all."""
    fields = {"fields.champion_present": False, "fields.active_seats": 40, "fields.overdue_invoices": 2}
    return [_event(f"demo-{tag}-acme-a-changes", "account.updated", "acme", now, {"fields": fields}),
            *(_event(f"demo-{tag}-acme-b-escalation-{i}", "support.escalated", "acme", now) for i in range(4))]


async def _post(http: Any, events: list[dict[str, Any]]) -> str:
    answer = await http.post("/v1/events", json={"events": events})
    if answer.status_code != 202:
        return f"HTTP {answer.status_code}"
    body = answer.json()
    return f"{body.get('accepted', 0)} accepted"


async def _recorded(http: Any, account: str) -> dict[str, Any] | None:
    try:
        answer = await http.get(f"/v1/accounts/{account}/health")
    except Exception:  # noqa: BLE001 - the API being slow only delays the demo
        return None
    return answer.json() if answer.status_code == 200 else None


def _settled(view: dict[str, Any] | None) -> bool:
    """Every input event processed (the key features are recorded when their events are, and their ids
    sort last) and the computed score recorded."""
    if not view or not view.get("recorded") or view["recorded"]["score"] != view["score"]:
        return False
    used = next((m["value"] for m in view["measures"] if m["measure"] == "key_features"), None)
    return used is None or used >= len(FEATURES) / 4


async def send_baseline(say: Say, api: str, token: str, wait: float = 30.0) -> None:
    """Send the month of inputs and wait until the model's baseline score of each account is recorded."""
    import httpx

    tag = f"{int(time.time())}"
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        events = baseline_events(datetime.now(UTC), tag)
        say(f"    {len(events)} input events (logins, meetings, NPS, key features) for "
            f"{', '.join(DEMO_ACCOUNTS)}: {await _post(http, events)}")
        deadline = time.monotonic() + wait
        for account in DEMO_ACCOUNTS:
            while True:
                view = await _recorded(http, account)
                if _settled(view) or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.2)
            if view and view.get("recorded"):
                say(f"    health model: {account} computed {view['score']:g} ({view['band']})")


async def send_drop(say: Say, api: str, token: str) -> None:
    """Send what goes wrong at Acme; the model computes the drop."""
    import httpx

    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        events = drop_events(datetime.now(UTC), f"{int(time.time())}")
        say(f"    {'(5 events)':<19} {DROP_WHAT}: {await _post(http, events)}")


async def show_breakdown(say: Say, api: str, token: str, account: str = "acme") -> None:
    """Print why the account is where it is: the model's breakdown."""
    import httpx

    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        view = await _recorded(http, account)
    if view is not None:
        for line in as_text(view).splitlines():
            say("    " + line)
