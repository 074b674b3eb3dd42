"""The state and plumbing of a PlaybookRun (engine/runtime/workflow.py): activities with the run's
retry policy, the account context, the record of step results, exit criteria, stops, closing open
tasks, continue-as-new. Workflow code: deterministic, workflow time, no I/O of its own.

PlaybookRun inherits it (a plain base class: the workflow's name, signals, queries and run method
are all on PlaybookRun), so the run walks the steps there and leans on this for the rest.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from engine.language import model as m
    from engine.language.context import Calendar, evaluate
    from engine.language.sendwindow import SendWindow
    from engine.payloads.runcontext import full_context
    from engine.payloads.runtypes import (
        AlertInput,
        ContextInput,
        Event,
        OpenTask,
        RunInput,
        RunState,
        StepResult,
        StepScope,
        TaskChangeInput,
        WindowInput,
        as_json,
    )

RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), backoff_coefficient=2.0,
                    maximum_interval=timedelta(minutes=5), maximum_attempts=20)
TIMEOUT = timedelta(minutes=2)
SEND_WINDOW = "send-window"
"""Patch id: an email step with a send window (its own or the calendar's default) waits for the next
opening in the recipient's zone before it sends. Set only where a window applies, so runs without
one record nothing new and earlier histories replay unchanged."""


class RunEnd(Exception):
    """The run ends here: an exit step, the exit criteria, or a cancel."""

    def __init__(self, outcome: str, reason: str) -> None:
        super().__init__(reason)
        self.outcome, self.reason = outcome, reason


class StepFailed(Exception):
    pass


def why_failed(exc: BaseException) -> str:
    cause = exc.cause if isinstance(exc, ActivityError) and exc.cause else exc
    return str(cause) or type(cause).__name__


class RunBase:
    """What PlaybookRun's step walker needs besides the walk; the fields are set by PlaybookRun."""

    inp: RunInput
    pb: m.Playbook
    cal: Calendar
    wf_id: str
    started_at: str
    results: dict[str, StepResult]
    open_tasks: list[OpenTask]
    completed: set[str]
    inbox: list[Event]
    stop: RunEnd | None
    recheck: bool
    at_once: bool
    by_event: set[str]
    marked: set[str]
    marking: int
    reached: str
    held: str

    def _stopping(self) -> bool:
        return self.at_once and self.stop is not None

    def _halt(self) -> None:
        """Honour a pending stop (an exit event, the exit criteria, a cancel) before the next effect."""
        if self._stopping():
            assert self.stop is not None
            raise self.stop

    def _to_mark(self) -> list[OpenTask]:
        """This run's tasks an event said are done that it has not completed in the CRM yet."""
        return [t for t in self.open_tasks if t.task_id in self.by_event and t.task_id not in self.marked]

    async def _complete_in_crm(self) -> None:
        """Beside the main path: complete in the CRM each task a ``task.completed`` event reported,
        once per task (the key ``workflow-id/step/completed`` goes through the ledger)."""
        while True:
            await workflow.wait_condition(lambda: bool(self._to_mark()))
            for task in self._to_mark():
                self.marked.add(task.task_id)
                self.marking += 1
                try:
                    await self._activity("change_task", TaskChangeInput(
                        key=f"{self.wf_id}/{task.step_id}/completed", task_id=task.task_id,
                        account_id=self.inp.account_id, status="completed"))
                except ActivityError as exc:
                    workflow.logger.warning("could not complete task %s in the CRM: %s", task.task_id, why_failed(exc))
                finally:
                    self.marking -= 1

    async def _sleep_until(self, deadline: datetime) -> None:
        while True:
            remaining = (deadline - workflow.now()).total_seconds()
            if remaining <= 0:
                return
            self.recheck = False
            try:
                await workflow.wait_condition(lambda: self.recheck or self.stop is not None, timeout=remaining)
            except TimeoutError:
                return
            await self._check_exit(False)

    async def _check_exit(self, needs_context: bool) -> dict[str, Any]:
        """Exit criteria, checked before every step and after every delivered event; returns the
        context, read fresh when the step or the criteria need it (else empty: nothing to read)."""
        if self.stop is not None:
            raise self.stop
        if not needs_context and not self.pb.exit.when:
            return {}
        ctx = await self._context()
        if self.pb.exit.when and self._truthy(self.pb.exit.when, ctx):
            self.stop = RunEnd("exited", f"exit criteria met: {self.pb.exit.when}")
            raise self.stop
        return ctx

    async def _context(self) -> dict[str, Any]:
        # A local activity: a short read with no side effect, run before every step, so it should not
        # pay a task-queue round trip each time (it is recorded in history all the same).
        arg = as_json(ContextInput(account_id=self.inp.account_id))
        data = await workflow.execute_local_activity("load_context", arg, start_to_close_timeout=TIMEOUT,
                                                     retry_policy=RETRY)
        return full_context(data, now=workflow.now(), calendar=self.cal, trigger=self.inp.trigger,
                            steps=self._steps_view(), run=self._run_info())

    def _steps_view(self) -> dict[str, Any]:
        steps: dict[str, Any] = {}
        for sid, res in self.results.items():
            steps[sid] = steps[sid.replace("-", "_")] = {"status": res.status, "result": res.result}
        return steps

    def _run_info(self) -> dict[str, Any]:
        return {"id": self.wf_id, "playbook": self.pb.id, "version": self.inp.version, "started_at": self.started_at}

    def _truthy(self, expr: str, ctx: dict[str, Any]) -> bool:
        return bool(evaluate(expr, ctx))

    def _scope(self, step: m.Step | None, texts: list[str]) -> StepScope:
        raise NotImplementedError  # PlaybookRun's

    async def _send_window(self, step: m.Step, act: m.Email) -> None:
        """Wait for the next opening of the step's send window (else the calendar's default) in the
        recipient's zone, unless the send is refused anyway (suppressed, capped: engine/runtime/windowcheck.py)."""
        default = self.inp.calendar.get("send_window")
        window = act.send_window or (SendWindow.from_dict(default) if default else None)
        if window is None or not workflow.patched(SEND_WINDOW):
            return
        probe = WindowInput(key=f"{self.wf_id}/{step.id}/window", account_id=self.inp.account_id, to=str(act.to),
                            category=act.category, window=window.as_dict(), now=workflow.now().isoformat(),
                            zone=self.cal.timezone, scope=self._scope(step, step_texts(act)))
        found = await self._activity("email_window", probe)
        if found.get("blocked") or not found.get("until"):
            return  # refused anyway (the send step records why), or inside the window: send now
        zone = ZoneInfo(found["zone"])
        opening = datetime.fromisoformat(found["until"])
        self.held = (f"{step.id}: held for its send window ({window.describe()} {zone.key}) until "
                     f"{opening.astimezone(zone).isoformat()}")
        try:
            await self._sleep_until(opening)
        finally:
            self.held = ""

    async def _activity(self, name: str, arg: Any) -> Any:
        return await workflow.execute_activity(name, as_json(arg), start_to_close_timeout=TIMEOUT, retry_policy=RETRY)

    def _record(self, step: m.Step, status: str, result: Any = None, *, planned: str = "") -> None:
        # kind and planned feed the performance report only: recording them issues no command.
        self.results[step.id] = StepResult(status=status, result=result, at=workflow.now().isoformat(),
                                           kind=step_kind(step.action), planned=planned or self.reached or "")

    def _record_task_end(self, task: OpenTask, kind: str) -> None:
        """Note that one of this run's tasks was completed or closed (for the report; no command)."""
        key = f"{task.step_id}/{'completed' if kind == 'task_completed' else 'closed'}"
        if key not in self.results:
            now = workflow.now().isoformat()
            self.results[key] = StepResult(status="done", result=task.task_id, at=now, kind=kind, planned=now)

    async def _close_open_tasks(self, end: RunEnd) -> None:
        """Close this run's open tasks as ``cancelled`` (not done work), with why the run ended."""
        reason = f"run {end.outcome}: {end.reason}" if end.outcome in ("exited", "cancelled") else \
            f"run ended ({end.outcome}): {end.reason}"
        for task in self.open_tasks:
            if task.task_id in self.completed:
                continue
            try:
                closed = await self._activity("change_task", TaskChangeInput(
                    key=f"{self.wf_id}/{task.step_id}/close", task_id=task.task_id, status="cancelled",
                    reason=reason, account_id=self.inp.account_id))
                self.completed.add(task.task_id)
                done = isinstance(closed, dict) and closed.get("status") == "completed"
                self._record_task_end(task, "task_completed" if done else "task_closed")
            except ActivityError as exc:
                workflow.logger.warning("could not close task %s: %s", task.task_id, why_failed(exc))

    async def _alert_failure(self, message: str) -> None:
        """By default a failed run alerts the playbook's owner (or the ops channel)."""
        to = str(self.pb.owner) if self.pb.owner else self.inp.calendar.get("ops_channel", "#cs-ops")
        try:
            await self._activity("send_alert", AlertInput(
                key=f"{self.wf_id}/failed", account_id=self.inp.account_id, to=[to],
                text=f"Playbook {self.pb.id} failed for account {self.inp.account_id}: {message}"))
        except ActivityError as exc:
            workflow.logger.error("could not alert about the failed run: %s", why_failed(exc))

    def _maybe_continue_as_new(self) -> None:
        info = workflow.info()
        if self.at_once and (self._to_mark() or self.marking):
            return  # a task is being completed in the CRM: continue as new at a later step
        if info.is_continue_as_new_suggested() or info.get_current_history_length() > self.inp.history_limit:
            still_open = [t for t in self.open_tasks if t.task_id not in self.completed]
            state = RunState(steps=self.results, open_tasks=still_open, started_at=self.started_at)
            workflow.continue_as_new(RunInput(**{**self.inp.__dict__, "resume": state}))


def step_kind(act: m.Action) -> str:
    """A step's kind as the report names it: the action's class name in lower case (task, email, wait...)."""
    return type(act).__name__.lower()


def needs_context(step: m.Step) -> bool:
    """Whether a step without a side effect evaluates anything (then the account is read first)."""
    act = step.action
    return bool(step.when) or isinstance(act, m.Branch) or (isinstance(act, m.Wait) and act.until is not None) or (
        isinstance(act, m.WaitFor) and bool(act.where)) or (isinstance(act, m.Exit) and "{" in act.reason)


def step_texts(act: m.Action) -> list[str]:
    """The templates and expressions of an effect step (to see whether they read ``steps``)."""
    if isinstance(act, m.Task):
        return [act.title, act.notes, act.due_on or ""]
    if isinstance(act, m.Alert):
        return [act.text, json.dumps(act.blocks)]
    if isinstance(act, m.Email):
        return [act.subject, act.body]
    if isinstance(act, m.Update):
        return [json.dumps(dict(act.account))]
    if isinstance(act, m.Note):
        return [act.text]
    if isinstance(act, m.Http):
        return [act.url, json.dumps(dict(act.headers)), json.dumps(act.json)]
    return []


def sandbox_runner() -> Any:
    """The workflow sandbox with the engine's pure modules passed through (faster, and they are
    deterministic: compiled templates are cached per text)."""
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

    return SandboxedWorkflowRunner(restrictions=SandboxRestrictions.default.with_passthrough_modules(
        "engine", "connectors", "jinja2", "markupsafe", "yaml", "jsonschema", "croniter"))
