"""Trigger matching in a child process, with a time bound, so a slow ``where`` cannot freeze the API.

The sandbox bounds every evaluation by counts (engine/language/sandbox.py), so a condition takes about a
second at worst; this is the second line of defence. A long C call holds the GIL: run on the API's
event loop, or even on a thread, it would stop every request (``/v1/health`` included). The API's
event processor (``Ingestor.run``) therefore asks ``engine.triggers.matcher.decide`` in a child process: the
loop only waits on a pipe, from a thread.
A call that takes over ``MATCH_TIMEOUT`` seconds is cut off: the child is killed (started again
for the next call) and the caller gets ``MatchTimeout``, which the ingestor records as a
suppressed ``expression_error`` decision. The child's memory is capped too (``MATCH_MEMORY``), so
an expression building a huge value fails with MemoryError there instead of swapping the host.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import threading
from datetime import date
from multiprocessing.connection import Connection
from typing import Any

from engine.errors import CsopsError
from engine.language.model import Playbook
from engine.triggers.explain import explain
from engine.triggers.matcher import decide
from engine.triggers.signals import Check, Decision, Facts, Signal

__all__ = ["MATCH_MEMORY", "MATCH_TIMEOUT", "MatchTimeout", "MatchWorker"]

MATCH_TIMEOUT = 2.0
"""Seconds one playbook's trigger check for one event may take before it is cut off."""
MATCH_MEMORY = 1024 * 1024 * 1024
"""Bytes of address space the matching child may use beyond what it has at start (Linux, macOS)."""
START_TIMEOUT = 60.0
"""Seconds the child may take to start (it imports the engine)."""


class MatchTimeout(CsopsError):
    """A trigger check ran over the time bound and was cut off."""


class MatchWorker:
    """One child process answering ``decide`` calls, one at a time; replaced when a call runs over."""

    def __init__(self, timeout: float | None = None) -> None:
        self.timeout = MATCH_TIMEOUT if timeout is None else timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._send: Connection | None = None
        self._conn: Connection | None = None
        self._turn = threading.Lock()
        self._queue = asyncio.Lock()

    async def decide(self, playbook: Playbook, signal: Signal, facts: Facts) -> Decision | None:
        """``engine.triggers.matcher.decide`` in the child.

        Raises:
            MatchTimeout: it took over ``timeout`` seconds (the child was killed).
            Exception: what ``decide`` raised in the child.
        """
        answer: Decision | None = await self._ask("decide", playbook, (playbook, signal, facts))
        return answer

    async def explain(self, playbook: Playbook, facts: Facts, today: date) -> list[Check]:
        """``engine.triggers.explain.explain`` in the child (the API's explain route: its conditions are as
        slow as the matcher's).

        Raises:
            MatchTimeout: it took over ``timeout`` seconds (the child was killed).
        """
        checks: list[Check] = await self._ask("explain", playbook, (playbook, facts, today))
        return checks

    async def _ask(self, name: str, playbook: Playbook, args: tuple[Any, ...]) -> Any:
        async with self._queue:
            return await asyncio.to_thread(self._call, name, playbook, args)

    def _call(self, name: str, playbook: Playbook, args: tuple[Any, ...]) -> Any:
        with self._turn:
            conn = self._ready()
            assert self._send is not None
            self._send.send((name, args))
            if not conn.poll(self.timeout):
                self._stop()
                raise MatchTimeout(f"checking the triggers of playbook {playbook.id!r} took over {self.timeout:g} s "
                                   "and was stopped; simplify its conditions (where, audience.when)")
            try:
                ok, value = conn.recv()
            except (EOFError, OSError):  # the child died (out of memory, killed): start a new one next time
                self._stop()
                raise RuntimeError("the trigger check stopped unexpectedly (out of memory?); simplify the "
                                   "playbook's conditions") from None
        if ok:
            return value
        raise value

    def _ready(self) -> Connection:
        if self._proc is not None and self._proc.poll() is None and self._conn is not None:
            return self._conn
        self._stop()
        # A fresh interpreter (``python -m engine.triggers.matchmain``), not multiprocessing's fork (unsafe
        # beside threads and an event loop) nor its spawn (which re-runs the parent's main script).
        proc = subprocess.Popen([sys.executable, "-m", "engine.triggers.matchmain"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, close_fds=True)
        assert proc.stdin is not None and proc.stdout is not None
        send = Connection(os.dup(proc.stdin.fileno()), readable=False)
        conn = Connection(os.dup(proc.stdout.fileno()), writable=False)
        proc.stdin.close()
        proc.stdout.close()
        self._proc, self._send, self._conn = proc, send, conn
        if not conn.poll(START_TIMEOUT):
            self._stop()
            raise RuntimeError("the trigger matching process did not start")
        try:
            conn.recv()
        except (EOFError, OSError):
            self._stop()
            raise RuntimeError(
                "the trigger matching process could not start (python -m engine.triggers.matchmain)") from None
        return conn

    def _stop(self) -> None:
        for end in (self._send, self._conn):
            if end is not None:
                with contextlib.suppress(OSError):
                    end.close()
        if self._proc is not None:
            self._proc.kill()
            self._proc.wait(5)
        self._proc = self._send = self._conn = None

    def close(self) -> None:
        """Stop the child (it also ends by itself when this process goes away: its pipe closes)."""
        with self._turn:
            self._stop()


_CALLS: dict[str, Any] = {"decide": decide, "explain": explain}
"""What the child answers, by the name a request gives."""


def serve(requests: Connection, replies: Connection) -> None:
    """The child: answer ``decide`` and ``explain`` calls until the parent closes its end."""
    _cap_memory()
    replies.send("ready")
    while True:
        try:
            name, args = requests.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple[bool, Any] = (True, _CALLS[name](*args))
        except Exception as exc:  # noqa: BLE001 - handed back to the caller as it was
            reply = (False, exc)
        try:
            replies.send(reply)
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle: say it in words
            replies.send((False, RuntimeError(f"{type(exc).__name__}: {exc}")))


def main() -> None:
    """Entry point of the child: requests on stdin, replies on the real stdout; anything printed goes to stderr."""
    # Ctrl-C at a terminal reaches the whole process group: the parent decides when this child ends (it
    # kills it, or its pipe closes), so the child must not die mid-answer (failing the parent's round) nor
    # print a KeyboardInterrupt traceback under the parent's one "interrupted" line.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    replies = Connection(os.dup(1), readable=False)
    os.dup2(2, 1)  # a stray print must not corrupt the replies
    serve(Connection(os.dup(0), writable=False), replies)


def _cap_memory() -> None:
    with contextlib.suppress(ImportError, ValueError, OSError):
        import resource

        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[0])
        want = pages * resource.getpagesize() + MATCH_MEMORY
        _, hard = resource.getrlimit(resource.RLIMIT_AS)
        resource.setrlimit(resource.RLIMIT_AS, (want if hard == resource.RLIM_INFINITY else min(want, hard), hard))
