"""A SQLite writer takes another process's write lock by short polls (connectors/sqlite_engine.py take_write_lock)."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import text

from connectors import sqlite_engine as module
from connectors.base import RetryableError
from connectors.sqlcrm_models import Database
from engine.store.store_models import Base


class Busy:
    """A DB-API connection whose BEGIN IMMEDIATE finds the lock taken ``times`` times, then goes."""

    def __init__(self, times: int, code: int = sqlite3.SQLITE_BUSY) -> None:
        self.times, self.code, self.tries = times, code, 0

    def execute(self, sql: str) -> None:
        assert sql == "BEGIN IMMEDIATE"
        self.tries += 1
        if self.tries <= self.times:
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = self.code
            raise error


def test_the_lock_is_tried_again_after_short_sleeps_that_grow_to_a_few_milliseconds(
        monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=slept.append, monotonic=time.monotonic))
    conn = Busy(times=6)
    assert module.take_write_lock(conn, timeout=30.0) is True
    assert conn.tries == 7
    assert slept == [0.0005, 0.001, 0.002, 0.004, 0.004, 0.004]


def test_past_the_timeout_it_gives_up_and_another_error_is_not_waited_out(monkeypatch: pytest.MonkeyPatch) -> None:
    clock = iter(range(100))
    monkeypatch.setattr(module, "time", SimpleNamespace(sleep=lambda s: None, monotonic=lambda: float(next(clock))))
    assert module.take_write_lock(Busy(times=1000), timeout=3.0) is False
    with pytest.raises(sqlite3.OperationalError):
        module.take_write_lock(Busy(times=1, code=sqlite3.SQLITE_IOERR), timeout=3.0)


def create(s: Any) -> None:
    s.execute(text("CREATE TABLE IF NOT EXISTS t (x INTEGER)"))
    s.commit()


def test_a_writer_of_another_process_is_waited_for_and_its_lock_taken_once_released(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lock.db'}"
    db, quick = Database(url, Base.metadata), Database(url, Base.metadata)
    quick.engine.dispose()
    quick.engine = module.sqlite_engine(url, timeout=0.05)  # a writer that waits 50 ms at most
    other = sqlite3.connect(tmp_path / "lock.db", isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # as another process's writer would
    released = threading.Timer(0.05, lambda: other.execute("COMMIT"))
    released.start()
    try:
        # The writer waited (no "database is locked"), then wrote in its own transaction.
        db.call(create)
    finally:
        released.join()
    other.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(RetryableError, match="database unavailable"):
            quick.call(lambda s: s.execute(text("INSERT INTO t VALUES (1)")))
    finally:
        other.execute("ROLLBACK")
        other.close()
        for d in (db, quick):
            d.dispose()

    def count(s: Any) -> int:
        return int(s.execute(text("SELECT count(*) FROM t")).scalar_one())
    again = Database(url, Base.metadata)
    assert again.call(count) == 0
    again.dispose()
