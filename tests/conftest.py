"""Shared test setup.

temporalio's native core can abort the interpreter while it shuts down (sdk-python #300), so the
test process ends with os._exit once pytest has printed its summary.
"""

from __future__ import annotations

import asyncio
import faulthandler
import getpass
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import OperationalError

ROOT = Path(__file__).resolve().parent.parent

_status: list[int] = []


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _status.append(int(exitstatus))


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    if _status and not os.environ.get("CSOPS_PYTEST_NO_OS_EXIT"):
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_status[0])


# --- tiers: one marker per folder, so one tier runs alone (pytest -m unit) -------------------------

TIERS = {"unit": "unit", "connectors": "unit", "workflows": "workflow", "integration": "integration"}
"""tests/<folder> -> its marker (registered in pyproject.toml)."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        tier = TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is not None:
            item.add_marker(getattr(pytest.mark, tier))


# --- a hung test ends the run with a report of where it waits -------------------------------------

HANG_SECONDS = float(os.environ.get("CSOPS_TEST_HANG_SECONDS", "600"))
"""A test still running after this long is taken as hung: the slowest take about a minute."""


_report_fd: list[int] = []


def pytest_configure(config: pytest.Config) -> None:
    # The real stderr, kept now: during a test pytest points fd 2 at its capture file, which
    # os._exit would throw away with the report.
    _report_fd.append(os.dup(2))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    # A hang must not stall CI until its own limit with nothing said: after HANG_SECONDS this
    # prints what every asyncio task awaits and every thread's stack, then ends the process.
    # (Raising in the test instead leaves a wedged event loop whose teardown can hang again.)
    timer = threading.Timer(HANG_SECONDS, _report_hang, args=(item.nodeid,))
    timer.daemon = True
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def _report_hang(nodeid: str) -> None:
    out = os.fdopen(_report_fd[0], "w", closefd=False) if _report_fd else sys.__stderr__ or sys.stderr
    print(f"\n\n=== HUNG: {nodeid} still running after {HANG_SECONDS:.0f} s; what each asyncio task awaits:",
          file=out)
    try:
        tasks = list(asyncio.tasks._all_tasks)  # type: ignore[attr-defined]  # every loop's tasks
    except (AttributeError, RuntimeError):  # a private name, and the set may change meanwhile
        tasks = []
    for task in tasks:
        print(f"--- {task.get_name()}", file=out)
        coro: object = task.get_coro()
        while coro is not None:
            frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
            if frame is not None:
                print(f"    {frame.f_code.co_filename}:{frame.f_lineno} in {frame.f_code.co_name}", file=out)
            coro = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
    print("=== every thread:", file=out)
    out.flush()
    faulthandler.dump_traceback(file=out, all_threads=True)
    out.flush()
    os._exit(3)


# --- databases: every SQL-backed test runs on SQLite and on a real PostgreSQL -------------------

PG_URL_ENV = "CSOPS_TEST_PG_URL"
"""Where the PostgreSQL for tests is; by default the local server (trust auth, database ``test``)."""


def _pg_candidates() -> list[str]:
    if url := os.environ.get(PG_URL_ENV):
        return [url]
    users = dict.fromkeys(["postgres", getpass.getuser()])  # the server's superuser, else our own role
    return [f"postgresql+psycopg://{user}@127.0.0.1:5432/test" for user in users]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[Engine]:
    """An autocommit engine on the test PostgreSQL; skips (fails under CI) when there is none.

    Pytest caches a session fixture's skip or failure, so an absent server costs one connect attempt.
    """
    errors = []
    for url in _pg_candidates():
        engine = create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
        try:
            with engine.connect() as conn:
                conn.exec_driver_sql("select 1")
        except OperationalError as exc:
            engine.dispose()
            errors.append(f"{engine.url.render_as_string()}: {str(exc.orig).strip().splitlines()[0]}")
            continue
        yield engine
        engine.dispose()
        return
    message = (f"PostgreSQL is not reachable ({'; '.join(errors)}); start it or set {PG_URL_ENV} "
               "to a postgresql+psycopg:// URL")
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


@pytest.fixture
def pg_database(pg_server: Engine) -> Iterator[str]:
    """The URL of a fresh PostgreSQL database of its own, dropped afterwards (with FORCE: processes a
    test started may still hold connections). For tests whose several processes share one database."""
    name = f"csops_db_{uuid.uuid4().hex[:12]}"
    with pg_server.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield pg_server.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with pg_server.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A SQLAlchemy URL of an empty database: a SQLite file, or a fresh PostgreSQL schema.

    Each PostgreSQL test gets its own uniquely named schema (``search_path`` in the URL), so
    parallel runs never see each other's tables; it is dropped afterwards. Close what you
    connect (``SQLCRM.close``, ``Ledger.close``) before the test ends.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.db'}"
        return
    server: Engine = request.getfixturevalue("pg_server")
    schema = f"csops_test_{uuid.uuid4().hex[:16]}"
    with server.connect() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    try:
        yield server.url.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False)
    finally:
        with server.connect() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 (made with the openssl CLI; no package needed)."""
    folder = tmp_path_factory.mktemp("cert")
    certfile, keyfile = str(folder / "cert.pem"), str(folder / "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", keyfile, "-out", certfile, "-days", "2", "-subj", "/CN=mail.test",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"], check=True, capture_output=True)
    return certfile, keyfile
