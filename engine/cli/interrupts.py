"""Ctrl-C in any ``csops`` command: one line, exit 130, within 2 s — whatever the command was waiting on.

The first Ctrl-C raises KeyboardInterrupt as usual, so the command may close what it holds; if
that hangs (a connect stuck in the Rust client, a thread on a slow server), a timer ends the
process after INTERRUPT_GRACE seconds. A second Ctrl-C ends it at once. Commands that stop child
processes themselves (``csops up``, ``csops demo``) install their own handlers over this one. So does
``csops process``, which finishes or gives back the round in hand: it prints the same line
(``say_interrupted``) and keeps the same bound (``end_after``; a second Ctrl-C, ``end_now``).
"""

from __future__ import annotations

import os
import signal
import sys
import threading

__all__ = ["INTERRUPT_GRACE", "end_after", "end_now", "on_ctrl_c", "say_interrupted"]

INTERRUPT_GRACE = 1.5
"""Seconds a command gets to wind down after Ctrl-C before it is ended at once (exit 130 either way)."""


def say_interrupted(command: str) -> None:
    """The one line every command prints on Ctrl-C (stderr)."""
    print(f"csops {command}: interrupted", file=sys.stderr, flush=True)


def end_now(status: int = 130) -> None:
    """End the process at once (a second Ctrl-C, a wind-down past its time), stdout flushed."""
    sys.stdout.flush()
    os._exit(status)


def end_after(seconds: float) -> None:
    """End the process with 130 in ``seconds`` if it has not ended by then (a wind-down that hangs)."""
    timer = threading.Timer(seconds, end_now)
    timer.daemon = True
    timer.start()


def on_ctrl_c(command: str) -> None:
    """Ctrl-C: one line, exit 130 — at once if cleanup hangs (a connect stuck in a thread, a slow server)."""
    said = threading.Event()

    def on_sigint(signum: int, frame: object) -> None:
        if said.is_set():  # a second Ctrl-C: no more waiting
            end_now()
        said.set()
        say_interrupted(command)
        end_after(INTERRUPT_GRACE)
        raise KeyboardInterrupt

    # asyncio.run installs its own SIGINT handler only over the default one: this one stays in charge.
    signal.signal(signal.SIGINT, on_sigint)
