"""Shared test setup.

temporalio's native core can abort the interpreter while it shuts down (sdk-python #300), so the
test process ends with os._exit once pytest has printed its summary.
"""

from __future__ import annotations

import getpass
import os
import subprocess
import sys
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
