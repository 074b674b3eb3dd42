"""The daily scan of date triggers and the ticks of schedule triggers: find the due runs, then enrol them.

Finding is cheap SQL first, the matcher second. For each ``contract_milestone`` trigger the scan
works out which dates of its field put the milestone day inside the window ``(since, today]``
(:func:`date_window`) and asks the CRM only for accounts with such a date, a page at a time
(``AccountLister.list_accounts``: SQL for the built-in CRM, the search API for HubSpot, SOQL for
Salesforce), in the playbook's audience segments and lifecycle stages (as for ticks: an account
outside them is never started, so it is not read, and no ``audience_segment`` suppression is
recorded for it). The built-in CRM also leaves out the accounts whose numbers fail a simple
``audience.when`` (``account.arr > 0``: engine/triggers/whenfilter.py), which then get no
``audience_when`` suppression either. Every candidate then goes through
``engine.triggers.matcher.decide`` with a ``Scan`` signal, so the matcher stays the one place that
decides; the SQL filter is only ever wider than its answer. The runs of a page of candidates (active
run, last end, occurrence keys) are read in one query, its people only when an expression of
the playbook may read them, and of the account only the fields its decisions read (``unread_parts``).
The matcher gets a ``Memo`` per playbook (engine/triggers/evalmemo.py):
``audience.when`` and ``entry.key`` are evaluated once per distinct set of values they read, not once
per account.

Catch-up without duplicates: the window starts at the last day the scan covered
(``Store.last_scan``), so after days without a scan all missed milestone days are in one window,
and the day is noted only after every due run was started. A scan repeated for a day finds an
empty window; a scan that failed half-way and runs again meets the runs it started as used
occurrence keys (``duplicate_occurrence``), and a start that raced another under the same
workflow id is Temporal's "already running".

A schedule trigger's tick goes to every account in the playbook's audience (segments and
lifecycle stages filtered in SQL; ``audience.when`` by the matcher). Health and usage triggers are
event-driven and never scanned.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, Protocol

from connectors.base import CRM, Account, AccountLister, AccountView, User
from engine.language import model as m
from engine.language.context import Calendar
from engine.payloads.runcontext import account_data, view_data, view_of
from engine.store.store import Store
from engine.triggers.enrol import MILESTONE_SCAN, Enrolment, Start, enrol
from engine.triggers.evalmemo import Memo, unread
from engine.triggers.matcher import decide, shift
from engine.triggers.scanmatch import decide_scan
from engine.triggers.signals import Decision, Facts, Scan, Signal, Tick, scans
from engine.triggers.whenfilter import numbers

log = logging.getLogger("csops.scan")
SCAN_NAME = MILESTONE_SCAN
"""The name the daily scan notes its last day under (``Store.last_scan``)."""
PAGE = 1000
"""Accounts read per query by a page of the paged scan (engine/runtime/scanpages.py, one activity each)."""
DUE_PAGE = 5000
"""Accounts read per query by ``find_due`` and ``find_tick``: one process holds the whole scan, so a page
is only a bound on memory (a few MB), and each page costs a round of queries and their set-up (a day's
scan of a million accounts, about 3,600 candidates, was four pages of 1000)."""
BATCH = 50
"""Runs started at once."""
PEOPLE = 8
"""Accounts whose people are read at once from a CRM without bulk views (an API call each)."""


class ScanCRM(CRM, AccountLister, Protocol):
    """A CRM the scan can page through."""


@dataclass(frozen=True, kw_only=True)
class Found:
    """A decision the matcher made during a scan or a tick, with its playbook."""

    playbook: m.Playbook
    """The playbook the decision is about."""
    decision: Decision
    """The matcher's decision (start, or suppressed with the reason)."""


@dataclass(frozen=True, kw_only=True)
class ScanReport:
    """What one daily scan did."""

    since: date | None
    """The last day covered before (exclusive); None when the scan had nothing to do."""
    today: date
    """The day scanned up to (inclusive)."""
    candidates: int = 0
    """Accounts the SQL window let through, over all playbooks."""
    found: int = 0
    """Decisions the matcher made (a trigger fired)."""
    started: int = 0
    """Runs started."""
    suppressed: int = 0
    """Decisions recorded as suppressed (with the reason)."""
    problems: tuple[str, ...] = ()
    """Playbooks the scan had to skip, and why (a date field the CRM cannot filter on)."""


