"""Committed histories of real runs replay against today's interpreter.

A change that alters the commands a run issues (order, kind, arguments' activity types) breaks
every run in flight; replaying recorded histories catches that before it ships. To record anew
after an intended change: CSOPS_RECORD_HISTORIES=1 pytest tests/workflows/test_playbook_run.py.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from engine.payloads.runtypes import RunInput, RunOutcome
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from tests.workflows.harness import HISTORIES

FILES = sorted(HISTORIES.glob("*.json"))


def _history(path: Path) -> WorkflowHistory:
    return WorkflowHistory.from_json(f"replay-{path.stem}", path.read_text(encoding="utf-8"))


def test_histories_are_committed() -> None:
    assert {p.stem for p in FILES} >= {"renewal-escalations", "wait-for-received", "exit-on-event", "step-kinds",
                                       "exit-while-waiting-on-task", "cancel-while-waiting-on-task",
                                       "task-completed-by-event", "cancel-while-effect-retries",
                                       "exit-criteria-while-waiting-on-task", "send-window-held"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
async def test_recorded_history_replays(path: Path) -> None:
    await Replayer(workflows=[PlaybookRun], workflow_runner=sandbox_runner()).replay_workflow(_history(path))


@workflow.defn(name="PlaybookRun", sandboxed=False)
class ChangedRun(PlaybookRun):
    """An interpreter that waits a minute before every run: a different first command."""

    @workflow.run
    async def run(self, inp: RunInput) -> RunOutcome:
        await workflow.sleep(timedelta(minutes=1))
        return await super().run(inp)


async def test_a_changed_interpreter_fails_the_replay() -> None:
    result = await Replayer(workflows=[ChangedRun]).replay_workflow(_history(HISTORIES / "step-kinds.json"),
                                                                   raise_on_replay_failure=False)
    assert result.replay_failure is not None
    assert "nondetermin" in str(result.replay_failure).lower()
