"""The Temporal side of date and schedule triggers: the DailyScan and ScheduleTick workflows, their
activities, and the Temporal Schedules that start them.

``ensure_schedule`` runs when the worker starts and makes the schedules match the config and the
playbooks, creating or updating each one (so it is safe to call any number of times):

- ``csops-daily-scan``: ``scan.cron`` (default ``0 6 * * *``) in the calendar's time zone starts
  ``DailyScan``, which scans date triggers (engine/triggers/scan.py). Its window starts at the last day
  scanned, so a day the server was down is caught up by the next scan; Temporal also runs one
  missed scan when it comes back within a day (catch-up window), and never two at once.
- ``csops-tick-<hash>``: one schedule per distinct (cron, time zone) of the enabled playbooks'
  ``schedule`` triggers starts ``ScheduleTick``. Schedules whose cron no playbook uses any more are
  deleted. One schedule per cron, rather than one frequent tick that evaluates every cron, because
  Temporal then does the timing, the time zones and daylight saving, and the catch-up after an
  outage, and every tick is visible in the UI with its scheduled time, which is the tick's
  occurrence key; a frequent tick would wake up every minute to do nothing most of the time and
  would need its own catch-up bookkeeping.

Each workflow runs one activity, which does the reading and the starting; its retries are safe
because every start is idempotent by the run's workflow id and the used occurrence keys.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import activity, workflow
from temporalio.common import RetryPolicy, SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from croniter import croniter
    from temporalio.client import (
        Client,
        Schedule,
        ScheduleActionStartWorkflow,
        ScheduleAlreadyRunningError,
        ScheduleOverlapPolicy,
        SchedulePolicy,
        ScheduleSpec,
        ScheduleUpdate,
        ScheduleUpdateInput,
    )

    from engine.config.settings import Settings
    from engine.health.hooks import recompute_in_scan
    from engine.language.context import Calendar
    from engine.language.model import Playbook
    from engine.runtime.scanpages import (
        HEARTBEAT,
        PAGES_PATCH,
        ROUNDS,
        FinishInput,
        PageActivities,
        PageInput,
        PageResult,
        ScanState,
        advance,
    )
    from engine.runtime.starter import load_playbooks
    from engine.store.store import Store
    from engine.triggers import scan
    from engine.triggers.enrol import Start
    from engine.triggers.signals import Decision

log = logging.getLogger("csops.scan")
DAILY_SCAN_ID = "csops-daily-scan"
TICK_PREFIX = "csops-tick-"
RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5), maximum_attempts=20)
SCHEDULED_AT = SearchAttributeKey.for_datetime("TemporalScheduledStartTime")


@dataclass(frozen=True, kw_only=True)
class ScanInput:
    """What DailyScan is started with."""

    now: str = ""
    """The scan's time as aware ISO text; empty: the activity's clock (the normal case)."""
    page: int = 0
    """Accounts per page of the paged scan (engine/runtime/scanpages.py); 0: ``scan.PAGE``."""
    rounds: int = 0
    """Rounds of pages per workflow run before it continues as new; 0: ``scanpages.ROUNDS``."""
    resume: ScanState | None = None
    """A paged scan under way, carried over by continue-as-new; None: a new scan."""


@dataclass(frozen=True, kw_only=True)
class ScanSummary:
    """What a scan or a tick did."""

    since: str = ""
    """The last day covered before (exclusive); empty when there was nothing to do."""
    today: str = ""
    """The day covered up to (inclusive); for a tick, the tick time."""
    found: int = 0
    """Decisions the matcher made."""
    started: int = 0
    """Runs started."""
    suppressed: int = 0
    """Decisions recorded as suppressed."""
    note: str = ""
    """Why nothing was scanned, or which playbooks were skipped and why, in plain words."""


@dataclass(frozen=True, kw_only=True)
class TickInput:
    """What ScheduleTick is started with (fixed in its schedule)."""

    cron: str
    """The cron expression of the schedule triggers it ticks for."""
    timezone: str = "UTC"
    """Their time zone."""
    at: str = ""
    """The tick time as aware ISO text; empty: the workflow fills in the scheduled time."""


class ScanActivities:
    """The scan and tick activities, over the CRM and the store.

    Args:
        crm: The CRM, or None when it cannot list its accounts (``AccountLister``): the scan then
            reports that it did nothing.
        store: The engine's store.
        playbooks: Returns the playbooks by id (read again at every scan, so edits count).
        task_queue: The task queue runs are started on.
        calendar: The calendar (``CalendarConfig.as_dict()``), for the scan.
        start: Starts a decision's run (engine.triggers.enrol.Start; engine/root.py's ``Root.start``, which
            starts it with the same calendar); may be set after construction.
    """

    def __init__(self, *, crm: scan.ScanCRM | None, store: Store, playbooks: Callable[[], Mapping[str, Playbook]],
                 task_queue: str, calendar: Mapping[str, Any] | None = None, start: Start | None = None) -> None:
        self.crm, self.store, self.playbooks, self.task_queue = crm, store, playbooks, task_queue
        self.calendar = dict(calendar or {})
        self.start = start

    async def _start(self, playbook: Playbook, decision: Decision) -> tuple[str, str]:
        assert self.start is not None, "ScanActivities.start must be set before the worker runs"
        return await self.start(playbook, decision)

    def _no_crm(self) -> ScanSummary:
        note = ("the daily scan and schedule triggers need a CRM that can list its accounts (the built-in "
                "one, HubSpot or Salesforce); this one cannot, so date and schedule triggers did not fire")
        log.warning(note)
        return ScanSummary(note=note)

    @activity.defn(name="csops_daily_scan")
    async def daily_scan(self, inp: ScanInput) -> ScanSummary:
        """Scan the date triggers up to today and start the due runs."""
        if self.crm is None:
            return self._no_crm()
        now = datetime.fromisoformat(inp.now) if inp.now else datetime.now(UTC)
        report = await scan.daily_scan(self.crm, self.store, self.playbooks().values(), start=self._start, now=now,
                                       calendar=Calendar.from_dict(self.calendar))
        await recompute_in_scan(self.crm, self.store, self.playbooks(), now)  # engine/health: computed scores
        log.info("daily scan (%s, %s]: %d due, %d started, %d suppressed", report.since, report.today, report.found,
                 report.started, report.suppressed)
        return ScanSummary(since=report.since.isoformat() if report.since else "", today=report.today.isoformat(),
                           found=report.found, started=report.started, suppressed=report.suppressed,
                           note="; ".join(report.problems))

    @activity.defn(name="csops_schedule_tick")
    async def tick(self, inp: TickInput) -> ScanSummary:
        """Deliver one tick to every account in the audience of the playbooks with this schedule."""
        if self.crm is None:
            return self._no_crm()
        at = tick_time(inp.cron, inp.timezone, datetime.fromisoformat(inp.at) if inp.at else datetime.now(UTC))
        now = datetime.now(UTC)
        problems: list[str] = []
        found = await scan.find_tick(self.crm, self.store, self.playbooks().values(), cron=inp.cron,
                                     timezone=inp.timezone, at=at, now=now,
                                     calendar=Calendar.from_dict(self.calendar), problems=problems)
        signal = {"kind": "tick", "cron": inp.cron, "timezone": inp.timezone, "at": at.isoformat()}
        done = await scan.enrol_all(found, store=self.store, start=self._start, signal=signal, now=now)
        started = sum(1 for e in done if e.outcome == "started")
        return ScanSummary(today=at.isoformat(), found=len(found), started=started, suppressed=len(done) - started,
                           note="; ".join(problems))

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register with a worker (the paged scan's too: engine/runtime/scanpages.py)."""
        pages = PageActivities(crm=self.crm, store=self.store, playbooks=self.playbooks, calendar=self.calendar,
                               start=self._start)
        return [self.daily_scan, self.tick, *pages.all()]


