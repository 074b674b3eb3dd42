"""Bring the store's copy of open runs up to date before a report reads it.

The store learns a run's steps and ending when the run is looked at (engine/runtime/runrecord.py), not
while it runs, so that no run pays a store write per step. A report needs every run, so it first
refreshes each run the store still has as running: one Temporal ``describe`` and one ``status``
query (or ``result`` once ended) per open run, at most ``PARALLEL`` at a time. Ended runs are
never asked again (their record is final). The cost grows with the number of open runs: 300
open runs took 1.2 s (about 4 ms each, Temporal's test server on 2 shared cores; docs/reporting.md).
Recording every step from the run itself instead would cost every run an activity per step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy import select

from engine.store.store import Store
from engine.store.store_models import RunRow

__all__ = ["PARALLEL", "open_runs", "refresh_open_runs"]

PARALLEL = 8
"""Runs refreshed at once."""


async def open_runs(store: Store) -> list[str]:
    """Run ids the store has as running."""
    query = select(RunRow.run_id).where(RunRow.ended_at.is_(None)).distinct()
    return list(await store.db.read(lambda s: s.scalars(query).all()))


async def refresh_open_runs(store: Store, refresh: Callable[[str], Awaitable[Any]], *,
                            parallel: int = PARALLEL) -> tuple[int, list[str]]:
    """Refresh every open run through ``refresh(run_id)``; (runs refreshed, problems in plain words).

    A run that cannot be refreshed (Temporal unreachable) is reported, not raised: the report
    then shows what the store has.
    """
    ids = await open_runs(store)
    gate = asyncio.Semaphore(parallel)
    problems: list[str] = []

    async def one(run_id: str) -> None:
        async with gate:
            try:
                await refresh(run_id)
            except Exception as exc:  # noqa: BLE001 - reported with the report, never fatal
                problems.append(f"{run_id}: {str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}")

    await asyncio.gather(*(one(r) for r in ids))
    return len(ids), sorted(problems)
