"""Recomputing health: after an input changes (an event) and in the daily scan.

A recomputed score that differs from the account's last recorded one (its rounded value or its
band) goes in as a ``health.updated`` event (``data.source: model``) through the event pipeline:
its facts record it in the health history and the CRM, and ``health_drop`` triggers fire from it
exactly as from a sent score. The event id is derived from the model version, the account and
what caused the recompute (the input event's id, or the scan's day), so a retry never sends a
second one.

Which wins: the latest recorded score is the account's score. A score sent by another system is
recorded and fires triggers as before; the model records its own score again at the account's
next input change or daily scan, when it differs. Without a ``health.yaml`` beside the playbooks
nothing is computed, and sent scores are the only ones.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from connectors.base import CRM, Account
from engine.health.fast import Reader, Scorer
from engine.health.inputs import Raw, read_raw, values
from engine.health.score import Score, score
from engine.language.health_model import HealthModel
from engine.store.store import Store
from engine.store.store_models import EventRecord, EventRow

__all__ = ["SOURCE", "Recomputed", "changed", "health_event", "input_types", "latest_health", "list_all",
           "recompute_account", "recompute_all", "recompute_and_store", "recompute_crm"]

log = logging.getLogger(__name__)
SOURCE = "model"
"""``data.source`` of the health.updated events the model sends."""


@dataclass(frozen=True, kw_only=True)
class Recomputed:
    """One account's recomputed health."""

    account_id: str
    """The account."""
    result: Score
    """The score and its breakdown."""
    previous: tuple[float, str] | None
    """The last recorded (score, band), None if none."""
    values: Mapping[str, float | None]
    """The measures' values."""

    @property
    def changed(self) -> bool:
        """Whether it should be recorded: a score, and a different rounded score or band than the last."""
        return changed(self.previous, self.result)


def changed(previous: tuple[float, str] | None, result: Score) -> bool:
    """Whether ``result`` differs from the last recorded (score, band): rounded score or band."""
    if result.score is None:
        return False
    return previous is None or round(previous[0]) != round(result.score) or previous[1] != result.band


def health_event(model: HealthModel, account_id: str, result: Score, *, cause: str, at: datetime) -> dict[str, Any]:
    """The ``health.updated`` event of a recomputed score; its id is the same for the same model, account and cause."""
    key = hashlib.sha256(f"{model.version}|{account_id}|{cause}".encode()).hexdigest()[:20]
    low = sorted((line for line in result.lines if line.weight > 0 and line.points is not None),
                 key=lambda line: (line.points or 0.0) * line.weight - line.weight * 100)[:3]
    why = "; ".join(f"{line.measure} {_show(line.value)} → {round(line.points or 0.0, 2):g} pts" for line in low)
    return {"id": f"health:{account_id}:{key}", "type": "health.updated", "account_id": account_id,
            "occurred_at": at.isoformat(),
            "data": {"score": result.score, "band": result.band, "source": SOURCE, "model": model.name,
                     "cause": cause, "why": why,
                     "buckets": {b: s for b, s, _ in result.buckets}}}


def _show(value: float | None) -> str:
    return "missing" if value is None else f"{value:g}"


def input_types(model: HealthModel) -> frozenset[str]:
    """The event types whose arrival can change a score: the model's event sources, account and usage updates."""
    named = {m.source.name for m in model.measures if m.source.kind in ("count", "days_since", "latest", "trend")}
    return frozenset({*named, "account.updated", "usage.feature_used"})


async def latest_health(store: Store, only: str | None = None) -> dict[str, tuple[float, str]]:
    """The last (score, band) of every account (or of ``only``): its latest health.updated event, processed or not.

    Read from the events rather than the history, so a score still queued counts: a second input
    event processed before it does not send the same score again.
    """
    ranked = select(EventRow.account_id, EventRow.data, func.row_number().over(
        partition_by=EventRow.account_id, order_by=(EventRow.occurred_at.desc(), EventRow.received_at.desc(),
                                                    EventRow.id.desc())).label("rn")
                    ).where(EventRow.type == "health.updated")
    if only is not None:
        ranked = ranked.where(EventRow.account_id == only)
    sub = ranked.subquery()
    query = select(sub.c.account_id, sub.c.data).where(sub.c.rn == 1)
    rows = await store.db.read(lambda s: s.execute(query).all())
    out = {}
    for account_id, text in rows:
        data = json.loads(text)
        out[account_id] = (float(data.get("score", 0)), str(data.get("band") or ""))
    return out


