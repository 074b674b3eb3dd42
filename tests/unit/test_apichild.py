"""``csops api``'s processing child, the parent's side (engine/cli/apichild.py), over a small real child process
that writes down what reaches it: wake-ups through the pipe, SIGTERM, end of file; and its replacement when it dies.
The whole of it with the real ``csops process --for-api`` is tests/integration/test_api_child.py."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.cli.apichild import ProcessingChild

pytestmark = pytest.mark.asyncio

CHILD = """
import os, signal, sys
out = sys.argv[1]
def note(text):
    with open(out, "a") as f:
        f.write(text + "\\n")
signal.signal(signal.SIGTERM, lambda *a: (note("term"), os._exit(0)))
note(f"started {os.getpid()}")
while True:
    data = os.read(0, 100)
    if not data:
        note("eof")
        os._exit(0)
    note("wake")
"""


async def until(check: Callable[[], object], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def child(tmp_path: Path, signals: list[int]) -> tuple[ProcessingChild, asyncio.Event, Path]:
    out = tmp_path / "child.txt"
    wake = asyncio.Event()
    return ProcessingChild(wake, signals=signals, command=[sys.executable, "-c", CHILD, str(out)]), wake, out


async def test_wake_ups_reach_the_child_and_a_stop_is_a_sigterm(tmp_path: Path) -> None:
    part, wake, out = child(tmp_path, [])
    async with part.running():
        await until(lambda: lines(out), "the child to start")
        wake.set()
        await until(lambda: "wake" in lines(out), "the wake-up to reach the child")
        assert not wake.is_set()  # taken: the next stored events wake it again
    assert lines(out)[-1] == "term"
    assert part.proc is not None and part.proc.returncode == 0


async def test_after_ctrl_c_the_pipe_closes_and_the_child_stops_on_its_own(tmp_path: Path) -> None:
    signals: list[int] = []
    part, _, out = child(tmp_path, signals)
    async with part.running():
        await until(lambda: lines(out), "the child to start")
        signals.append(signal.SIGINT)  # as the API's server notes a Ctrl-C
    assert lines(out)[-1] == "eof"


async def test_a_child_that_dies_is_replaced(tmp_path: Path) -> None:
    part, wake, out = child(tmp_path, [])
    async with part.running():
        await until(lambda: lines(out), "the child to start")
        assert part.proc is not None
        assert part.status() == {"mode": "child", "running": True, "restarts": 0, "last_exit": None}
        first = part.proc.pid
        os.kill(first, signal.SIGKILL)
        await until(lambda: part.restarts == 1 and part.proc is not None and part.proc.pid != first,
                    "a new child")
        await until(lambda: sum(line.startswith("started") for line in lines(out)) == 2, "the new child to start")
        # GET /v1/health says so (its processing), not only the log.
        assert part.status() == {"mode": "child", "running": True, "restarts": 1, "last_exit": -signal.SIGKILL}
        wake.set()
        await until(lambda: "wake" in lines(out), "the wake-up to reach the new child")
    assert lines(out)[-1] == "term"
