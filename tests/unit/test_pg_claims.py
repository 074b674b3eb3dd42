"""Claims of events on PostgreSQL: a claim that raced another never takes an account's next event.

Another processor's claim of ``e1`` is held open (its transaction took the claim lock and updated
the row, not committed yet) while this one claims: this one waits for it and then gets nothing,
because ``e2`` queues behind the claimed ``e1``. Without the lock its snapshot saw ``e1`` free, its
UPDATE skipped the taken ``e1`` and took ``e2``: two processors on one account at once.

Runs on the test PostgreSQL (tests/conftest.py ``pg_database``: ``CSOPS_TEST_PG_URL``, else the local
server) in a database of its own; without a server it is skipped, and fails under CI.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import create_engine, text

from engine.store.store import CLAIM_LOCK, Store

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    id: str
    type: str = "usage.feature_used"
    account_id: str = "acme"
    occurred_at: datetime = T0
    data: dict[str, Any] = field(default_factory=dict)


async def test_a_claim_racing_another_does_not_take_the_accounts_next_event(pg_database: str) -> None:
    store = Store(pg_database)
    other = create_engine(pg_database)
    try:
        await store.add_event(Ev("e1"), received_at=T0)
        await store.add_event(Ev("e2"), received_at=T0 + timedelta(seconds=1))
        now = T0 + timedelta(minutes=1)
        with other.connect() as conn:  # the other processor, mid-claim of e1
            conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": CLAIM_LOCK})
            conn.execute(text("UPDATE events SET claimed_at = :at WHERE id = 'e1'"), {"at": now})
            mine = asyncio.ensure_future(store.unprocessed(10, now=now))
            await asyncio.sleep(1.0)  # this claim is now waiting on the other one
            conn.commit()
            claimed = await asyncio.wait_for(mine, 30)
        assert [r.id for r in claimed] == []
        again = await store.unprocessed(10, now=now)
        assert again == []  # e1 is the other's, e2 waits its turn
        await store.mark_processed(["e1"], at=now)
        assert [r.id for r in await store.unprocessed(10, now=now)] == ["e2"]
    finally:
        other.dispose()
        store.close()


HOSTILE_IDS = ['q"uote', "back\\slash", "com,ma", "{brace}", "sp ace", "NULL", "é-ü"]


async def test_ids_that_need_quoting_are_claimed_and_marked_by_id(pg_database: str) -> None:
    """The processor binds a round's ids as one array literal (``bound_ids``): each id comes back whole."""
    store = Store(pg_database)
    try:
        for i, event_id in enumerate(HOSTILE_IDS):
            await store.add_event(Ev(event_id, account_id=f"acct-{i}"), received_at=T0)
        now = T0 + timedelta(minutes=1)
        claimed = await store.unprocessed(100, ids=HOSTILE_IDS[:4] + ["absent"], now=now)
        assert sorted(r.id for r in claimed) == sorted(HOSTILE_IDS[:4])
        await store.mark_processed(HOSTILE_IDS, at=now)
        assert await store.unprocessed(100, now=now + timedelta(hours=1)) == []
        assert await store.accounts_running(HOSTILE_IDS) == set()
    finally:
        store.close()
