"""The daily scan in pages: one Temporal activity per page of accounts, the cursor in the workflow.

``DailyScan`` (engine/runtime/scanflow.py) used to run the whole scan as one activity: a crash an hour into
a million accounts started it again from the first account, and one worker did all of it. Now it
asks ``csops_scan_plan`` for the window and the milestone playbooks, then runs each playbook's next
page (``PAGE`` accounts; ``ScanInput.page``) as a ``csops_scan_page`` activity, every playbook's page
of a round at once (so several workers share a scan), and keeps each playbook's cursor (the last
account id read) in its state. A restarted worker or a retried page resumes at the page that did
not finish: the pages done are in the workflow's history. Every ``ROUNDS`` rounds the workflow
continues as new with the cursors (``ScanState``), so a scan of any size keeps a short history.
When every cursor is through, ``csops_scan_finish`` notes the day as scanned (``Store.set_last_scan``).

A page retried after a crash meets the runs it already started as used occurrence keys and
Temporal's "already running", exactly as the one-shot scan did (engine/triggers/scan.py), so a page done
twice never starts a run twice. Progress: a log line per page (``csops.scan``), the workflow's
``progress`` query and its memo ``scan`` (pages, accounts read, runs started), shown in the UI.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from temporalio import activity

from connectors.base import Account
from engine.language import model as m
from engine.language.context import Calendar
from engine.store.store import Store
from engine.triggers import scan
from engine.triggers.enrol import Start
from engine.triggers.evalmemo import Memo
from engine.triggers.signals import scans

log = logging.getLogger("csops.scan")
PAGES_PATCH = "csops-scan-pages"
"""The ``workflow.patched`` id of the paged DailyScan (older histories replay the one-activity path)."""
ROUNDS = 50
"""Rounds of pages a DailyScan run does before it continues as new (bounds its history)."""
HEARTBEAT = timedelta(seconds=30)
"""A page whose worker died is retried elsewhere after this long without a heartbeat."""


@dataclass(frozen=True, kw_only=True)
class Cursor:
    """Where one playbook's pages are."""

    playbook: str
    """The playbook id."""
    after: str = ""
    """The last account id read (exclusive start of the next page); empty: from the first."""


@dataclass(frozen=True, kw_only=True)
class ScanState:
    """A paged scan under way: carried by continue-as-new and answered by the ``progress`` query."""

    now: str
    """The scan's time (aware ISO text), the same for every page."""
    since: str = ""
    """The last day covered before (exclusive); empty: nothing to scan."""
    today: str = ""
    """The day scanned up to (inclusive)."""
    page: int = scan.PAGE
    """Accounts per page."""
    cursors: tuple[Cursor, ...] = ()
    """The playbooks with pages left, and where."""
    pages: int = 0
    """Pages done so far."""
    candidates: int = 0
    """Accounts read so far."""
    found: int = 0
    """Decisions made so far."""
    started: int = 0
    """Runs started so far."""
    suppressed: int = 0
    """Decisions recorded as suppressed so far."""
    problems: tuple[str, ...] = ()
    """Playbooks skipped, and why."""
    note: str = ""
    """Why nothing was scanned."""

    def progress(self) -> dict[str, Any]:
        """The figures the memo and the log show."""
        return {"since": self.since, "today": self.today, "pages": self.pages, "accounts": self.candidates,
                "found": self.found, "started": self.started, "suppressed": self.suppressed,
                "playbooks_left": len(self.cursors)}


@dataclass(frozen=True, kw_only=True)
class PageInput:
    """One page of one playbook's scan."""

    playbook: str
    after: str
    since: str
    today: str
    now: str
    page: int


@dataclass(frozen=True, kw_only=True)
class PageResult:
    """What one page did."""

    next: str = ""
    """The cursor of the playbook's next page; empty: this was its last page."""
    candidates: int = 0
    found: int = 0
    started: int = 0
    suppressed: int = 0
    problem: str = ""
    """Why the playbook was skipped (its pages end here)."""


@dataclass(frozen=True, kw_only=True)
class FinishInput:
    """The day to note as scanned."""

    today: str


