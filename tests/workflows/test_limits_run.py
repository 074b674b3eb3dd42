"""A text that goes over a limit only because of the account's data fails its step, for good and
at once, with the limit in the reason: in an activity (a note's text) and in the workflow itself
(a wait's until, evaluated deterministically there)."""

from __future__ import annotations

from pathlib import Path

from tests.workflows.harness import stack

HUGE = """\
playbook: huge
title: Huge
triggers: [{manual: {}}]
steps:
  - id: banner
    on_error: continue
    note: {text: "{{ '=' * (account.arr | int) }}"}
  - id: later
    wait: {until: "today + business_days(account.arr | int)"}
  - id: never
    note: {text: "not reached"}
"""


async def test_limits_fail_the_step_without_retries_in_activities_and_in_the_workflow(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await s.crm.update_account("acme", {"arr": "4000000000"})
        out = await (await s.start(HUGE)).result()
    assert out.steps["banner"].status == "failed"
    assert "expression limit exceeded: a repeated text would be 4,000,000,000 characters" in out.steps["banner"].result
    assert out.outcome == "failed"
    assert out.reason.startswith("step later failed: expression limit exceeded: business_days(4,000,000,000)")
    assert "never" not in out.steps
    assert s.crm.list_notes("acme") == []
