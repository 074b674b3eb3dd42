"""The Temporal worker: runs PlaybookRun, DailyScan and ScheduleTick. Wiring only: engine/root.py builds it.

    python worker.py            # csops.yaml (or CSOPS_CONFIG) with CSOPS_* variables over it

Which CRM, mailer and chat it uses comes from the config file (engine/config/config.py, built by
engine/wiring.py); Temporal, the home folder and the store come from CSOPS_* variables over the file
(engine/config/settings.py). A config with problems stops it before it connects to anything (exit 2).

SIGHUP reloads the playbooks (engine/root.py ``Registry.reload``: a folder with errors is refused and
logged, the playbooks in force stay). SIGTERM or SIGINT stops it gracefully: polling stops at once,
running activities get a few seconds to finish, and the process is gone within 10 s. Runs are
durable: whatever is unfinished continues on the next worker to poll the task queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

from connectors import redact
from engine.config.config import ConfigError
from engine.config.settings import Settings
from engine.root import Root, load_coverage_model, reload_on_hangup, settle_heap
from engine.wiring import BuildError

__all__ = ["load_coverage_model", "serve"]  # load_coverage_model now lives in engine/root.py

log = logging.getLogger("csops.worker")
DEADLINE = 8.5  # seconds from SIGTERM to exit at the latest: the promise is 10 s


async def serve(root: Root, stop: asyncio.Event) -> None:
    """Run the root's worker until ``stop`` is set, then close the root's parts."""
    settings = root.settings
    async with root:
        worker = await root.worker()
        async with worker:
            connectors = await root.connectors()
            settle_heap()  # what it has built lives as long as the worker: out of every later full collection
            log.info("worker polling %s on %s (namespace %s) with %s", settings.task_queue,
                     settings.temporal_address, settings.namespace,
                     ", ".join(f"{p.name} {p.kind}" for p in connectors.parts))
            print(f"worker: ready on task queue {settings.task_queue}", flush=True)
            await stop.wait()
            log.info("worker stopping")


def main() -> int:
    logging.basicConfig(level=os.environ.get("CSOPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    redact.install_logging()  # every record, from its creation: a server may echo a secret into an error
    try:
        root = Root(Settings.load())
        root.coverage()  # a coverage.yaml with problems stops the worker before it connects
    except ConfigError as exc:
        for p in exc.problems:
            print(f"{p.path}:{p.line}:{p.col}: {p.message}" + (f" (hint: {p.hint})" if p.hint else ""),
                  file=sys.stderr)
        print(f"worker: cannot start: {exc} (csops check-config says more)", file=sys.stderr)
        return 2

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal() -> None:
            stop.set()
            # A connector call stuck in a thread (a locked database) can hold the graceful shutdown;
            # runs are durable and effects are in the ledger, so past the deadline the process just
            # goes, and the work is retried by the next worker.
            watchdog = threading.Timer(DEADLINE, lambda: (sys.stdout.flush(), os._exit(0)))
            watchdog.daemon = True
            watchdog.start()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, on_signal)
        reload_on_hangup(root.playbooks)  # SIGHUP: validate the playbooks folder now, swap it in if it has no errors
        await serve(root, stop)

    # Not asyncio.run(): at exit it joins the default thread pool, and a connector call stuck in a
    # thread (a locked database) would hold the process past the 10 s promise. Once the worker has
    # shut down gracefully the process ends with os._exit, abandoning such a thread: its activity
    # times out on the server and is retried by the next worker, where the ledger keeps it once.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    except (OSError, RuntimeError, BuildError) as exc:
        print(f"worker: cannot run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # temporalio's native core can abort at interpreter shutdown (sdk-python #300)
