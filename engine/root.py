"""The composition root: from the settings (csops.yaml and CSOPS_* variables) to the parts every process uses.

One place builds the calendar, the store, the connectors, the coverage model, the playbook registry,
the Temporal client and, from those, what a process runs: the worker (``Root.worker``), the event
ingestor (``Root.ingestor``), the door into a run (``Root.door``) and the ``Start`` every run is
started with (``Root.start``: with the configured calendar). worker.py, ``csops api``, ``csops
event``, ``csops start``, ``csops explain`` and ``csops runs`` all take their parts from here, so a
start, an explanation and a run see the same calendar and the same playbooks.

Parts are built on first use and closed by ``close`` (or ``async with``): the API answers reads while
Temporal is down, because the client is connected only when a start or a signal needs it.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import math
import os
import signal
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from engine.config.config import ConfigError
from engine.config.settings import Settings
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.runtime.starter import check_playbooks
from engine.store.store import Store
from engine.triggers.signals import Decision

if TYPE_CHECKING:
    from temporalio.client import Client
    from temporalio.worker import Worker

    from connectors.ledger import Ledger
    from connectors.suppression import SuppressionList
    from engine.language.coverage import Coverage
    from engine.payloads.runtypes import Event, StartInput
    from engine.triggers.door import Door
    from engine.triggers.ingest import Ingestor
    from engine.wiring import Connectors, Part

__all__ = ["CHECK_EVERY", "Registry", "Root", "fingerprint", "load_coverage_model", "reload_on_hangup", "settle_heap"]

log = logging.getLogger("csops.worker")
Fingerprint = tuple[tuple[str, int, int], ...]
GRACE = timedelta(seconds=6)
"""How long running activities get to finish when the worker stops."""
# Fixed pollers: on 2 cores autoscaling workflow-task pollers stalled batches of 500 runs (tasks
# waited a minute for a poller with the CPU idle) in 7 of 11 bench/runtime.py trials; 20 fixed never did.
POLLERS = int(os.environ.get("CSOPS_POLLERS", "20"))


def fingerprint(folder: Path) -> Fingerprint:
    """Every file under ``folder`` as (relative path, mtime in ns, size): changes when a file is
    edited, added, removed or renamed. Costs one stat per file, no reading."""
    out: list[tuple[str, int, int]] = []
    for top, dirs, files in os.walk(folder):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(top, name)
            try:
                st = os.stat(path)
            except OSError:  # removed while we looked: the next call sees the folder without it
                continue
            out.append((os.path.relpath(path, folder), st.st_mtime_ns, st.st_size))
    return tuple(out)


CHECK_EVERY = 1.0
"""Seconds at most between two looks at the playbooks folder (a stat per file) by ``Registry``."""
Loaded = tuple[dict[str, Playbook], list[str]]


class Registry:
    """The playbooks in force, by id: the folder's, compiled once per version, swapped when the folder changes.

    Every part of a process (the ingestor, the door, the scan, the API) calls the one registry of its
    root, per event, per start, per page: that costs a clock reading; at most once per ``check_every``
    seconds the folder's files are stat-ed, and only a changed folder is validated again. ``reload``
    (the reload signal, SIGHUP, see ``reload_on_hangup``) validates it at once, changed or not.

    A folder that fails validation never replaces the playbooks in force: its problems are logged
    and the registry keeps what it had (at the first load, when there is nothing to keep, its valid
    playbooks are taken). A playbook whose version did not change keeps its compiled object.

    Args:
        folder: The playbooks folder (``settings.playbooks``).
        load: Validates the folder: its valid playbooks by id and its errors (engine.runtime.starter.check_playbooks),
            or only the playbooks (then no errors are known).
        check_every: Seconds at most between two looks at the folder (0: at every call).
        clock: A monotonic clock in seconds.
    """

    def __init__(self, folder: Path, load: Callable[[Path], Loaded | dict[str, Playbook]] = check_playbooks, *,
                 check_every: float = CHECK_EVERY, clock: Callable[[], float] = time.monotonic) -> None:
        self.folder, self._load, self.check_every, self._clock = folder, load, check_every, clock
        self._seen: Fingerprint | None = None
        self._looked = -math.inf
        self._books: dict[str, Playbook] = {}
        self._lock = threading.Lock()
        self.loads = 0
        """How many times the folder was validated."""
        self.refused: list[str] = []
        """The errors of the last validation that was not swapped in ([] when the last one was)."""

    def __call__(self) -> dict[str, Playbook]:
        now = self._clock()
        if now - self._looked >= self.check_every and self._lock.acquire(blocking=False):
            # Not waiting for a reload that holds the lock: until it is done the playbooks in force serve.
            try:
                self._looked = now
                seen = fingerprint(self.folder)  # taken before loading: an edit during the load is seen next time
                if seen != self._seen:
                    self._swap(seen)
            finally:
                self._lock.release()
        return self._books

    def reload(self) -> list[str]:
        """Validate the folder now and swap its playbooks in; its errors ([]: swapped; else the old ones stay)."""
        with self._lock:
            self._looked = self._clock()
            return self._swap(fingerprint(self.folder))

    def _swap(self, seen: Fingerprint) -> list[str]:
        loaded = self._load(self.folder)
        books, errors = (loaded, []) if isinstance(loaded, dict) else loaded
        self.loads += 1
        self._seen = seen  # a refused folder is not validated again until it changes (or a reload)
        if errors and self.loads > 1:
            self.refused = errors
            log.error("the playbooks in %s have %d error(s), so the %d playbooks in force stay as they were until "
                      "the folder validates (csops validate %s): %s", self.folder, len(errors), len(self._books),
                      self.folder, "; ".join(errors[:5]))
            return errors
        if errors:
            log.error("the playbooks in %s have %d error(s); the valid ones are in force (csops validate %s): %s",
                      self.folder, len(errors), self.folder, "; ".join(errors[:5]))
        old = self._books
        self._books = {pid: old[pid] if pid in old and old[pid].version == pb.version else pb
                       for pid, pb in books.items()}
        self.refused = []
        log.info("playbooks in force from %s: %s", self.folder, ", ".join(sorted(self._books)) or "none")
        return []


def reload_on_hangup(registry: Registry, *, also: Callable[[], None] | None = None) -> None:
    """SIGHUP to this process reloads the registry (validated on a worker thread, not on the event loop); ``also``."""
    loop = asyncio.get_running_loop()

    def hangup() -> None:
        log.info("SIGHUP: reloading the playbooks of %s", registry.folder)
        loop.run_in_executor(None, registry.reload)
        if also is not None:
            also()

    loop.add_signal_handler(signal.SIGHUP, hangup)


def load_coverage_model(settings: Settings) -> Coverage | None:
    """The coverage model beside the playbooks (coverage.yaml), if there is one.

    Raises:
        ConfigError: it has problems (each with its position).
    """
    from engine.language.coverage import load_coverage
    from engine.language.validate import COVERAGE_NAMES

    path = next((settings.playbooks / n for n in COVERAGE_NAMES if (settings.playbooks / n).exists()), None)
    if path is None:
        return None
    coverage, problems = load_coverage(path)
    if problems or coverage is None:
        raise ConfigError(f"{path} has problems", problems)
    return coverage


class Root:
    """The parts of one process, built from ``settings`` on first use.

    Args:
        settings: What csops.yaml and the CSOPS_* variables say.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.calendar = Calendar.from_dict(settings.config.calendar.as_dict())
        """The configured calendar: every run is started with it, explain and the matcher use it."""
        self.playbooks = Registry(settings.playbooks)
        """The playbooks in force from ``settings.playbooks`` (a callable; swapped when the folder changes, or on
        ``reload``: SIGHUP to worker.py and ``csops api``)."""
        self._store: Store | None = None
        self._client: Client | None = None
        self._connectors: Connectors | None = None
        self._crm: Part | None = None
        self._coverage: tuple[Coverage | None] | None = None
        self._ledger: Ledger | None = None
        self._suppressions: SuppressionList | None = None

    async def __aenter__(self) -> Root:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    @property
    def store(self) -> Store:
        """The engine's store (events, decisions, runs)."""
        if self._store is None:
            self._store = Store(self.settings.database_url)
        return self._store

    @property
    def suppressions(self) -> SuppressionList:
        """The suppression list (the same table the worker's PolicyMailer reads)."""
        if self._suppressions is None:
            from connectors.suppression import SuppressionList

            self._suppressions = SuppressionList(self.settings.database_url)
        return self._suppressions

    def coverage(self) -> Coverage | None:
        """The coverage model (loaded once).

        Raises:
            ConfigError: coverage.yaml has problems.
        """
        if self._coverage is None:
            self._coverage = (load_coverage_model(self.settings),)
        return self._coverage[0]

    async def client(self) -> Client:
        """The Temporal client, connected on first use.

        Raises:
            RuntimeError: Temporal cannot be reached.
        """
        if self._client is None:
            from engine.runtime.starter import connect

            self._client = await connect(self.settings)
        return self._client

    async def connectors(self) -> Connectors:
        """Every connector, for the worker (built once).

        Raises:
            engine.wiring.BuildError: a part cannot be built.
        """
        if self._connectors is None:
            from engine.wiring import build_connectors

            self._connectors = await build_connectors(self.settings)
        return self._connectors

    async def crm(self) -> Any:
        """The CRM connector: the worker's when built, else the CRM alone (for the API and the CLI).

        Raises:
            engine.wiring.BuildError: it cannot be built.
        """
        if self._connectors is not None:
            return self._connectors.crm
        if self._crm is None:
            from engine.wiring import build_crm

            self._crm = await build_crm(self.settings)
        return self._crm.connector

    async def start(self, playbook: Playbook, decision: Decision) -> tuple[str, str]:
        """The ``Start`` every run begins with (engine.triggers.enrol.Start): on the task queue, with the calendar."""
        from engine.runtime.temporal import temporal_starter

        return await temporal_starter(await self.client(), self.settings.task_queue,
                                      calendar=self.calendar)(playbook, decision)

    async def signal_run(self, run_id: str, event: Event) -> bool | str:
        """Deliver an event to a run (engine.triggers.ingest.SignalRun)."""
        from engine.runtime.temporal import temporal_signaller

        return await temporal_signaller(await self.client())(run_id, event)

    async def still_running(self, run_id: str) -> bool:
        """Whether a run the store has as running still runs in Temporal."""
        from temporalio.service import RPCError

        from engine.runtime.runrecord import is_running
        from engine.runtime.temporal import outage

        try:
            return await is_running(self.store, await self.client(), run_id)
        except RPCError as exc:
            raise outage(exc) from exc

    async def door(self) -> Door:
        """The door for starts by a person or a step (engine/triggers/door.py)."""
        from engine.triggers.door import Door

        return Door(store=self.store, crm=await self.crm(), playbooks=self.playbooks, start=self.start,
                    calendar=self.calendar, still_running=self.still_running)

    async def step_starter(self) -> Callable[[StartInput], Any]:
        """The ``starter`` of PlaybookActivities: a ``start_playbook`` step goes through the door."""
        from engine.triggers.door import start_from_step

        door = await self.door()

        async def starter(inp: StartInput) -> str:
            return await start_from_step(door, inp)
        return starter

    async def ingestor(self) -> Ingestor:
        """The event ingestor over this process's store, CRM, playbooks and calendar."""
        from engine.triggers.ingest import Ingestor
        from engine.triggers.suppress import event_suppressor

        return Ingestor(store=self.store, crm=await self.crm(), playbooks=self.playbooks, start=self.start,
                        signal_run=self.signal_run, still_running=self.still_running, calendar=self.calendar,
                        suppress=event_suppressor(self.suppressions))

    async def worker(self) -> Worker:
        """The Temporal worker: PlaybookRun, DailyScan and ScheduleTick with their activities.

        Creates or updates the scan and schedule triggers' Temporal Schedules first (a failure there
        is logged: runs still work).
        """
        from temporalio.service import RPCError
        from temporalio.worker import PollerBehaviorSimpleMaximum, Worker

        from connectors.base import AccountLister
        from connectors.ledger import Ledger
        from engine.runtime.activities import PlaybookActivities
        from engine.runtime.redaction import redacting
        from engine.runtime.scanflow import DailyScan, ScanActivities, ScheduleTick, ensure_schedule
        from engine.runtime.workflow import PlaybookRun, sandbox_runner

        settings, coverage = self.settings, self.coverage()
        self.settings.home.mkdir(parents=True, exist_ok=True)
        connectors = await self.connectors()
        client = await self.client()
        if self._ledger is None:
            self._ledger = Ledger(settings.database_url)
        activities = PlaybookActivities(crm=connectors.crm, mailer=connectors.mailer, chat=connectors.chat,
                                        ledger=self._ledger, starter=await self.step_starter(), http=connectors.http,
                                        fallback_owner=settings.fallback_owner, coverage=coverage,
                                        next_in_pool=self.store.next_in_pool)
        # The daily scan and schedule triggers page through the CRM's accounts (every shipped CRM can).
        crm = connectors.crm if isinstance(connectors.crm, AccountLister) else None
        scans = ScanActivities(crm=crm, store=self.store, playbooks=self.playbooks, task_queue=settings.task_queue,
                               calendar=settings.config.calendar.as_dict(), start=self.start)
        try:
            log.info("schedules: %s", ", ".join(await ensure_schedule(client, settings, self.playbooks())))
        except RPCError as exc:  # runs still work; only date and schedule triggers wait for the next start
            log.warning("could not create or update the daily scan's schedule: %s", exc)
        return Worker(client, task_queue=settings.task_queue, workflows=[PlaybookRun, DailyScan, ScheduleTick],
                      activities=[*activities.all(), *map(redacting, scans.all())], workflow_runner=sandbox_runner(),
                      graceful_shutdown_timeout=GRACE,
                      workflow_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS),
                      activity_task_poller_behavior=PollerBehaviorSimpleMaximum(POLLERS))

    async def close(self) -> None:
        """Close what was built (connectors, the CRM, the store)."""
        if self._connectors is not None:
            await self._connectors.close()
            self._connectors = None
        if self._crm is not None:
            await self._crm.close()
            self._crm = None
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        if self._suppressions is not None:
            self._suppressions.close()
            self._suppressions = None
        if self._store is not None:
            self._store.close()
            self._store = None


def settle_heap() -> None:
    """Collect once, then keep every object alive now out of later garbage collections (``gc.freeze``).

    For a long-lived process once it has started: its modules, playbooks, compiled statements and
    clients live as long as it does, yet each full collection walked them all again (about 65 ms of a
    daily scan's 0.1-0.2 s of CPU on a million accounts). Nothing is collected that would have been:
    the collection first frees what is garbage already, and frozen objects are only not looked at
    again (a cycle among them that dies later, as the playbooks swapped out by a reload, stays in memory).
    """
    gc.collect()
    gc.freeze()