@dataclass
class PageActivities:
    """The plan, page and finish activities of the paged daily scan.

    Args:
        crm: The CRM (None: the plan says the scan cannot run).
        store: The engine's store.
        playbooks: The playbooks by id (read again at every page, so a page sees edits).
        calendar: The calendar (``CalendarConfig.as_dict()``).
        start: Starts a decision's run (engine.triggers.enrol.Start).
    """

    crm: scan.ScanCRM | None
    store: Store
    playbooks: Callable[[], Mapping[str, m.Playbook]]
    calendar: Mapping[str, Any] = field(default_factory=dict)
    start: Start | None = None

    @activity.defn(name="csops_scan_plan")
    async def plan(self, state: ScanState) -> ScanState:
        """The window ``(last scanned day, today]`` and a cursor per milestone playbook (none: nothing to do)."""
        now = datetime.fromisoformat(state.now) if state.now else datetime.now(UTC)
        today = Calendar.from_dict(self.calendar).today(now)
        last = await self.store.last_scan(scan.SCAN_NAME)
        if last is not None and last >= today:
            return ScanState(now=now.isoformat(), today=today.isoformat(), note=f"{today} is scanned already")
        since = last if last is not None else today - timedelta(days=1)
        books = tuple(Cursor(playbook=p.id) for p in scan.milestone_playbooks(self.playbooks().values()))
        log.info("daily scan (%s, %s]: %d playbooks, pages of %d accounts", since, today, len(books), state.page)
        return ScanState(now=now.isoformat(), since=since.isoformat(), today=today.isoformat(), page=state.page,
                         cursors=books)

    @activity.defn(name="csops_scan_page")
    async def page(self, inp: PageInput) -> PageResult:
        """Read one page of a playbook's candidates, decide them and start the due runs."""
        async with beating():
            return await self._page(inp)

    async def _page(self, inp: PageInput) -> PageResult:
        playbook = self.playbooks().get(inp.playbook)
        if playbook is None or not playbook.enabled or self.crm is None:
            return PageResult()  # removed or disabled since the plan: nothing more to do for it
        since, today = date.fromisoformat(inp.since), date.fromisoformat(inp.today)
        now, calendar = datetime.fromisoformat(inp.now), Calendar.from_dict(self.calendar)
        ranges = [(t.field, *scan.date_window(t, since, today, calendar)) for t in playbook.triggers
                  if isinstance(t, m.ContractMilestone)]
        try:
            aud = playbook.audience
            accounts = await scan.list_page(self.crm, playbook, inp.after or None, inp.page, dates=ranges,
                                            segments=aud.segments, stages=aud.lifecycle_stages)
        except ValueError as exc:
            problems: list[str] = []
            scan._skipped(playbook, exc, problems)
            return PageResult(problem=problems[0])
        if not accounts:
            return PageResult()
        found = await decide_page(self.crm, self.store, playbook, accounts, since=since, today=today, now=now,
                                  calendar=calendar)
        assert self.start is not None, "PageActivities.start must be set before the worker runs"
        signal = {"kind": "scan", "since": inp.since, "today": inp.today}
        done = await scan.enrol_all(found, store=self.store, start=self.start, signal=signal, now=now)
        started = sum(1 for e in done if e.outcome == "started")
        nxt = accounts[-1].id if len(accounts) >= inp.page else ""
        log.info("daily scan page %s after %r: %d accounts, %d due, %d started", playbook.id, inp.after,
                 len(accounts), len(found), started)
        return PageResult(next=nxt, candidates=len(accounts), found=len(found), started=started,
                          suppressed=len(done) - started)

    @activity.defn(name="csops_scan_finish")
    async def finish(self, inp: FinishInput) -> None:
        """Note the day as scanned: only after every page's runs were started."""
        await self.store.set_last_scan(scan.SCAN_NAME, date.fromisoformat(inp.today))

    def all(self) -> list[Callable[..., Any]]:
        """The activities to register with a worker."""
        return [self.plan, self.page, self.finish]


@contextlib.asynccontextmanager
async def beating() -> AsyncIterator[None]:
    """Heartbeat every third of ``HEARTBEAT`` while the body runs (so a dead worker's page moves on)."""
    async def beat() -> None:
        while True:
            activity.heartbeat()
            await asyncio.sleep(HEARTBEAT.total_seconds() / 3)
    task = asyncio.ensure_future(beat())
    try:
        yield
    finally:
        task.cancel()


async def decide_page(crm: scan.ScanCRM, store: Store, playbook: m.Playbook, accounts: Sequence[Account], *,
                      since: date, today: date, now: datetime, calendar: Calendar) -> list[scan.Found]:
    """The matcher's decisions for one page of accounts (their people and runs read in bulk)."""
    facts = await scan.page_facts(crm, store, playbook, accounts, now=now, calendar=calendar, users={})
    signals = scans([a.id for a in accounts if a.id in facts], since, today)
    return scan.decide_signals(playbook, signals, facts, Memo())


def advance(state: ScanState, results: list[tuple[Cursor, PageResult]]) -> ScanState:
    """The state after a round of pages: the cursors moved on, the figures added up."""
    cursors = tuple(Cursor(playbook=c.playbook, after=r.next) for c, r in results if r.next and not r.problem)
    return ScanState(now=state.now, since=state.since, today=state.today, page=state.page, cursors=cursors,
                     pages=state.pages + len(results),
                     candidates=state.candidates + sum(r.candidates for _, r in results),
                     found=state.found + sum(r.found for _, r in results),
                     started=state.started + sum(r.started for _, r in results),
                     suppressed=state.suppressed + sum(r.suppressed for _, r in results),
                     problems=state.problems + tuple(r.problem for _, r in results if r.problem))
