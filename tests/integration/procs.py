"""Real processes for integration tests: the Temporal dev server, workers and ``csops up``.

Every process starts in a session (and process group) of its own, writes to a log file under the
test's tmp folder, and is registered with a ``Procs``; ``Procs.cleanup`` SIGKILLs the process
group of anything still running, so a failing test leaves nothing behind. Ports come from the
kernel (bind port 0), task queues are unique, and waiting is done by polling a condition with a
deadline, never by sleeping a fixed time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
TEMPORAL = str(BIN / "temporal")
POLL = 0.05


class Clock:
    """Prints how long each phase of a test took (pytest shows it when the test fails, or with -s)."""

    def __init__(self) -> None:
        self.start = self.last = time.monotonic()

    def __call__(self, what: str) -> None:
        t = time.monotonic()
        print(f"[{t - self.start:6.2f} s] (+{t - self.last:5.2f} s) {what}", flush=True)
        self.last = t


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def unique_queue(name: str) -> str:
    return f"it-{name}-{uuid.uuid4().hex[:12]}"


async def wait_until(check: Callable[[], Any], timeout: float, what: str, interval: float = POLL) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: BaseException | None = None
    while True:
        try:
            got = check()
            if isinstance(got, Awaitable):
                got = await got
            if got:
                return got
        except AssertionError:
            raise
        except Exception as exc:  # noqa: BLE001 - a check may fail while things start; report the last one
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}"
                                 + (f" (last error: {last!r})" if last else ""))
        await asyncio.sleep(interval)


class Proc:
    """A child process in its own session; its stdout and stderr go to ``log``."""

    def __init__(self, name: str, cmd: Sequence[str], *, env: Mapping[str, str], log: Path,
                 cwd: Path = ROOT) -> None:
        self.name, self.cmd, self.log = name, list(cmd), log
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            self.popen = subprocess.Popen(self.cmd, env=dict(env), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        self.pid = self.popen.pid

    def __repr__(self) -> str:
        return f"<{self.name} pid {self.pid}>"

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def alive(self) -> bool:
        return self.popen.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the process only."""
        if self.alive():
            self.popen.send_signal(sig)

    def signal_group(self, sig: int) -> None:
        """Send ``sig`` to the whole process group (its pgid is its pid: it leads its session)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, sig)

    async def wait_exit(self, timeout: float) -> int:
        """The exit status, polled for up to ``timeout`` seconds."""
        await wait_until(lambda: self.popen.poll() is not None, timeout, f"{self.name} to exit")
        rc = self.popen.returncode
        assert rc is not None
        return rc

    async def kill9(self, timeout: float = 10.0) -> None:
        """SIGKILL the process group and reap the process."""
        self.signal_group(signal.SIGKILL)
        await self.wait_exit(timeout)

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace") if self.log.exists() else ""


class Procs:
    """The processes one test started; ``cleanup`` kills whatever is still running."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.procs: list[Proc] = []
        self.adopted: list[tuple[int, str | None]] = []

    def start(self, name: str, cmd: Sequence[str], *, env: Mapping[str, str], cwd: Path = ROOT) -> Proc:
        log = self.folder / "logs" / f"{name}-{len(self.procs)}.log"
        proc = Proc(name, cmd, env=env, log=log, cwd=cwd)
        self.procs.append(proc)
        return proc

    def adopt(self, pid: int) -> None:
        """Kill this pid's process group at cleanup too (a grandchild that leads a session of its own)."""
        self.adopted.append((pid, _started(pid)))

    def cleanup(self) -> None:
        groups = [p.pid for p in self.procs if p.alive()]
        # An adopted pid counts only while it is the same process (same start time), not a reused pid.
        groups += [pid for pid, since in self.adopted if since is not None and _started(pid) == since]
        for pid in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(10)

    def logs(self) -> str:
        """Every log, for a failure message."""
        return "\n".join(f"--- {p.name} (pid {p.pid}, exit {p.returncode}) {p.log}\n{p.log_text()[-3000:]}"
                         for p in self.procs)


