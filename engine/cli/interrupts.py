"""Ctrl-C in any ``csops`` command: one line, exit 130, within 2 s — whatever the command was waiting on.

The first Ctrl-C raises KeyboardInterrupt as usual, so the command may close what it holds; if
that hangs (a connect stuck in the Rust client, a thread on a slow server), a timer ends the
process after INTERRUPT_GRACE seconds. A second Ctrl-C ends it at once. Commands that stop child
processes themselves (``csops up``, ``csops demo``) install their own handlers over this one.
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["INTERRUPT_GRACE", "on_ctrl_c"]

INTERRUPT_GRACE = 1.5
"""Seconds a command gets to wind down after Ctrl-C before it is ended at once (exit 130 either way)."""


def on_ctrl_c(command: str) -> None:
    """Ctrl-C: one line, exit 130 — at once if cleanup hangs (a connect stuck in a thread, a slow server)."""
    said = threading.Event()

    def leave() -> None:
        if not said.is_set():
            said.set()
            print(f"csops {command}: interrupted", file=sys.stderr, flush=True)
        sys.stdout.flush()
        os._exit(130)

    def on_sigint(signum: int, frame: object) -> None:
        if said.is_set():  # a second Ctrl-C: no more waiting
            leave()
        said.set()
        print(f"csops {command}: interrupted", file=sys.stderr, flush=True)
        timer = threading.Timer(INTERRUPT_GRACE, leave)
        timer.daemon = True
        timer.start()
        raise KeyboardInterrupt

    # asyncio.run installs its own SIGINT handler only over the default one: this one stays in charge.
    signal.signal(signal.SIGINT, on_sigint)
