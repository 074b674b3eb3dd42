"""PlaybookRun: the durable interpreter of one playbook run for one account.

It walks the compiled playbook (deterministically: workflow time, no I/O). A step with a side
effect is one activity (idempotency key ``workflow-id/step-path``) that re-reads the account,
checks the exit criteria and the step's ``when``, renders and does the effect; waits, branches and
``wait_for`` evaluate their expressions here, against the account a local activity re-reads.
Escalations are timers beside the main path; events arrive by signal; continue-as-new carries the
step results when the history grows long.

A stop (an exit event, the exit criteria, a cancel) is honoured before every step and wakes every
wait, a task's too; a task a ``task.completed`` event reports is completed in the CRM beside the
main path; tasks still open when the run exits or is cancelled are closed as ``cancelled``.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from engine.language import model as m
    from engine.language.compiler import compile_for_run
    from engine.language.context import Calendar, as_datetime, evaluate, render
    from engine.payloads.runtypes import (
        AlertInput,
        EmailInput,
        Event,
        HttpInput,
        NoteInput,
        OpenTask,
        RunInput,
        RunOutcome,
        RunState,
        RunStatus,
        StartInput,
        StepOutcome,
        StepResult,
        StepScope,
        TaskChangeInput,
        TaskInput,
        UpdateInput,
        as_json,
        step_outcome,
    )
    from engine.runtime.runbase import (
        RETRY,
        TIMEOUT,
        RunBase,
        RunEnd,
        StepFailed,
        needs_context,
        step_texts,
        why_failed,
    )
    from engine.runtime.runbase import sandbox_runner as sandbox_runner  # its home before the split

POLL = timedelta(days=1)
# RunInput.rules >= 2: a pending stop (exit event, exit criteria, cancel) is honoured before every
# step and wakes every wait, a task's too; tasks completed by an event are completed in the CRM.
# Runs whose history began before it (rules 1) keep the old behaviour, so their histories replay.


@workflow.defn(name="PlaybookRun")
class PlaybookRun(RunBase):
    """One run of one playbook for one account."""

    def __init__(self) -> None:
        self.results: dict[str, StepResult] = {}
        self.open_tasks: list[OpenTask] = []
        self.completed: set[str] = set()
        self.inbox: list[Event] = []
        self.current = ""
        self.outcome = ""
        self.stop: RunEnd | None = None
        self.recheck = False
        self.escalations: list[asyncio.Task[None]] = []
        self.at_once = False
        """Whether this run honours a stop at once (RunInput.rules >= 2); decided when it starts."""
        self.by_event: set[str] = set()
        """Tasks a ``task.completed`` event said are done: the CRM may not know yet."""
        self.marked: set[str] = set()
        """Tasks this run has completed in the CRM (or is completing now)."""
        self.marking = 0
        self.held = ""
        """Set while an email waits for its send window: the step, the window and until when."""
        self.reached = ""
        """When the walker reached the current step (its planned time unless it is a wait)."""

    # --- the interface -------------------------------------------------------------------------

    @workflow.signal
    def deliver_event(self, event: Event) -> None:
        """An event for this account: wakes wait_for, completes tasks, may meet exit criteria."""
        self.inbox.append(event)
        if event.type == "task.completed" and event.data.get("task_id"):
            self.by_event.add(str(event.data["task_id"]))
            self.completed.add(str(event.data["task_id"]))
            for task in self.open_tasks:
                if task.task_id == str(event.data["task_id"]):
                    self._record_task_end(task, "task_completed")
        pb = getattr(self, "pb", None)  # a signal can arrive before run() has compiled the playbook
        if self.stop is None and pb is not None and event.type in pb.exit.on_events:
            self.stop = RunEnd("exited", f"event {event.type} arrived")
        self.recheck = True

    @workflow.signal
    def cancel(self, reason: str) -> None:
        """Stop the run at once, with a reason for the record."""
        if self.stop is None:
            self.stop = RunEnd("cancelled", reason or "cancelled")

    @workflow.query
    def status(self) -> RunStatus:
        """The step running now and the steps done so far."""
        return RunStatus(current_step=self.current, steps=dict(self.results), outcome=self.outcome,
                         open_tasks=[t.task_id for t in self.open_tasks if t.task_id not in self.completed],
                         held=self.held)

    @workflow.run
    async def run(self, inp: RunInput) -> RunOutcome:
        self.inp = inp
        self.at_once = inp.rules >= 2
        self.pb = compile_for_run(inp.playbook, inp.files, inp.version)
        if self.at_once and self.stop is None:  # an exit event that came before the playbook was compiled
            early = next((e for e in self.inbox if e.type in self.pb.exit.on_events), None)
            if early is not None:
                self.stop = RunEnd("exited", f"event {early.type} arrived")
        self.cal = Calendar.from_dict(inp.calendar)
        self.wf_id = workflow.info().workflow_id
        state = inp.resume or RunState(started_at=workflow.now().isoformat())
        self.started_at = state.started_at
        self.results, self.open_tasks = dict(state.steps), list(state.open_tasks)
        for task in self.open_tasks:
            self._watch(task)
        # Only a run with tasks (a task step, or open ones carried over) can be told one is done (no command).
        may_have_tasks = bool(self.open_tasks) or any(type(s.action) is m.Task for s in self.pb.all_steps())
        completer = asyncio.ensure_future(self._complete_in_crm()) if self.at_once and may_have_tasks else None
        try:
            await self._steps(self.pb.steps)
            end = RunEnd("completed", "all steps done")
        except RunEnd as exc:
            end = exc
        except StepFailed as exc:
            end = RunEnd("failed", str(exc))
            await self._alert_failure(str(exc))
        for esc in self.escalations:
            esc.cancel()
        if completer is not None:  # tasks done by an event are written to the CRM before the run ends
            await workflow.wait_condition(lambda: not self._to_mark() and not self.marking)
            completer.cancel()
        if end.outcome not in ("completed", "failed") and self.pb.exit.close_open_tasks:
            await self._close_open_tasks(end)
        self.outcome, self.current = end.outcome, ""
        # Returned in its dict form: the very JSON of the RunOutcome (clients read it as one), without
        # the converter's asdict, which deep-copies every step result.
        return as_json(RunOutcome(outcome=end.outcome, reason=end.reason, steps=dict(self.results)))  # type: ignore[no-any-return]

    # --- walking the steps ---------------------------------------------------------------------

    async def _steps(self, steps: tuple[m.Step, ...]) -> None:
        for step in steps:
            done = self.results.get(step.id)
            if done is not None and done.status != "chose":
                continue  # done before a continue-as-new
            self._halt()
            self._maybe_continue_as_new()
            self.current = step.id
            self.reached = workflow.now().isoformat()
            try:
                if isinstance(step.action, EFFECTS):
                    # Its activity re-reads the account, checks the exit criteria and `when`,
                    # renders and does the effect: one activity per step.
                    await self._effect(step)
                    continue
                ctx = await self._check_exit(needs_context(step))
                if done is None and step.when and not self._truthy(step.when, ctx):
                    self._record(step, "skipped")
                    continue
                await self._step(step, ctx)
            except (RunEnd, StepFailed):
                raise
            except Exception as exc:  # activity failures, and evaluation errors of the step
                message = why_failed(exc)
                self._record(step, "failed", message)
                if step.on_error == "continue":
                    continue
                raise StepFailed(f"step {step.id} failed: {message}") from exc

    async def _effect(self, step: m.Step) -> None:
        act, key, account_id = step.action, f"{self.wf_id}/{step.id}", self.inp.account_id
        if isinstance(act, m.Email):
            await self._send_window(step, act)  # before the scope: its `now` is the send's
        scope = self._scope(step, step_texts(act))
        name: str
        arg: Any
        if isinstance(act, m.Task):
            due = ""
            if act.due is not None:
                due = self.cal.add(workflow.now(), act.due).astimezone(self.cal.zone).date().isoformat()
            name, arg = "create_task", TaskInput(
                key=key, account_id=account_id, assignee=str(act.assign), title=act.title, notes=act.notes, due=due,
                due_on=act.due_on or "", priority=act.priority, scope=scope)
        elif isinstance(act, m.Alert):
            name, arg = "send_alert", AlertInput(key=key, account_id=account_id, to=[str(p) for p in act.to],
                                                 text=act.text, blocks=list(act.blocks), scope=scope)
        elif isinstance(act, m.Email):
            name, arg = "send_email", EmailInput(key=key, account_id=account_id, to=str(act.to), sender=str(act.sender),
                                                 subject=act.subject, body=act.body, category=act.category, scope=scope)
        elif isinstance(act, m.Update):
            name, arg = "update_account", UpdateInput(key=key, account_id=account_id, changes=dict(act.account),
                                                      scope=scope)
        elif isinstance(act, m.Note):
            name, arg = "add_note", NoteInput(key=key, account_id=account_id, text=act.text, scope=scope)
        elif isinstance(act, m.Http):
            name, arg = "http_call", HttpInput(key=key, account_id=account_id, method=act.method, url=act.url,
                                               headers=dict(act.headers), json=act.json, scope=scope)
        else:
            assert isinstance(act, m.StartPlaybook)
            name, arg = "start_playbook", StartInput(
                key=key, account_id=account_id, playbook=act.playbook, scope=scope,
                trigger={"type": "start_playbook", "from": self.pb.id, "run": self.wf_id})
        out = await self._do(name, arg)
        if out.status == "exited":
            self.stop = RunEnd("exited", out.detail)
            raise self.stop
        if out.status == "skipped":
            self._record(step, "skipped")
            return
        self._record(step, "done", out.result)
        if isinstance(act, m.Task):
            task = OpenTask(task_id=out.result["task_id"], step_id=step.id, created_at=workflow.now().isoformat())
            self.open_tasks.append(task)
            self._watch(task)
            if act.wait_for_completion:
                while not await self._task_done(task, workflow.now() + POLL, recheck=True):
                    pass
                self._halt()

    async def _do(self, name: str, arg: Any) -> StepOutcome:
        """An effect step's activity. A stop (a cancel, an exit event) while it is retrying (its
        connector is down) stops it at once: no further attempt starts; an attempt already running
        finishes, and what it did is kept (a task it made is known to the run, and closed)."""
        arg = as_json(arg)  # the same payload, cheaper to write (engine.payloads.runtypes.as_json)
        # No result_type: step_outcome builds the StepOutcome from the plain JSON, for less work.
        if not self.at_once:
            return step_outcome(await workflow.execute_activity(name, arg, start_to_close_timeout=TIMEOUT,
                                                                retry_policy=RETRY))
        handle = workflow.start_activity(name, arg, start_to_close_timeout=TIMEOUT, retry_policy=RETRY,
                                         cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED)
        await workflow.wait_condition(lambda: handle.done() or self.stop is not None)
        if not handle.done():
            handle.cancel()
        try:
            return step_outcome(await handle)
        except (ActivityError, asyncio.CancelledError):
            if self.stop is not None:
                raise self.stop from None
            raise

    def _scope(self, step: m.Step | None, texts: list[str]) -> StepScope:
        """The workflow's part of an effect step's context, and the conditions its activity checks."""
        when = (step.when or "") if step else ""
        exit_when = self.pb.exit.when or ""
        every = "\n".join((*texts, when, exit_when))  # one text to search: no name spans a newline
        # Earlier steps' results, the run's facts and the trigger go along only when a text names them
        # (else the activity sees {}): each step's input is written to the run's history, and steps can be large.
        # The people cost a CRM call each (three more queries, or API calls), so they are read only
        # for a step with parties or a text that may name them ("[" for a computed field name).
        people = step is None or type(step.action) in PARTIES or (
            "owner" in every or "contact" in every or "[" in every)
        return StepScope(now=workflow.now().isoformat(), trigger=self.inp.trigger if "trigger" in every else {},
                         run=self._run_info() if "run" in every else {},
                         steps=self._steps_view() if "steps" in every else {}, calendar=self.inp.calendar,
                         exit_when=exit_when, when=when, people=people)

    async def _step(self, step: m.Step, ctx: dict[str, Any]) -> None:
        act = step.action
        if isinstance(act, m.Wait):
            if act.duration is not None:
                deadline = self.cal.add(workflow.now(), act.duration)
            else:
                deadline = as_datetime(evaluate(str(act.until), ctx), self.cal)
            # A wait cannot end before it began: one until a moment already past is due at once.
            planned = max(deadline, datetime.fromisoformat(self.reached)) if self.reached else deadline
            await self._sleep_until(deadline)
            self._record(step, "done", deadline.isoformat(), planned=planned.isoformat())
        elif isinstance(act, m.WaitFor):
            await self._wait_for(step, act, ctx)
        elif isinstance(act, m.Branch):
            await self._branch(step, act, ctx)
        elif isinstance(act, m.Exit):
            self._record(step, "done", act.outcome)
            raise RunEnd(act.outcome, render(act.reason, ctx) if act.reason else f"exit step {step.id}")

    def _watch(self, task: OpenTask) -> None:
        act = self.pb.step(task.step_id).action
        if isinstance(act, m.Task) and act.escalate and task.escalations_done < len(act.escalate):
            self.escalations.append(asyncio.ensure_future(self._escalate(task, act)))

    async def _escalate(self, task: OpenTask, act: m.Task) -> None:
        created = datetime.fromisoformat(task.created_at)
        for i, esc in enumerate(act.escalate):
            if i < task.escalations_done:
                continue
            if await self._task_done(task, self.cal.add(created, esc.after)) or self._stopping():
                return
            key = f"{self.wf_id}/{task.step_id}/escalate/{i}"
            try:
                if esc.notify is not None:
                    text = esc.text or "Task still open: {{ account.name }}"
                    await self._activity("send_alert", AlertInput(
                        key=key, account_id=self.inp.account_id, to=[str(esc.notify)], text=text,
                        scope=self._scope(None, [text])))
                else:
                    await self._activity("change_task", TaskChangeInput(
                        key=key, task_id=task.task_id, account_id=self.inp.account_id,
                        assignee=str(esc.reassign) if esc.reassign else "", priority=esc.priority or ""))
                result = "done"
            except (ActivityError, ApplicationError) as exc:
                result = f"failed: {why_failed(exc)}"
            task.escalations_done = i + 1
            self.results[f"{task.step_id}/escalate/{i}"] = StepResult(
                status=result.split(":")[0], result=result, at=workflow.now().isoformat(), kind="escalate",
                planned=self.cal.add(created, esc.after).isoformat())

    async def _task_done(self, task: OpenTask, until: datetime, *, recheck: bool = False) -> bool:
        """Wait until ``until`` or the task's completion; at ``until`` ask the CRM (polling).

        True also when a stop is pending (the waiter must stop waiting: the caller checks which).
        ``recheck`` (the main path): the exit criteria are checked after every delivered event.
        """
        recheck = recheck and self.at_once and bool(self.pb.exit.when)
        while (remaining := (until - workflow.now()).total_seconds()) > 0:
            self.recheck = False
            with contextlib.suppress(TimeoutError):
                await workflow.wait_condition(lambda: task.task_id in self.completed or self._stopping() or (
                    recheck and self.recheck), timeout=remaining)
            if task.task_id in self.completed or self._stopping() or not (recheck and self.recheck):
                break
            await self._check_exit(False)  # raises when the criteria now hold
        if self._stopping():
            return True
        if task.task_id not in self.completed and await self._activity("get_task", task.task_id) == "completed":
            self.completed.add(task.task_id)
            self._record_task_end(task, "task_completed")
        return task.task_id in self.completed

    async def _wait_for(self, step: m.Step, act: m.WaitFor, ctx: dict[str, Any]) -> None:
        done = self.results.get(step.id)
        if done is None or done.status == "chose":
            start = len(self.inbox)
            deadline = self.cal.add(workflow.now(), act.timeout)
            got = await self._next_event(act, ctx, start, deadline)
            if got is not None:
                self._record(step, "received", {"id": got.id, "type": got.type, "data": got.data})
                return
            self._record(step, "chose", "timed_out")
        await self._steps(act.on_timeout)
        self._record(step, "timed_out")

    async def _next_event(self, act: m.WaitFor, ctx: dict[str, Any], start: int, deadline: datetime) -> Event | None:
        seen = start
        while True:
            for event in self.inbox[seen:]:
                seen += 1
                if event.type == act.event and (not act.where or self._truthy(act.where, {
                        **ctx, "event": {"id": event.id, "type": event.type, "account_id": event.account_id,
                                         "occurred_at": event.occurred_at, "data": event.data}})):
                    return event
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return None
            try:
                await workflow.wait_condition(lambda n=seen: len(self.inbox) > n or self.stop is not None,  # type: ignore[misc]
                                              timeout=remaining)
            except TimeoutError:
                return None
            if self.stop is not None:
                raise self.stop

    async def _branch(self, step: m.Step, act: m.Branch, ctx: dict[str, Any]) -> None:
        done = self.results.get(step.id)
        if done is not None:
            chosen = done.result
        else:
            chosen = next((i for i, case in enumerate(act.cases) if self._truthy(case.when, ctx)), "default")
            self._record(step, "chose", chosen)
        await self._steps(act.default if chosen == "default" else act.cases[int(chosen)].steps)
        self._record(step, "done", chosen)


EFFECTS = (m.Task, m.Alert, m.Email, m.Update, m.Note, m.Http, m.StartPlaybook)
"""Step kinds with a side effect: their activity checks and renders against the account it reads."""
PARTIES = frozenset({m.Task, m.Alert, m.Email})
"""Effect step kinds that name parties: their activity reads the account's people."""