def date_window(trig: m.ContractMilestone, since: date, today: date, calendar: Calendar) -> tuple[date, date]:
    """The dates of ``trig.field`` (first, last; inclusive) whose milestone day can fall in ``(since, today]``.

    Exact for calendar days. For business days the milestone day moves monotonically with the
    date and N workdays span at least N calendar days, so the bounds below hold every due date;
    the matcher drops the few extra ones.
    """
    n = trig.days_before if trig.days_before is not None else trig.days_after or 0
    biz = trig.business_days
    try:
        if trig.days_before is not None:
            # milestone = date - n (workdays) > since  =>  date > since + n.
            first = since + timedelta(days=n + 1)
            # The (n+1)-th workday after today is the first date whose milestone is past today.
            after = shift(today, n + 1, biz, calendar)
            last = after - timedelta(days=1) if after is not None else date.max
        else:
            # milestone = date + n (workdays) <= today  =>  date <= today - n.
            last = today - timedelta(days=n)
            # The (n+1)-th workday before since is the last date whose milestone is not after since.
            before = shift(since, -(n + 1), biz, calendar) if biz else since - timedelta(days=n)
            first = before + timedelta(days=1) if before is not None else date.min
    except OverflowError:
        return date.min, date.max
    return first, last


def milestone_playbooks(playbooks: Iterable[m.Playbook]) -> list[m.Playbook]:
    """The enabled playbooks with a ``contract_milestone`` trigger: the daily scan's playbooks."""
    return [p for p in playbooks if p.enabled and any(isinstance(t, m.ContractMilestone) for t in p.triggers)]


def schedules(playbooks: Iterable[m.Playbook]) -> dict[tuple[str, str], list[m.Playbook]]:
    """The enabled playbooks by the (cron, time zone) of their ``schedule`` triggers."""
    out: dict[tuple[str, str], list[m.Playbook]] = {}
    for p in playbooks:
        if not p.enabled:
            continue
        for key in dict.fromkeys((t.cron, t.timezone) for t in p.triggers if isinstance(t, m.Schedule)):
            out.setdefault(key, []).append(p)
    return out


async def find_due(crm: ScanCRM, store: Store, playbooks: Iterable[m.Playbook], *, since: date, today: date,
                   now: datetime, calendar: Calendar, page: int = DUE_PAGE,
                   problems: list[str] | None = None) -> tuple[list[Found], int]:
    """The matcher's decisions for every milestone day in ``(since, today]``, and how many candidates were read.

    A playbook whose date field the CRM cannot filter on (``ValueError`` from ``list_accounts``,
    a field not mapped) is skipped with the reason in ``problems``, so the others still fire.
    """
    found: list[Found] = []
    candidates = 0
    for playbook in milestone_playbooks(playbooks):
        ranges = [(t.field, *date_window(t, since, today, calendar)) for t in playbook.triggers
                  if isinstance(t, m.ContractMilestone)]
        mine: list[Found] = []
        try:
            memo = Memo()
            aud = playbook.audience
            async for ids, facts in _pages(crm, store, playbook, now, calendar, page, dates=ranges,
                                           segments=aud.segments, stages=aud.lifecycle_stages):
                candidates += len(ids)
                mine.extend(decide_signals(playbook, scans(ids, since, today), facts, memo))  # one alive at a time
        except ValueError as exc:
            _skipped(playbook, exc, problems)
            continue
        found.extend(mine)
    return found, candidates


def _skipped(playbook: m.Playbook, exc: ValueError, problems: list[str] | None) -> None:
    why = f"playbook {playbook.id} was skipped: {exc}"
    log.error("%s", why)
    if problems is not None:
        problems.append(why)


