"""SIGHUP reloads the playbooks of a running worker and ``csops api`` (issue 12), real processes.

The edit is one the folder look cannot see (same size, same modification time: a copy that kept
the times), so only the reload signal brings it in; then a folder with an error is refused by both
processes, which keep the playbooks in force and say why in their logs.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.procs import (
    Proc,
    Procs,
    clean_env,
    free_port,
    start_dev_server,
    start_worker,
    unique_queue,
    wait_ready,
    wait_until,
)

TOKEN = "reload-test-token-0123456789abcdef"
BOOK = """\
playbook: {pid}
title: Reload check
triggers: [{{manual: {{}}}}]
steps:
  - id: log
    note: {{text: "hello"}}
"""


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Procs]:
    procs = Procs(tmp_path)
    try:
        yield procs
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.cleanup()


def rewrite_unseen(path: Path, text: str) -> None:
    """Replace a file's text by one of the same size, keeping its modification time."""
    st = path.stat()
    assert len(text.encode()) == st.st_size
    path.write_text(text, encoding="utf-8")
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


async def known(http: httpx.AsyncClient) -> str:
    """The playbooks the API has in force, as its refusal of an unknown one lists them."""
    r = await http.post("/v1/runs", json={"playbook": "nothing-by-this-name", "account_id": "acme"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_playbook", r.text
    message: str = r.json()["error"]["message"]
    return message.rpartition("known: ")[2].partition(" (")[0]


async def test_sighup_swaps_a_valid_folder_in_and_refuses_a_broken_one(tmp_path: Path, procs: Procs) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "one.yaml").write_text(BOOK.format(pid="one"), encoding="utf-8")
    (books / "two.yaml").write_text(BOOK.format(pid="two"), encoding="utf-8")
    port, api_port = free_port(), free_port()
    env = clean_env(CSOPS_TEMPORAL_ADDRESS=f"127.0.0.1:{port}", CSOPS_HOME=str(tmp_path / "home"),
                    CSOPS_DATABASE_URL=f"sqlite:///{tmp_path / 'csops.db'}", CSOPS_TASK_QUEUE=unique_queue("reload"),
                    CSOPS_PLAYBOOKS=str(books), CSOPS_FALLBACK_OWNER="ops@example.com", CSOPS_API_TOKEN=TOKEN)
    await start_dev_server(procs, tmp_path / "temporal.db", port, free_port())
    worker = start_worker(procs, env)
    await wait_ready(worker)
    api = procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--host", "127.0.0.1", "--port",
                              str(api_port)], env=env)
    headers = {"Authorization": f"Bearer {TOKEN}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", headers=headers, timeout=10) as http:
        async def up() -> bool:
            try:
                return (await http.get("/v1/health")).status_code == 200
            except httpx.HTTPError:
                return False
        await wait_until(up, 60, "the API")
        assert await known(http) == "one, two"

        rewrite_unseen(books / "one.yaml", BOOK.format(pid="eno"))
        assert await known(http) == "one, two"  # the folder look sees no change
        hangup(worker, api)

        async def swapped() -> bool:
            return await known(http) == "eno, two"
        await wait_until(swapped, 30, "the API to reload")
        await wait_until(lambda: worker.log_text().count(f"playbooks in force from {books}: eno, two"), 30,
                         "the worker to reload")

        (books / "one.yaml").write_text(BOOK.format(pid="eno").replace("steps:", "stepz:"), encoding="utf-8")
        hangup(worker, api)
        for proc in (worker, api):
            await wait_until(refused(proc), 30, f"{proc.name} to refuse the folder")
            assert "one.yaml" in proc.log_text().rpartition("stay as they were")[2]
        assert await known(http) == "eno, two"
        assert worker.log_text().count(f"playbooks in force from {books}:") == 2  # the start and the reload
    assert worker.alive() and api.alive()


def refused(proc: Proc) -> Callable[[], bool]:
    return lambda: "so the 2 playbooks in force stay as they were" in proc.log_text()


def hangup(*processes: Proc) -> None:
    for proc in processes:
        proc.signal(signal.SIGHUP)
