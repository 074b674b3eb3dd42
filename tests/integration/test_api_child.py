"""``csops api`` as shipped: the API process stores, a child process it starts processes (engine/cli/apichild.py).

Real processes over one SQLite store, no Temporal (no playbook starts a run; processing applies the
events' facts and marks them processed). The child is seen in the process table and in the API's
log (its lines go where the API's go); a child that dies is replaced; the API's SIGTERM, Ctrl-C (to
the whole process group, as a terminal sends it) or death by SIGKILL leaves no process behind.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text

from tests.integration.procs import Proc, Procs, children, clean_env, cmdline, free_port, pid_running, wait_until
from tests.integration.test_durability import seed_crm
from tests.integration.test_pg_processes import event

pytestmark = pytest.mark.asyncio
ACCOUNTS = ("ac1", "ac2")
TOKEN = "api-child-test-token"


def processed(url: str) -> dict[str, bool]:
    """Per event id: processed yet."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return {r[0]: r[1] is not None for r in conn.execute(text("SELECT id, processed_at FROM events"))}
    finally:
        engine.dispose()


def processing_child(api: Proc) -> int:
    """The pid of the API's processing child (0 while it has none)."""
    return next((pid for pid in children(api.pid) if "process --for-api" in cmdline(pid)), 0)


async def start_api(tmp_path: Path, procs: Procs) -> tuple[Proc, str, str]:
    """``csops api`` with no --processing option, serving; (the process, its URL, the store's URL)."""
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    seed_crm(url, ACCOUNTS)
    books = tmp_path / "playbooks"
    books.mkdir()
    env = clean_env(CSOPS_HOME=str(tmp_path / "home"), CSOPS_DATABASE_URL=url, CSOPS_PLAYBOOKS=str(books),
                    CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}", CSOPS_API_TOKEN=TOKEN,
                    CSOPS_FALLBACK_OWNER="ops@example.com")
    port = free_port()
    api = procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--port", str(port)], env=env)
    base = f"http://127.0.0.1:{port}"

    async def up() -> bool:
        if not api.alive():
            raise AssertionError(f"the API exited with {api.returncode}:\n{api.log_text()[-3000:]}")
        async with httpx.AsyncClient() as http:
            try:
                return (await http.get(f"{base}/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False

    await wait_until(up, 60, "the API to serve")
    return api, base, url


async def post(base: str, events: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30) as http:
        answer = await http.post(f"{base}/v1/events", json={"events": events})
    assert answer.status_code == 202 and answer.json()["accepted"] == len(events), answer.text


async def test_the_child_processes_is_replaced_when_it_dies_and_stops_with_the_api(tmp_path: Path,
                                                                                   procs: Procs) -> None:
    api, base, url = await start_api(tmp_path, procs)
    child = await wait_until(lambda: processing_child(api), 60, "the processing child")
    first = [event(f"first-{a}", "usage.feature_used", a) for a in ACCOUNTS]
    await post(base, first)
    await wait_until(lambda: all(processed(url).values()), 60, "the child to process the events")
    assert f"csops api: event processing (pid {child}): processing events of" in api.log_text()

    procs.adopt(child)  # killed by the test's cleanup too, should the check below fail
    os.kill(child, signal.SIGKILL)
    second = await wait_until(lambda: processing_child(api) not in (0, child) and processing_child(api), 60,
                              "a new processing child")
    assert f"the event processing child (pid {child}) exited with status -9" in api.log_text()
    later = [event(f"later-{a}", "usage.feature_used", a) for a in ACCOUNTS]
    await post(base, later)
    await wait_until(lambda: len(processed(url)) == 4 and all(processed(url).values()), 60,
                     "the new child to process the later events")

    api.signal(signal.SIGTERM)
    assert await api.wait_exit(30) is not None
    await wait_until(lambda: not pid_running(second), 15, "the child to stop with the API")
    assert f"csops api: event processing (pid {second}): stopped" in api.log_text()


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
async def test_no_child_outlives_the_api(tmp_path: Path, procs: Procs, how: str) -> None:
    api, base, url = await start_api(tmp_path, procs)
    child = await wait_until(lambda: processing_child(api), 60, "the processing child")
    await wait_until(lambda: "processing events of" in api.log_text(), 60, "the child to be ready")
    procs.adopt(child)
    await post(base, [event("one", "usage.feature_used", ACCOUNTS[0])])
    await wait_until(lambda: all(processed(url).values()), 60, "the child to process the event")
    if how == "ctrl-c":
        api.signal_group(signal.SIGINT)  # a terminal's Ctrl-C reaches the API and its child alike
        assert await api.wait_exit(5) == 130
        await wait_until(lambda: not pid_running(child), 3, "the child to stop with the API")
        assert f"csops api: event processing (pid {child}): stopped" in api.log_text()
        assert "csops process: interrupted" not in api.log_text()  # the API says it, once
    else:
        api.signal(signal.SIGKILL)  # the API only: the child sees its pipe close
        await api.wait_exit(10)
        await wait_until(lambda: not pid_running(child), 5, "the child to stop after the API died")
