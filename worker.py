"""The Temporal worker: builds the connectors from the settings and runs PlaybookRun. Wiring only.

    python worker.py            # csops.yaml (or CSOPS_CONFIG) with CSOPS_* variables over it

Which CRM, mailer and chat it uses comes from the config file (engine/config.py, built by
engine/wiring.py); Temporal, the home folder and the store come from CSOPS_* variables over the file
(engine/settings.py). A config with problems stops it before it connects to anything (exit 2).

SIGTERM or SIGINT stops it gracefully: polling stops at once, running activities get a few seconds
to finish, and the process is gone within 10 s. Runs are durable: whatever is unfinished continues
on the next worker to poll the task queue.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from datetime import timedelta

from temporalio.service import RPCError
from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

from connectors import redact
from connectors.base import AccountLister
from connectors.ledger import Ledger
from engine.activities import PlaybookActivities
from engine.config import ConfigError
from engine.coverage import Coverage, load_coverage
from engine.redaction import redacting
from engine.runtypes import StartInput
from engine.scanflow import DailyScan, ScanActivities, ScheduleTick, ensure_schedule
from engine.settings import Settings
from engine.starter import connect, load_playbooks, start_run
from engine.store import Store
from engine.validate import COVERAGE_NAMES
from engine.wiring import BuildError, build_connectors
from engine.workflow import PlaybookRun, sandbox_runner

log = logging.getLogger("csops.worker")
GRACE = timedelta(seconds=6)
DEADLINE = 8.5  # seconds from SIGTERM to exit at the latest: the promise is 10 s
# Fixed pollers: on 2 cores autoscaling workflow-task pollers stalled batches of 500 runs (tasks
# waited a minute for a poller with the CPU idle) in 7 of 11 bench/runtime.py trials; 20 fixed never did.
POLLERS = int(os.environ.get("CSOPS_POLLERS", "20"))


async def serve(settings: Settings, stop: asyncio.Event, coverage: Coverage | None = None) -> None:
    """Run a worker until ``stop`` is set."""
    settings.home.mkdir(parents=True, exist_ok=True)
    connectors = await build_connectors(settings)
    try:
        client = await connect(settings)
        ledger = Ledger(settings.database_url)
        store = Store(settings.database_url)
    except BaseException:
        await connectors.close()
        raise

    async def starter(inp: StartInput) -> str:
        playbook = load_playbooks(settings.playbooks).get(inp.playbook)
        if playbook is None:
            return f"not started: no valid playbook {inp.playbook} in {settings.playbooks}"
        outcome, _ = await start_run(client, playbook, account_id=inp.account_id, task_queue=settings.task_queue,
                                     trigger=inp.trigger, calendar=settings.config.calendar.as_dict())
        return outcome

    activities = PlaybookActivities(crm=connectors.crm, mailer=connectors.mailer, chat=connectors.chat,
                                    ledger=ledger, starter=starter, http=connectors.http,
                                    fallback_owner=settings.fallback_owner, coverage=coverage,
                                    next_in_pool=store.next_in_pool)
    # The daily scan and schedule triggers page through the CRM's accounts (every shipped CRM can).
    scans = ScanActivities(crm=connectors.crm if isinstance(connectors.crm, AccountLister) else None, store=store,
                           playbooks=lambda: load_playbooks(settings.playbooks), task_queue=settings.task_queue,
                           calendar=settings.config.calendar.as_dict(), client=client)
    try:
        log.info("schedules: %s", ", ".join(await ensure_schedule(client, settings)))
    except RPCError as exc:  # runs still work; only date and schedule triggers wait for the next start
        log.warning("could not create or update the daily scan's schedule: %s", exc)
    worker = Worker(client, task_queue=settings.task_queue, workflows=[PlaybookRun, DailyScan, ScheduleTick],
                    activities=[*activities.all(), *map(redacting, scans.all())],
                    workflow_runner=sandbox_runner(), graceful_shutdown_timeout=GRACE,
                    workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
                    activity_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS))
    try:
        async with worker:
            log.info("worker polling %s on %s (namespace %s) with %s", settings.task_queue,
                     settings.temporal_address, settings.namespace,
                     ", ".join(f"{p.name} {p.kind}" for p in connectors.parts))
            print(f"worker: ready on task queue {settings.task_queue}", flush=True)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await connectors.close()
        ledger.close()
        store.close()


def load_coverage_model(settings: Settings) -> Coverage | None:
    """The coverage model beside the playbooks (coverage.yaml), if there is one.

    Raises:
        ConfigError: it has problems (each with its position).
    """
    path = next((settings.playbooks / n for n in COVERAGE_NAMES if (settings.playbooks / n).exists()), None)
    if path is None:
        return None
    coverage, problems = load_coverage(path)
    if problems or coverage is None:
        raise ConfigError(f"{path} has problems", problems)
    return coverage


def main() -> int:
    logging.basicConfig(level=os.environ.get("CSOPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    redact.install_logging()  # every record, from its creation: a server may echo a secret into an error
    try:
        settings = Settings.load()
        coverage = load_coverage_model(settings)
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
        await serve(settings, stop, coverage)

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