def tick_time(cron: str, timezone: str, at: datetime) -> datetime:
    """The latest tick of ``cron`` in ``timezone`` at or before ``at`` (a started-late tick keeps its time)."""
    local = at.astimezone(ZoneInfo(timezone)) + timedelta(seconds=1)
    tick: datetime = croniter(cron, local).get_prev(datetime)
    return tick.astimezone(UTC)


@workflow.defn(name="DailyScan")
class DailyScan:
    """Scans the date triggers a page of accounts per activity (engine/runtime/scanpages.py; engine/triggers/scan.py).

    Histories recorded before the paged scan replay the one-activity path (``workflow.patched``).
    """

    def __init__(self) -> None:
        self.state: ScanState | None = None

    @workflow.query(name="progress")
    def progress(self) -> dict[str, Any]:
        """Pages done, accounts read, runs started so far (empty before the plan)."""
        return self.state.progress() if self.state is not None else {}

    @workflow.run
    async def run(self, inp: ScanInput) -> ScanSummary:
        if inp.resume is None and not workflow.patched(PAGES_PATCH):
            return await workflow.execute_activity_method(
                ScanActivities.daily_scan, inp, start_to_close_timeout=timedelta(hours=1), retry_policy=RETRY)
        state = inp.resume or await workflow.execute_activity(
            "csops_scan_plan", ScanState(now=inp.now, page=inp.page or scan.PAGE), result_type=ScanState,
            start_to_close_timeout=timedelta(minutes=5), retry_policy=RETRY)
        self.state = state
        for _ in range(inp.rounds or ROUNDS):
            if not state.cursors:
                break
            results = await asyncio.gather(*(workflow.execute_activity(
                "csops_scan_page", PageInput(playbook=c.playbook, after=c.after, since=state.since, today=state.today,
                                             now=state.now, page=state.page),
                result_type=PageResult, start_to_close_timeout=timedelta(minutes=30), heartbeat_timeout=HEARTBEAT,
                retry_policy=RETRY)
                for c in state.cursors))
            state = self.state = advance(state, list(zip(state.cursors, results, strict=True)))
            workflow.upsert_memo({"scan": state.progress()})
        else:
            if state.cursors:  # more pages: go on in a fresh run so the history stays short
                workflow.continue_as_new(ScanInput(now=inp.now, page=inp.page, rounds=inp.rounds, resume=state))
        if state.since:
            await workflow.execute_activity("csops_scan_finish", FinishInput(today=state.today),
                                            start_to_close_timeout=timedelta(minutes=5), retry_policy=RETRY)
        return ScanSummary(since=state.since, today=state.today, found=state.found, started=state.started,
                           suppressed=state.suppressed, note="; ".join(state.problems) or state.note)