def _stat(pid: int) -> list[str] | None:
    """/proc/PID/stat after the command name: state, ppid, pgrp, ... (None: no such process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None


def _started(pid: int) -> str | None:
    stat = _stat(pid)
    return stat[19] if stat else None  # field 22, starttime


def lock_waiters(path: Path) -> set[int]:
    """The pids blocked waiting for a lock on ``path`` (the ``->`` lines of /proc/locks)."""
    inode = path.stat().st_ino
    waiters = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 6 and fields[1] == "->" and int(fields[6].rsplit(":", 1)[1]) == inode:
            waiters.add(int(fields[5]))
    return waiters


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def pid_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    stat = _stat(pid)
    return stat is not None and stat[0] != "Z"


def children(pid: int) -> list[int]:
    """The direct children of ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and int(stat[1]) == pid:
            found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    out: list[int] = []
    todo = [pid]
    while todo:
        kids = children(todo.pop())
        out += kids
        todo += kids
    return out


# --- the parts ----------------------------------------------------------------------------------

def clean_env(**csops: str) -> dict[str, str]:
    """This environment without any CSOPS_* variable, plus ``csops``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOPS_")}
    env.update(csops)
    return env


def dev_server_cmd(db: Path, port: int, ui_port: int) -> list[str]:
    return [TEMPORAL, "server", "start-dev", "--db-filename", str(db), "--port", str(port), "--ui-port",
            str(ui_port), "--ip", "127.0.0.1", "--headless", "--sqlite-pragma", "journal_mode=wal",
            "--sqlite-pragma", "synchronous=normal", "--log-level", "warn"]


async def start_dev_server(procs: Procs, db: Path, port: int, ui_port: int, timeout: float = 60.0) -> Proc:
    """Start ``temporal server start-dev`` and wait until its frontend serves (an open port is not
    enough: it answers "Frontend is not healthy yet" for a while, longer on a busy machine)."""
    proc = procs.start("temporal", dev_server_cmd(db, port, ui_port), env=clean_env())

    def up() -> bool:
        if not proc.alive():
            raise AssertionError(f"the dev server exited with {proc.returncode}:\n{proc.log_text()[-3000:]}")
        return port_open(port)

    await wait_until(up, timeout, f"the dev server on port {port}")
    await wait_for_frontend(f"127.0.0.1:{port}", timeout, proc)
    return proc


async def wait_for_frontend(address: str, timeout: float = 60.0, proc: Proc | None = None) -> Client:
    """A client, once the frontend serves the default namespace."""
    async def ready() -> Client:
        if proc is not None and not proc.alive():
            raise AssertionError(f"the dev server exited with {proc.returncode}:\n{proc.log_text()[-3000:]}")
        client = await Client.connect(address)
        await client.count_workflows()
        return client
    client: Client = await wait_until(ready, timeout, f"Temporal at {address}", interval=0.2)
    return client


def start_worker(procs: Procs, env: Mapping[str, str]) -> Proc:
    return procs.start("worker", [sys.executable, "-m", "worker"], env=env)


async def wait_ready(worker: Proc, timeout: float = 60.0) -> None:
    """Until the worker prints that it polls its task queue."""
    def ready() -> bool:
        if not worker.alive():
            raise AssertionError(f"the worker exited with {worker.returncode}:\n{worker.log_text()[-3000:]}")
        return "worker: ready on task queue" in worker.log_text()
    await wait_until(ready, timeout, f"{worker} to poll")


# --- looking at runs ----------------------------------------------------------------------------

async def idle(handle: WorkflowHandle[Any, Any]) -> bool:
    """Running, and nothing to do until a timer fires or a signal comes: no activity, no workflow task."""
    desc = await handle.describe()
    raw = desc.raw_description
    return (desc.status == WorkflowExecutionStatus.RUNNING and not raw.pending_activities
            and not raw.HasField("pending_workflow_task"))


async def pending_timers(handle: WorkflowHandle[Any, Any]) -> list[datetime]:
    """When each timer that has started and neither fired nor been cancelled is due."""
    started: dict[str, datetime] = {}
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            attrs = event.timer_started_event_attributes
            started[attrs.timer_id] = (event.event_time.ToDatetime(tzinfo=UTC)
                                       + attrs.start_to_fire_timeout.ToTimedelta())
        elif event.event_type == EventType.EVENT_TYPE_TIMER_FIRED:
            started.pop(event.timer_fired_event_attributes.timer_id, None)
        elif event.event_type == EventType.EVENT_TYPE_TIMER_CANCELED:
            started.pop(event.timer_canceled_event_attributes.timer_id, None)
    return sorted(started.values())


def now() -> datetime:
    return datetime.now(UTC)
