"""Claims of events on PostgreSQL: a claim that raced another never takes an account's next event.

Another processor's claim of ``e1`` is held open (its transaction took the claim lock and updated
the row, not committed yet) while this one claims: this one waits for it and then gets nothing,
because ``e2`` queues behind the claimed ``e1``. Without the lock its snapshot saw ``e1`` free, its
UPDATE skipped the taken ``e1`` and took ``e2``: two processors on one account at once.

Runs on the PostgreSQL at ``CSOPS_TEST_POSTGRES`` in a database of its own; skipped with a message
when it cannot be reached.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from engine.store.store import CLAIM_LOCK, Store

SERVER = os.environ.get("CSOPS_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Ev:
    id: str
    type: str = "usage.feature_used"
    account_id: str = "acme"
    occurred_at: datetime = T0
    data: dict[str, Any] = field(default_factory=dict)


@pytest.fixture
def database() -> Iterator[str]:
    name = f"csops_claims_{uuid.uuid4().hex[:12]}"
    admin = create_engine(SERVER, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means: not here
        admin.dispose()
        pytest.skip(f"PostgreSQL is not reachable at {SERVER} ({type(exc).__name__}); set CSOPS_TEST_POSTGRES")
    try:
        yield make_url(SERVER).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


async def test_a_claim_racing_another_does_not_take_the_accounts_next_event(database: str) -> None:
    store = Store(database)
    other = create_engine(database)
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