@workflow.defn(name="ScheduleTick")
class ScheduleTick:
    """Delivers one tick of a schedule trigger's cron (one activity)."""

    @workflow.run
    async def run(self, inp: TickInput) -> ScanSummary:
        at = inp.at or (workflow.info().typed_search_attributes.get(SCHEDULED_AT) or workflow.now()).isoformat()
        return await workflow.execute_activity_method(
            ScanActivities.tick, TickInput(cron=inp.cron, timezone=inp.timezone, at=at),
            start_to_close_timeout=timedelta(hours=1), retry_policy=RETRY)


def tick_schedule_id(cron: str, timezone: str) -> str:
    """The schedule id of a (cron, time zone): stable, and safe whatever the cron text holds."""
    return TICK_PREFIX + hashlib.sha256(f"{cron}|{timezone}".encode()).hexdigest()[:16]


def wanted_schedules(settings: Settings, playbooks: Mapping[str, Playbook]) -> dict[str, Schedule]:
    """The schedules the config and the playbooks call for, by id."""
    policy = SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1))
    zone = settings.config.calendar.timezone
    out = {DAILY_SCAN_ID: Schedule(
        action=ScheduleActionStartWorkflow("DailyScan", ScanInput(), id=f"{DAILY_SCAN_ID}-run",
                                           task_queue=settings.task_queue),
        spec=ScheduleSpec(cron_expressions=[settings.config.scan.cron], time_zone_name=zone), policy=policy)}
    for cron, timezone in scan.schedules(playbooks.values()):
        sid = tick_schedule_id(cron, timezone)
        out[sid] = Schedule(
            action=ScheduleActionStartWorkflow("ScheduleTick", TickInput(cron=cron, timezone=timezone), id=f"{sid}-run",
                                               task_queue=settings.task_queue),
            spec=ScheduleSpec(cron_expressions=[cron], time_zone_name=timezone), policy=policy)
    return out


async def ensure_schedule(client: Client, settings: Settings,
                          playbooks: Mapping[str, Playbook] | None = None) -> list[str]:
    """Create or update the daily scan's and the schedule triggers' Temporal Schedules; delete stale tick ones.

    Idempotent: a schedule that exists is updated to the wanted spec and action. ``playbooks``
    defaults to the valid playbooks of ``settings.playbooks``. Returns the ids of the schedules kept.
    """
    wanted = wanted_schedules(settings, load_playbooks(settings.playbooks) if playbooks is None else playbooks)
    for sid, schedule in wanted.items():
        try:
            await client.create_schedule(sid, schedule)
        except ScheduleAlreadyRunningError:
            def replace(_: ScheduleUpdateInput, new: Schedule = schedule) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=new)
            await client.get_schedule_handle(sid).update(replace)
    async for listed in await client.list_schedules():
        if listed.id.startswith(TICK_PREFIX) and listed.id not in wanted:
            await client.get_schedule_handle(listed.id).delete()
    return sorted(wanted)
