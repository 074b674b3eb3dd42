"""Storing events waits at most ``wait`` seconds for another writer's lock, on SQLite and PostgreSQL.

A second connection really holds the lock (``BEGIN EXCLUSIVE`` on the SQLite file, ``LOCK TABLE`` on
PostgreSQL); the write must give up with RetryableError (the API's 503) well before the usual 30 s,
and succeed once the lock is gone.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

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


async def test_writers_of_one_process_take_turns_and_a_write_still_gives_up_after_its_wait(tmp_path: Path) -> None:
    # Another thread of this process holding its turn at the file (a long write of another store on the
    # same file) makes the API's write give up after its wait, as a lock held by another process does.
    url = f"sqlite:///{tmp_path / 'store.db'}"
    store, other = Store(url), Store(url)
    try:
        turn_taken, release = threading.Event(), threading.Event()

        def long_write(s: Session) -> None:
            s.execute(text("SELECT 1"))
            turn_taken.set()
            release.wait(10)

        holder = asyncio.create_task(other.db.run(long_write))
        await asyncio.to_thread(turn_taken.wait, 10)
        began = time.monotonic()
        with pytest.raises(RetryableError, match="database unavailable"):
            await store.add_events([ev("during")], wait=0.5)
        assert 0.4 < time.monotonic() - began < 3
        release.set()
        await holder
        # Many writers at once, in threads of one process: each gets its turn, none fails or is lost.
        got = await asyncio.gather(*(store.add_events([ev(f"e{n}"), ev("shared")]) for n in range(16)))
        assert sorted(flag for pair in got for flag in pair).count(True) == 17
        assert store.counts()["events"] == 17
    finally:
        store.close()
        other.close()
