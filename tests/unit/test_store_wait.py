"""Storing events waits at most ``wait`` seconds for another writer's lock, on SQLite and PostgreSQL.

A second connection really holds the lock (``BEGIN EXCLUSIVE`` on the SQLite file, ``LOCK TABLE`` on
PostgreSQL); the write must give up with RetryableError (the API's 503) well before the usual 30 s,
and succeed once the lock is gone.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine

from connectors.base import RetryableError
from engine.store.store import Store
from engine.triggers.signals import EventSignal

WHEN = datetime(2026, 11, 23, 9, tzinfo=UTC)


def ev(event_id: str) -> EventSignal:
    return EventSignal(id=event_id, type="nps.submitted", account_id="acme", occurred_at=WHEN, data={"score": 3})


@contextmanager
def locked(store: Store, url: str) -> Iterator[None]:
    """Hold the write lock on the store's events from another connection."""
    if url.startswith("sqlite"):
        path = store.db.engine.url.database
        assert path
        con = sqlite3.connect(path, isolation_level=None)
        con.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            con.execute("ROLLBACK")
            con.close()
        return
    engine = create_engine(url)
    try:
        with engine.connect() as conn, conn.begin():
            conn.exec_driver_sql("LOCK TABLE events IN EXCLUSIVE MODE")
            yield
    finally:
        engine.dispose()


async def test_an_event_write_gives_up_after_its_wait_and_then_succeeds(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert await store.add_events([ev("before")], wait=0.5) == [True]
        with locked(store, db_url):
            began = time.monotonic()
            with pytest.raises(RetryableError, match="database unavailable"):
                await store.add_events([ev("during")], wait=0.5)
            took = time.monotonic() - began
        assert 0.4 < took < 3, took
        assert await store.add_events([ev("during"), ev("before")], wait=0.5) == [True, False]
    finally:
        store.close()
