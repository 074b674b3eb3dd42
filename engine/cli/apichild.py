"""``csops api``'s event processing in a child process, the default (``--processing child``).

One Python process has one GIL: an API that also processes spends its one core on both, and takes
events in at about two thirds of the rate of an API that only stores them (docs/operations.md,
Sizing). So ``csops api`` starts ``csops process --for-api`` beside it: the API process stores and
answers, the child claims and processes (claims keep each event with one processor, as for any
number of ``csops process``: engine/store/claims.py).

The child's life is the API's:

- it starts with the app (its lifespan) and is stopped at the app's shutdown: SIGTERM to the API
  gives it SIGTERM (the round in hand finishes, up to 8 s); Ctrl-C (SIGINT to the API) closes its
  pipe, which it takes as a quick stop (the round gets 1 s, then its claims are given back). It
  ignores SIGINT itself: Ctrl-C at a terminal reaches the whole process group, and the API decides.
- its stdin is a pipe from the API: a byte says "events were stored" (so it processes at once, as
  the processing loop in the API did, instead of at its next look), end of file says the API is
  gone. A crashed or killed API closes the pipe with its last breath, so no child outlives it by
  more than its quick stop (at most 2 s).
- if it dies on its own, the API logs it (an error, with its exit status) and starts another,
  after 1 s, doubling up to a minute while the new ones keep dying young. ``GET /v1/health`` says so
  too (``processing``: whether a child runs now, its restarts and the last one's exit status).
- it writes to the API's stdout and stderr; SIGHUP to the API reaches it too (playbooks reloaded).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import uvicorn

from engine.cli.cli_process import STOP_GRACE
from engine.cli.interrupts import INTERRUPT_GRACE
from engine.triggers.giveback import RELEASE_WAIT

__all__ = ["PROCESSING", "ProcessingChild", "Server"]

log = logging.getLogger("csops.api")

PROCESSING = ("child", "in-process", "none")
"""Where ``csops api`` processes the events it stores: a child process (the default), its own process, nowhere."""
LOOK = 1.0
"""Seconds between looks at whether the child still runs, when no events came in to tell it about."""
POKE_GAP = 0.02
"""Seconds at least between two wake-ups sent to the child: a burst of posts makes one, not one each."""
QUICK_WAIT = INTERRUPT_GRACE + RELEASE_WAIT + 0.3
"""Seconds a quick stop may take (the child's own bound after its pipe closes is INTERRUPT_GRACE + RELEASE_WAIT)."""
STOP_WAIT = STOP_GRACE + RELEASE_WAIT + 1.5
"""Seconds a stop by SIGTERM may take: the round in hand, giving back its claims, closing."""
RESTART_FIRST, RESTART_MOST, YOUNG = 1.0, 60.0, 60.0
"""Restarts of a child that died: after 1 s, doubling up to 60 s while each lived under YOUNG seconds."""


class Server(uvicorn.Server):
    """uvicorn's server, noting the signals that stop it (a Ctrl-C stops the child quickly, a SIGTERM gracefully)."""

    def __init__(self, config: uvicorn.Config, signals: list[int]) -> None:
        super().__init__(config)
        self.signals = signals
        """Every signal that asked it to stop, in order (Ctrl-C twice: two SIGINTs)."""

    def handle_exit(self, sig: int, frame: Any) -> None:
        self.signals.append(sig)
        super().handle_exit(sig, frame)


class ProcessingChild:
    """``csops process --for-api`` beside this API process, for as long as ``running`` is entered.

    Args:
        wake: The ingestor's wake-up event (set when it stored events): forwarded to the child.
        signals: The signals that stopped this process so far (``Server.signals``, a live list): Ctrl-C makes
            the stop quick, a second one kills the child at once.
        command: The child's command line (default: this Python, ``-m engine.cli process --for-api``).
    """

    def __init__(self, wake: asyncio.Event, *, signals: Sequence[int] = (),
                 command: Sequence[str] | None = None) -> None:
        self.wake, self.signals = wake, signals
        self.command = list(command or [sys.executable, "-m", "engine.cli", "process", "--for-api"])
        self.proc: subprocess.Popen[bytes] | None = None
        self.restarts = 0
        """How many times a child that died was replaced."""
        self.last_exit: int | None = None
        """The exit status of the last child that died on its own (negative: the signal that ended it), or None."""
        self._pipe = -1
        self._began = 0.0

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """The child runs inside; on leaving it is stopped (gracefully, quickly after Ctrl-C) or killed."""
        self._start()
        watch = asyncio.create_task(self._watch())
        try:
            yield
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watch
            await asyncio.to_thread(self._stop)

    def status(self) -> dict[str, Any]:
        """How ``GET /v1/health`` reports the processing: mode, whether a child runs now, restarts and last_exit."""
        running = self.proc is not None and self.proc.poll() is None
        return {"mode": "child", "running": running, "restarts": self.restarts, "last_exit": self.last_exit}

    def hangup(self) -> None:
        """Pass SIGHUP on: the child reloads its playbooks too."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGHUP)

    def _start(self) -> None:
        read, self._pipe = os.pipe()
        try:
            self.proc = subprocess.Popen(self.command, stdin=read, close_fds=True)
        except OSError:
            self._close_pipe()
            raise
        finally:
            os.close(read)
        os.set_blocking(self._pipe, False)
        self._began = time.monotonic()
        log.info("event processing runs in a child process, pid %d", self.proc.pid)

    async def _watch(self) -> None:
        delay = RESTART_FIRST
        while True:
            try:
                await asyncio.wait_for(self.wake.wait(), LOOK)
            except TimeoutError:
                pass
            else:
                self.wake.clear()
                self._poke()
                await asyncio.sleep(POKE_GAP)
            assert self.proc is not None
            if self.proc.poll() is None:
                continue
            lived = time.monotonic() - self._began
            self.last_exit = self.proc.returncode
            delay = RESTART_FIRST if lived >= YOUNG else delay
            log.error("the event processing child (pid %d) exited with status %s after %.0f s; starting another in "
                      "%g s (events wait in the store meanwhile: nothing is lost)", self.proc.pid,
                      self.proc.returncode, lived, delay)
            self._close_pipe()
            await asyncio.sleep(delay)
            delay = min(2 * delay, RESTART_MOST)
            self.restarts += 1
            try:
                self._start()
            except OSError as exc:  # no process to be had now (out of memory, pids): the next look tries again
                log.error("the event processing child could not be started again: %s", exc)

    def _poke(self) -> None:
        with contextlib.suppress(BlockingIOError, BrokenPipeError):  # full: it has wake-ups to read; gone: _watch
            os.write(self._pipe, b"w")

    def _close_pipe(self) -> None:
        if self._pipe >= 0:
            with contextlib.suppress(OSError):
                os.close(self._pipe)
            self._pipe = -1

    def _stop(self) -> None:
        proc = self.proc
        if proc is None or proc.poll() is not None:
            self._close_pipe()
            return
        quick = signal.SIGINT in self.signals
        if quick:
            self._close_pipe()  # end of file: its quick stop, as csops process's on Ctrl-C
        else:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + (QUICK_WAIT if quick else STOP_WAIT)
        while proc.poll() is None and time.monotonic() < deadline and list(self.signals).count(signal.SIGINT) < 2:
            time.sleep(0.02)
        if proc.poll() is None:
            log.warning("the event processing child (pid %d) did not stop in time; killing it (its claimed events "
                        "are taken up again after the lease)", proc.pid)
            proc.kill()
            proc.wait()
        self._close_pipe()

