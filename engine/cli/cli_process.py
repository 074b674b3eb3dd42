"""``csops process``: an event processor, beside API processes that run with ``--no-processing`` (or as one's child).

The store's events table is the queue: ``csops api`` stores events, a processor claims them (with a
lease), applies their facts, delivers them to running runs, decides and starts runs, and marks them
processed (engine/triggers/ingest.py). By default each ``csops api`` runs one as its child
(``--for-api``: engine/cli/apichild.py); beside ``csops api --no-processing`` they run on their own, as
many as the queue needs (docs/operations.md, Sizing). Any number of processors may run on one store:
claims keep an event with one of them, and the claim of one that was killed lapses after the lease
(5 minutes), so another takes its events.

SIGTERM or Ctrl-C stops it: the round in hand is finished (its events marked, no claim left), then the
process ends with exit 0. A round that takes longer (a call stuck on Temporal, the CRM or a locked
store) is cancelled after STOP_GRACE, and its events go back to the queue at once, not after the lease
(engine/triggers/giveback.py). Ctrl-C is as in every csops command (engine/cli/interrupts.py): the
line "csops process: interrupted" at once, exit 130 within 2 s (the round gets INTERRUPT_ROUND, then
its claims are given back), and a second Ctrl-C ends it at once (its claims then lapse after the
lease). SIGHUP reloads the playbooks, as for the API and the worker.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.cli.interrupts import INTERRUPT_GRACE, end_after, end_now, say_interrupted
from engine.triggers.giveback import RELEASE_WAIT

if TYPE_CHECKING:
    from engine.config.settings import Settings
    from engine.triggers.ingest import Ingestor

__all__ = ["INTERRUPT_ROUND", "STOP_GRACE", "add_parsers", "cmd_process", "process_until"]

EXIT_OK, EXIT_USAGE, EXIT_INTERRUPTED = 0, 2, 130
STOP_GRACE = 8.0
"""Seconds the round in hand gets to finish after SIGTERM before processing is cancelled."""
INTERRUPT_ROUND = INTERRUPT_GRACE - RELEASE_WAIT
"""Seconds it gets after Ctrl-C: with giving its claims back, within every command's INTERRUPT_GRACE."""
POLL = 1.0
"""Seconds between looks at the queue when nothing woke the processor (the API is another process)."""


def add_parsers(sub: Any) -> None:
    """Register ``csops process``."""
    p = sub.add_parser("process", help="process queued events (for API processes run with --no-processing)",
                       description="Claim the events the API processes stored and process them: facts, delivery "
                                   "to running runs, trigger decisions and run starts. Run one or more beside "
                                   "`csops api --no-processing`; SIGTERM stops it after the round in hand.")
    p.add_argument("--poll", type=float, default=POLL,
                   help=f"seconds between looks at an empty queue (default {POLL:g})")
    p.add_argument("--for-api", action="store_true", help=argparse.SUPPRESS)  # csops api's child (cli/apichild.py)
    p.set_defaults(runs_handler=cmd_process)


async def process_until(ingestor: Ingestor, stop: asyncio.Event, *, poll: float = POLL,
                        grace: Callable[[], float] = lambda: STOP_GRACE) -> None:
    """Process queued events until ``stop`` is set; then finish the round in hand (at most ``grace()`` s, asked
    when ``stop`` is set), or else cancel it: its claims are given back (engine/triggers/giveback.py)."""
    task = asyncio.create_task(ingestor.run(poll=poll))
    waiting = asyncio.create_task(stop.wait())
    await asyncio.wait({task, waiting}, return_when=asyncio.FIRST_COMPLETED)
    waiting.cancel()
    ingestor.stop()
    try:
        await asyncio.wait_for(task, grace())
    except TimeoutError:  # a call stuck (Temporal, the CRM, a locked store): cancelled, the round's claims go back
        with contextlib.suppress(asyncio.CancelledError):
            await task


def cmd_process(args: Any) -> int:
    """``csops process``: until SIGTERM or Ctrl-C."""
    from engine.cli.common import load_settings

    if args.for_api:  # from the start: a Ctrl-C at the API's terminal while this one loads is the API's to handle
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    settings = load_settings("process")
    if settings is None:
        return EXIT_USAGE
    if not args.poll > 0:
        print(f"csops process: --poll {args.poll} must be more than 0 seconds", file=sys.stderr)
        return EXIT_USAGE
    loop = asyncio.new_event_loop()
    try:
        return loop.run_until_complete(_serve(settings, args.poll, for_api=args.for_api))
    finally:
        loop.close()


async def _serve(settings: Settings, poll: float, *, for_api: bool = False) -> int:
    """Process until stopped. ``for_api``: as ``csops api``'s child (engine/cli/apichild.py): a byte on stdin
    wakes it, end of file (the API stopping quickly, or gone) stops it as Ctrl-C would, and SIGINT is ignored
    (Ctrl-C at a terminal reaches the whole process group; the API decides how its child stops)."""
    from engine.root import Root, reload_on_hangup
    from engine.wiring import BuildError

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    got: list[int] = []
    name = f"csops api: event processing (pid {os.getpid()})" if for_api else "csops process"

    def on_signal(sig: int, *, quiet: bool = False) -> None:
        if sig == signal.SIGINT:
            if sig in got:  # a second Ctrl-C: no more waiting
                end_now()
            if not quiet:
                say_interrupted("process")
            end_after(INTERRUPT_GRACE + RELEASE_WAIT)  # if closing hangs after the round: within 2 s all the same
        got.append(sig)
        stop.set()

    loop.add_signal_handler(signal.SIGTERM, on_signal, signal.SIGTERM)
    if not for_api:
        loop.add_signal_handler(signal.SIGINT, on_signal, signal.SIGINT)
    async with Root(settings) as root:
        try:
            ingestor = await root.ingestor()
        except BuildError as exc:
            print(f"{name}: {exc}", file=sys.stderr)
            return EXIT_USAGE
        reload_on_hangup(root.playbooks)
        if for_api:
            _listen_to_api(ingestor.wake, lambda: None if stop.is_set() else on_signal(signal.SIGINT, quiet=True))
        print(f"{name}: processing events of {_where(settings.database_url)}", flush=True)
        await process_until(ingestor, stop, poll=poll,
                            grace=lambda: INTERRUPT_ROUND if signal.SIGINT in got else STOP_GRACE)
        print(f"{name}: stopped", flush=True)
    return EXIT_INTERRUPTED if signal.SIGINT in got and not for_api else EXIT_OK


def _listen_to_api(wake: asyncio.Event, gone: Callable[[], Any]) -> None:
    """Stdin from ``csops api``: any bytes wake the processing, end of file calls ``gone``."""
    loop = asyncio.get_running_loop()

    def readable() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            wake.set()
        else:
            loop.remove_reader(0)
            gone()

    loop.add_reader(0, readable)


def _where(url: str) -> str:
    """The store's URL without a password (it is printed)."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
