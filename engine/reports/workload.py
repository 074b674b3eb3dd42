"""CSM workload: per person, open and overdue tasks, escalations, accounts by segment, capacity.

Accounts come from the CRM (paged with ``list_accounts``; owners' emails from ``get_user``, once
each), tasks and escalations from the store (``run_tasks``). Capacity is a target number of
accounts per CSM for each segment, set in coverage.yaml (``segments.NAME.capacity``): a person's
utilisation is the sum over segments of their accounts there divided by the segment's target, so
20 strategic accounts against a target of 20 and 50 SMB accounts against 200 make 125 %. Above
``OVER`` it is flagged ``over`` (hire), below ``UNDER`` ``under`` (re-segment).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from typing import Any, cast

from sqlalchemy import Integer, func, select

from connectors.base import CRM, AccountLister
from engine.language.coverage import Coverage
from engine.store.store import Store
from engine.store.store_models import RunTaskRow

__all__ = ["OVER", "UNDER", "flag", "workload_report"]

OVER = 1.2
"""Utilisation above this is flagged ``over``."""
UNDER = 0.8
"""Utilisation below this is flagged ``under``."""
PAGE = 1000


def flag(utilisation: float | None) -> str:
    """``over`` above 120 %, ``under`` below 80 %, ``ok`` between, ``""`` without a target."""
    if utilisation is None:
        return ""
    return "over" if utilisation > OVER else "under" if utilisation < UNDER else "ok"


async def _owned(crm: Any) -> dict[str, dict[str, int]]:
    """Accounts per owner email (lower case) per segment (lower case; "" for none)."""
    if not isinstance(crm, AccountLister):
        return {}
    emails: dict[str, str] = {}
    owned: dict[str, dict[str, int]] = {}
    after: str | None = None
    while True:
        page = await crm.list_accounts(after, PAGE)
        for account in page:
            if not account.owner_id:
                continue
            if account.owner_id not in emails:
                user = await cast(CRM, crm).get_user(account.owner_id)
                emails[account.owner_id] = (user.email if user else account.owner_id).casefold()
            segments = owned.setdefault(emails[account.owner_id], {})
            segment = account.segment.casefold()
            segments[segment] = segments.get(segment, 0) + 1
        if len(page) < PAGE:
            return owned
        after = page[-1].id


async def _task_counts(store: Store, today: date) -> dict[str, dict[str, int]]:
    t = RunTaskRow
    query = select(func.lower(t.assignee), func.sum((t.status == "open").cast(Integer())),
                   func.sum(((t.status == "open") & (t.due < today)).cast(Integer())),
                   func.sum(t.escalations)).group_by(func.lower(t.assignee))
    rows = await store.db.read(lambda s: s.execute(query).all())
    return {r[0]: {"open_tasks": int(r[1] or 0), "overdue_tasks": int(r[2] or 0), "escalations": int(r[3] or 0)}
            for r in rows if r[0]}


def _utilisation(segments: Mapping[str, int], capacity: Mapping[str, int]) -> float | None:
    counted = [(n, capacity[s]) for s, n in segments.items() if capacity.get(s)]
    return round(sum(n / cap for n, cap in counted), 4) if counted else None


async def workload_report(store: Store, crm: Any, coverage: Coverage | None, *, today: date) -> dict[str, Any]:
    """Per person (email), as plain data: ``{"capacity": {segment: target}, "people": [{"person",
    "open_tasks", "overdue_tasks", "escalations", "accounts": {segment: n}, "accounts_total",
    "utilisation", "flag"}]}``; people sorted by utilisation, highest first."""
    capacity = {name: seg.capacity for name, seg in (coverage.segments if coverage else {}).items() if seg.capacity}
    owned = await _owned(crm)
    counts = await _task_counts(store, today)
    people: list[dict[str, Any]] = []
    for person in sorted(set(owned) | set(counts)):
        segments = dict(sorted(owned.get(person, {}).items()))
        use = _utilisation(segments, capacity)
        people.append({"person": person,
                       **counts.get(person, {"open_tasks": 0, "overdue_tasks": 0, "escalations": 0}),
                       "accounts": segments, "accounts_total": sum(segments.values()), "utilisation": use,
                       "flag": flag(use)})
    people.sort(key=lambda p: (-float(p["utilisation"] if p["utilisation"] is not None else -1.0), p["person"]))
    return {"capacity": dict(sorted(capacity.items())), "over": OVER, "under": UNDER, "people": people}
