"""The Temporal worker: builds the connectors from the settings and runs PlaybookRun. Wiring only.

    python worker.py            # settings from CSOPS_* environment variables (engine/settings.py)

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

from temporalio.worker import PollerBehaviorAutoscaling, Worker

from connectors.ledger import Ledger
from connectors.outbox import ChatOutbox, EmailOutbox
from connectors.sqlcrm import SQLCRM
from connectors.webhook import Webhook
from engine.activities import PlaybookActivities
from engine.runtypes import StartInput
from engine.settings import Settings
from engine.starter import connect, load_playbooks, start_run
from engine.workflow import PlaybookRun, sandbox_runner

log = logging.getLogger("csops.worker")
GRACE = timedelta(seconds=6)
DEADLINE = 8.5  # seconds from SIGTERM to exit at the latest: the promise is 10 s


async def serve(settings: Settings, stop: asyncio.Event) -> None:
    """Run a worker until ``stop`` is set."""
    settings.home.mkdir(parents=True, exist_ok=True)
    client = await connect(settings)
    crm = SQLCRM(settings.database_url)
    ledger = Ledger(settings.database_url)

    async def starter(inp: StartInput) -> str:
        playbook = load_playbooks(settings.playbooks).get(inp.playbook)
        if playbook is None:
            return f"not started: no valid playbook {inp.playbook} in {settings.playbooks}"
        outcome, _ = await start_run(client, playbook, account_id=inp.account_id, task_queue=settings.task_queue,
                                     trigger=inp.trigger)
        return outcome

    webhook = Webhook(list(settings.webhook_hosts))
    activities = PlaybookActivities(crm=crm, mailer=EmailOutbox(settings.mail_outbox),
                                    chat=ChatOutbox(settings.chat_outbox), ledger=ledger, starter=starter,
                                    http=webhook, fallback_owner=settings.fallback_owner)
    worker = Worker(client, task_queue=settings.task_queue, workflows=[PlaybookRun], activities=activities.all(),
                    workflow_runner=sandbox_runner(), graceful_shutdown_timeout=GRACE,
                    workflow_task_poller_behavior=PollerBehaviorAutoscaling(),
                    activity_task_poller_behavior=PollerBehaviorAutoscaling())
    try:
        async with worker:
            log.info("worker polling %s on %s (namespace %s)", settings.task_queue, settings.temporal_address,
                     settings.namespace)
            print(f"worker: ready on task queue {settings.task_queue}", flush=True)
            await stop.wait()
            log.info("worker stopping")
    finally:
        await webhook.close()
        crm.close()
        ledger.close()


def main() -> int:
    logging.basicConfig(level=os.environ.get("CSOPS_LOG_LEVEL", "INFO"), format="%(asctime)s %(name)s %(message)s")
    settings = Settings.from_env()

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
        await serve(settings, stop)

    # Not asyncio.run(): at exit it joins the default thread pool, and a connector call stuck in a
    # thread (a locked database) would hold the process past the 10 s promise. Once the worker has
    # shut down gracefully the process ends with os._exit, abandoning such a thread: its activity
    # times out on the server and is retried by the next worker, where the ledger keeps it once.
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(run())
    except (OSError, RuntimeError) as exc:
        print(f"worker: cannot run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # temporalio's native core can abort at interpreter shutdown (sdk-python #300)
