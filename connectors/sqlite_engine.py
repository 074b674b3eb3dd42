"""SQLite engines as csops uses them: WAL, foreign keys, ``BEGIN IMMEDIATE`` for writers, and writers of
one process taking turns on a lock per file (``writer_turn``) instead of SQLite's sleeping poll.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import StaticPool

from connectors.base import RetryableError

__all__ = ["ONE_STATEMENT", "sqlite_engine", "writer_turn"]

ONE_STATEMENT = "csops_one_statement"
"""Connection option of ``Database.read_one``: SQLite's engine then sends no BEGIN (see sqlite_engine)."""


def sqlite_engine(url: str, timeout: float = 30.0, *, immediate: bool = True) -> Engine:
    """An engine for a SQLite URL: WAL, foreign keys, ``BEGIN IMMEDIATE`` (``immediate``) and a writer waiting up
    to ``timeout`` seconds for another's lock."""
    database = make_url(url).database or ""
    memory = database in ("", ":memory:")
    if not memory and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)
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
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        if connection.get_execution_options().get(ONE_STATEMENT):
            return  # one SELECT is a consistent read on its own (Database.read_one)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    if immediate and not memory:
        key = database if database.startswith("file:") else str(Path(database).resolve())
        with _TURNS_LOCK:
            _WRITERS[engine] = (_TURNS.setdefault(key, threading.RLock()), timeout)
    return engine


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
