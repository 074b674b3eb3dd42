"""Connector failures: retryable ones are retried (honouring Retry-After) and still land once;
permanent ones fail the step at once with the connector's message. And the account is re-read
before every step, so a later step sees what changed in the CRM meanwhile."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar

from connectors.base import NewTask, PermanentError, RetryableError, TaskRecord
from connectors.sqlcrm import SQLCRM
from tests.workflows.harness import stack

TASK = """\
playbook: flaky
title: Flaky CRM
triggers: [{manual: {}}]
steps:
  - id: t
    task: {title: "Call {{ account.name }}"}
"""


class FlakyCRM(SQLCRM):
    """The real SQL CRM whose create_task fails the first ``failures`` calls (fault injection)."""

    failures: ClassVar[list[Exception]] = []
    calls = 0

    async def create_task(self, task: NewTask, idempotency_key: str) -> TaskRecord:
        type(self).calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return await super().create_task(task, idempotency_key)


async def test_retryable_errors_are_retried_and_land_once(tmp_path: Path, monkeypatch: Any) -> None:
    FlakyCRM.failures = [RetryableError("HTTP 429 Too Many Requests", retry_after=3),
                         RetryableError("HTTP 503 Service Unavailable")]
    FlakyCRM.calls = 0
    monkeypatch.setattr("tests.workflows.harness.SQLCRM", FlakyCRM)
    async with stack(tmp_path) as s:
        out = await (await s.start(TASK)).result()
    assert out.outcome == "completed"
    assert FlakyCRM.calls == 3 and s.crm.count_tasks() == 1


async def test_permanent_error_fails_the_step_without_retrying(tmp_path: Path, monkeypatch: Any) -> None:
    FlakyCRM.failures = [PermanentError("HTTP 400: assignee is not active")]
    FlakyCRM.calls = 0
    monkeypatch.setattr("tests.workflows.harness.SQLCRM", FlakyCRM)
    async with stack(tmp_path) as s:
        out = await (await s.start(TASK)).result()
    assert out.outcome == "failed" and "assignee is not active" in out.reason
    assert out.steps["t"].status == "failed"
    assert FlakyCRM.calls == 1 and s.crm.count_tasks() == 0


REREAD = """\
playbook: reread
title: Re-read
triggers: [{manual: {}}]
steps:
  - id: pause
    wait: 1d
  - id: upsell
    when: account.arr > 200000
    note: {text: "ARR now {{ account.arr | int }}"}
"""


async def test_account_is_re_read_before_each_step(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        handle = await s.start(REREAD)
        await s.env.sleep(timedelta(hours=12))
        await s.crm.update_account("acme", {"arr": "250000"})
        out = await handle.result()
    assert out.steps["upsell"].status == "done"
    assert [n.text for n in s.crm.list_notes("acme")] == ["ARR now 250000"]