async def find_tick(crm: ScanCRM, store: Store, playbooks: Iterable[m.Playbook], *, cron: str, timezone: str,
                    at: datetime, now: datetime, calendar: Calendar, page: int = DUE_PAGE,
                    problems: list[str] | None = None) -> list[Found]:
    """The matcher's decisions for one tick of (cron, timezone), for every account in each playbook's
    audience; a playbook the CRM cannot filter for is skipped as in ``find_due``."""
    found: list[Found] = []
    for playbook in schedules(playbooks).get((cron, timezone), []):
        aud = playbook.audience
        mine: list[Found] = []
        memo = Memo()
        try:
            async for ids, facts in _pages(crm, store, playbook, now, calendar, page, segments=aud.segments,
                                           stages=aud.lifecycle_stages):
                signals = (Tick(account_id=i, cron=cron, timezone=timezone, at=at) for i in ids)
                mine.extend(decide_signals(playbook, signals, facts, memo))
        except ValueError as exc:
            _skipped(playbook, exc, problems)
            continue
        found.extend(mine)
    return found


async def enrol_all(found: Sequence[Found], *, store: Store, start: Start, signal: Mapping[str, Any], now: datetime,
                    batch: int = BATCH) -> list[Enrolment]:
    """Enrol the decisions ``batch`` at a time (each records itself; a start is idempotent by its run id).

    Raises:
        Exception: the first start that failed, once its batch is done, so the caller retries the
            scan; the runs already started are then duplicates the matcher and Temporal refuse.
    """
    done: list[Enrolment] = []
    for i in range(0, len(found), batch):
        results = await asyncio.gather(*(enrol(f.decision, f.playbook, store=store, start=start, signal=signal,
                                               now=now) for f in found[i:i + batch]), return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        done.extend(r for r in results if isinstance(r, Enrolment))
        if failed:
            raise failed[0]
    return done


async def daily_scan(crm: ScanCRM, store: Store, playbooks: Iterable[m.Playbook], *, start: Start, now: datetime,
                     calendar: Calendar, name: str = SCAN_NAME, batch: int = BATCH) -> ScanReport:
    """Scan ``(last scanned day, today]`` for due milestones, enrol them, then note today as scanned.

    The first scan ever covers today only. ``today`` is ``now``'s day in the calendar's time zone.
    """
    today = calendar.today(now)
    last = await store.last_scan(name)
    if last is not None and last >= today:
        return ScanReport(since=None, today=today)
    since = last if last is not None else today - timedelta(days=1)
    problems: list[str] = []
    found, candidates = await find_due(crm, store, playbooks, since=since, today=today, now=now, calendar=calendar,
                                       problems=problems)
    signal = {"kind": "scan", "since": since.isoformat(), "today": today.isoformat()}
    done = await enrol_all(found, store=store, start=start, signal=signal, now=now, batch=batch)
    await store.set_last_scan(name, today)
    started = sum(1 for e in done if e.outcome == "started")
    return ScanReport(since=since, today=today, candidates=candidates, found=len(found), started=started,
                      suppressed=len(done) - started, problems=tuple(problems))


def decide_signals(playbook: m.Playbook, signals: Iterable[Signal], facts: Mapping[str, Facts],
                   memo: Memo | None = None) -> list[Found]:
    """The matcher's decisions for the signals of a page (``memo``: one per playbook and scan)."""
    out = []
    fast = memo is not None
    for signal in signals:
        if fast and type(signal) is Scan:
            decision = decide_scan(playbook, signal, facts[signal.account_id], memo)  # type: ignore[arg-type]
        else:
            decision = decide(playbook, signal, facts[signal.account_id], memo)
        if decision is not None:
            # Set up without the frozen dataclass's __init__ (object.__setattr__ per field): the same Found.
            found = object.__new__(Found)
            found.__dict__.update(playbook=playbook, decision=decision)
            out.append(found)
    return out


async def _pages(crm: ScanCRM, store: Store, playbook: m.Playbook, now: datetime, calendar: Calendar, page: int, *,
                 dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                 stages: Sequence[str] = ()) -> AsyncIterator[tuple[list[str], dict[str, Facts]]]:
    """Pages of (account ids, facts by id): accounts through the filters, their views and runs read in bulk."""
    after: str | None = None
    users: dict[str, asyncio.Task[User | None]] = {}
    while True:
        accounts = await list_page(crm, playbook, after, page, dates=dates, segments=segments, stages=stages)
        if not accounts:
            return
        after, last = accounts[-1].id, len(accounts) < page
        facts = await page_facts(crm, store, playbook, accounts, now=now, calendar=calendar, users=users)
        ids = [a.id for a in accounts if a.id in facts]
        # The facts hold what the matcher reads: the accounts go before it runs. Thousands of objects
        # the garbage collector would otherwise look at again and again while the page is decided.
        del accounts
        yield ids, facts
        if last:
            return


async def page_facts(crm: ScanCRM, store: Store, playbook: m.Playbook, accounts: Sequence[Account], *,
                     now: datetime, calendar: Calendar,
                     users: dict[str, asyncio.Task[User | None]]) -> dict[str, Facts]:
    """The matcher's facts for a page of accounts: their people and their runs of the playbook, in bulk."""
    ids = [a.id for a in accounts]
    views: dict[str, AccountView] | None = None
    if "people" in unread_parts(playbook):
        # No expression a scan's decision reads looks at the people: the CRM is spared the calls, and
        # the account alone is what view_data makes of a view without people (no view is built for it).
        runs = await store.run_summaries(playbook.id, ids)
    else:
        views, runs = await asyncio.gather(account_views(crm, accounts, users), store.run_summaries(playbook.id, ids))
    facts: dict[str, Facts] = {}
    nothing: tuple[None, None, frozenset[str]] = (None, None, frozenset())
    contacts: tuple[dict[str, Any], ...] = ()
    # Each account's facts are these with its own account, people and runs: set up from this one's fields
    # rather than through the frozen dataclass's __init__ (a call of object.__setattr__ per field, of 13).
    base = Facts(account={}, now=now, calendar=calendar).__dict__
    for a in accounts:
        if views is None:
            account = account_data(a, None)
        else:
            data = view_data(views[a.id])
            account, contacts = data["account"], tuple(data["contacts"])
        active, ended, keys = runs.get(a.id, nothing)
        fact = facts[a.id] = object.__new__(Facts)
        fact.__dict__.update(base, account=account, contacts=contacts, active_run=active, last_run_ended_at=ended,
                             started_keys=keys)
    return facts


async def list_page(crm: ScanCRM, playbook: m.Playbook, after: str | None, page: int, *,
                    dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                    stages: Sequence[str] = ()) -> list[Account]:
    """The CRM's next page of the playbook's candidates: only what its decisions read, and without the
    accounts whose numbers fail its ``audience.when`` (engine/triggers/whenfilter.py) where the CRM can tell."""
    return await crm.list_accounts(after, page, dates=dates, segments=segments, lifecycle_stages=stages,
                                   skip=unread_parts(playbook), numbers=numbers(playbook.audience.when))


def unread_parts(playbook: m.Playbook) -> frozenset[str]:
    """What of an account (``people``, ``usage``, ``fields``; engine/triggers/evalmemo.py ``unread``) a scan's
    or a tick's decisions for the playbook never read: its ``audience.when`` and ``entry.key`` and its
    date triggers' fields are all they read beside the segment and stage."""
    return unread([playbook.audience.when, playbook.entry.key],
                  [t.field for t in playbook.triggers if isinstance(t, m.ContractMilestone)])


async def account_views(crm: ScanCRM, accounts: Sequence[Account],
                 users: dict[str, asyncio.Task[User | None]]) -> dict[str, AccountView]:
    """The accounts with their people: in bulk where the CRM can (the built-in one), else each
    account's contacts in a call of their own and every owner and manager read once per scan."""
    bulk = getattr(crm, "account_views", None)
    if bulk is not None:
        views: dict[str, AccountView] = await bulk(accounts)
        return views

    def user(user_id: str) -> asyncio.Task[User | None]:
        if user_id not in users:
            users[user_id] = asyncio.ensure_future(crm.get_user(user_id))
        return users[user_id]

    gate = asyncio.Semaphore(PEOPLE)

    async def one(account: Account) -> AccountView:
        async with gate:
            return await view_of(crm, account, user)

    return {v.account.id: v for v in await asyncio.gather(*(one(a) for a in accounts))}