async def recompute_account(store: Store, crm: CRM, model: HealthModel, account_id: str,
                            now: datetime) -> Recomputed | None:
    """The account's health now; None when the CRM does not know the account."""
    account = await crm.get_account(account_id)
    if account is None:
        return None
    raw = await read_raw(store, model, now, only=account_id)
    found = values(model, account, raw.get(account_id, {}), now)
    previous = (await latest_health(store, account_id)).get(account_id)
    result = score(model, found, segment=account.segment, lifecycle_stage=account.lifecycle_stage)
    return Recomputed(account_id=account_id, result=result, previous=previous, values=found)


async def recompute_all(store: Store, accounts: Iterable[Account], model: HealthModel, now: datetime, *,
                        raw: Raw | None = None,
                        last: Mapping[str, tuple[float, str]] | None = None) -> list[Recomputed]:
    """The health of every account given, reading the store once for all of them (``raw`` and ``last``
    when the caller read them already). Only a changed score carries its breakdown (``result.lines``)."""
    if raw is None:
        raw = await read_raw(store, model, now)
    if last is None:
        last = await latest_health(store)
    reader, scorer = Reader(model, now), Scorer(model)
    names = scorer.names
    out = []
    for account in accounts:
        found = reader.values(account, raw.get(account.id, {}))
        total = scorer.total(found, account.segment, account.lifecycle_stage)
        result = Score(score=total, band="" if total is None else scorer.band(total), lines=(), buckets=())
        previous = last.get(account.id)
        facts = dict(zip(names, found, strict=True))
        if changed(previous, result):
            result = score(model, facts, segment=account.segment, lifecycle_stage=account.lifecycle_stage)
        out.append(Recomputed(account_id=account.id, result=result, previous=previous, values=facts))
    return out


async def list_all(crm: Any, page: int = 1000) -> list[Account]:
    """Every account of a CRM that can list them (``AccountLister``), a page at a time."""
    accounts: list[Account] = []
    after: str | None = None
    while True:
        batch: Sequence[Account] = await crm.list_accounts(after, page)
        accounts.extend(batch)
        if len(batch) < page:
            return accounts
        after = batch[-1].id


async def recompute_crm(crm: Any, store: Store, model: HealthModel, now: datetime, *,
                        changed_only: bool = False) -> list[Recomputed]:
    """Every account of the CRM recomputed (with ``changed_only``, only those whose score changed: the scan's need).

    With the built-in CRM in the store's SQLite database the scores come from one SQL statement
    (engine.health.sqlscore) and only changed scores get their values and breakdown; otherwise the
    CRM's pages and the store's reads are done at the same time and every account scored in Python.
    """
    from engine.health import sqlscore

    if not sqlscore.usable(crm, store):
        accounts, raw, last = await asyncio.gather(list_all(crm), read_raw(store, model, now), latest_health(store))
        done = await recompute_all(store, accounts, model, now, raw=raw, last=last)
        return [r for r in done if r.changed] if changed_only else done
    bands = model.bands
    out = []
    for ident, total, prev, prev_band in await sqlscore.scores(store, model, now):
        value = None if total is None else round(min(max(total, 0.0), 100.0), 1)
        band = "" if value is None else bands.band(value)
        previous = None if prev is None else (prev, prev_band)
        if changed_only and (value is None or (previous is not None and round(prev or 0.0) == round(value)
                                               and prev_band == band)):
            continue  # unchanged (or no score): the scan has nothing to record
        out.append(Recomputed(account_id=ident, previous=previous, values={},
                              result=Score(score=value, band=band, lines=(), buckets=())))
    changed_ids = {r.account_id for r in out if r.changed}
    if not changed_ids:
        return out
    full: dict[str, Recomputed] = {}
    if len(changed_ids) <= 100:  # a few: each on its own rows, as after an event
        for ident in sorted(changed_ids):
            if (one := await recompute_account(store, crm, model, ident, now)) is not None:
                full[ident] = one
    else:  # many (the first scan with a model): one read of the store for all
        accounts = [a for a in await list_all(crm) if a.id in changed_ids]
        last = {r.account_id: r.previous for r in out if r.account_id in changed_ids and r.previous is not None}
        full = {r.account_id: r for r in await recompute_all(store, accounts, model, now, last=last)}
    return [full.get(r.account_id, r) for r in out]


async def recompute_and_store(crm: Any, store: Store, model: HealthModel, now: datetime, cause: str) -> int:
    """Recompute every account; store the changed scores as health.updated events (``cause`` in their ids). How many."""
    made = [health_event(model, r.account_id, r.result, cause=cause, at=now)
            for r in await recompute_crm(crm, store, model, now, changed_only=True) if r.changed]
    events = [EventRecord(id=e["id"], type=e["type"], account_id=e["account_id"], occurred_at=now, received_at=now,
                          data=e["data"]) for e in made]
    for at in range(0, len(events), 500):
        await store.add_events(events[at:at + 500], received_at=now)
    return len(events)
