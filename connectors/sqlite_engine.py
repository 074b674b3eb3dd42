"""SQLite engines as csops uses them: WAL, foreign keys, ``BEGIN IMMEDIATE`` for writers, writers of one
process taking turns on a lock per file (``writer_turn``) instead of SQLite's sleeping poll, and a writer
waiting for another process's lock by short polls of its own (``take_write_lock``).
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from connectors.base import RetryableError

__all__ = ["ONE_STATEMENT", "sqlite_engine", "take_write_lock", "writer_turn"]

ONE_STATEMENT = "csops_one_statement"
"""Connection option of ``Database.read_one``: SQLite's engine then sends no BEGIN (see sqlite_engine)."""


def sqlite_engine(url: str, timeout: float = 30.0, *, immediate: bool = True) -> Engine:
    """An engine for a SQLite URL: WAL, foreign keys, ``BEGIN IMMEDIATE`` (``immediate``) and a writer waiting up
    to ``timeout`` seconds for another's lock."""
    database = make_url(url).database or ""
    memory = database in ("", ":memory:")
    if not memory and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    polled = immediate and not memory
    engine = create_engine(
        url,
        # Worker threads share the pool; a writer waits up to 30 s for another's lock instead of failing.
        connect_args={"check_same_thread": False, "timeout": timeout},
        **({"poolclass": StaticPool} if memory else {"pool_size": 5, "max_overflow": 10}),
    )

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, _record: Any) -> None:
        # pysqlite's own BEGIN is deferred and sent only before DML; SQLAlchemy's begin hook below
        # takes over so read-check-write units of work are serialized across threads and processes.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # WAL lets readers run beside a writer; synchronous stays FULL, because the ledger and the
        # tasks must survive an OS crash (an effect recorded then lost would be repeated).
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        if polled:  # BEGIN IMMEDIATE waits in ``take_write_lock``; under WAL nothing after it in the transaction waits
            cursor.execute("PRAGMA busy_timeout=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        if connection.get_execution_options().get(ONE_STATEMENT):
            return  # one SELECT is a consistent read on its own (Database.read_one)
        if not (polled and take_write_lock(connection.connection.driver_connection, timeout)):
            # Not polled, or the wait is over: the statement itself, whose "database is locked" is the caller's error.
            connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if immediate and not memory:
        key = database if database.startswith("file:") else str(Path(database).resolve())
        with _TURNS_LOCK:
            _WRITERS[engine] = (_TURNS.setdefault(key, threading.RLock()), timeout)
    return engine


POLL_FIRST, POLL_MOST = 0.0005, 0.004
"""Seconds a writer sleeps between two tries of another process's write lock: 0.5 ms, doubling up to 4 ms."""


def take_write_lock(dbapi_connection: Any, timeout: float) -> bool:
    """``BEGIN IMMEDIATE`` on a connection that does not wait for locks (``busy_timeout=0``), tried again after short
    sleeps until it goes or ``timeout`` seconds have passed; whether it went.

    SQLite's own wait (its busy timeout) sleeps 1, 2, 5, 10, 15, 20, 25... up to 100 ms between tries, so a writer
    of another process (the API's processing child, a processor) that held the lock for a few milliseconds cost
    this one up to tens of milliseconds more: the file lay idle while both waited. Writers of this process take
    turns on a lock of their own first (``writer_turn``).
    """
    pause, deadline = POLL_FIRST, 0.0
    while True:
        try:
            dbapi_connection.execute("BEGIN IMMEDIATE")
            return True
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode not in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                raise
        now = time.monotonic()
        deadline = deadline or now + timeout
        if now >= deadline:
            return False
        time.sleep(min(pause, deadline - now))
        pause = min(2 * pause, POLL_MOST)


_TURNS: dict[str, threading.RLock] = {}
"""One lock per SQLite file: the writers of this process take turns on it (see ``writer_turn``)."""
_TURNS_LOCK = threading.Lock()
_WRITERS: weakref.WeakKeyDictionary[Engine, tuple[threading.RLock, float]] = weakref.WeakKeyDictionary()
"""The file's lock and the lock wait in seconds of each writing (``BEGIN IMMEDIATE``) SQLite engine."""


@contextlib.contextmanager
def writer_turn(engine: Engine) -> Iterator[None]:
    """For a writing SQLite engine: wait for this process's other writers of the same file, then go.

    SQLite lets one writer in at a time; the others poll, sleeping 1, 2, 5... up to 100 ms between
    tries, so a few threads of one process writing at once left the file idle between their
    transactions (a bare endpoint's p99 was over a second). Taking turns on a lock in the process
    hands the file over at once; writers in other processes still meet at SQLite's own lock.
    A unit of work of another engine (PostgreSQL, a reader) goes at once.

    Raises:
        RetryableError: the engine's lock wait passed before this writer's turn came.
    """
    turn = _WRITERS.get(engine)
    if turn is None:
        yield
        return
    lock, wait = turn
    if not lock.acquire(timeout=wait):
        raise RetryableError("database unavailable: locked",
                             detail=f"another writer of this process held the database over {wait:g} s")
    try:
        yield
    finally:
        lock.release()
