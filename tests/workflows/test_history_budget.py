"""A run that waits daily for a year stays within the history budget by continuing as new."""

from __future__ import annotations

from pathlib import Path

import yaml
from temporalio.client import WorkflowExecutionStatus

from engine.language.validate import check_text
from engine.payloads.runtypes import RULES, RunInput
from engine.runtime.workflow import PlaybookRun
from tests.workflows.harness import stack

DAYS = 365
BUDGET = 10_240


async def test_daily_waits_for_a_year_continue_as_new(tmp_path: Path) -> None:
    steps = "".join(f"  - id: day-{n}\n    wait: 1d\n" for n in range(DAYS))
    text = f"playbook: daily\ntitle: Daily\ntriggers: [{{manual: {{}}}}]\nsteps:\n{steps}  - id: last\n" \
           "    note: {text: \"a year later\"}\n"
    result = check_text(text)
    assert result.playbook is not None
    async with stack(tmp_path) as s:
        handle = await s.env.client.start_workflow(
            PlaybookRun.run, RunInput(rules=RULES, playbook=yaml.safe_load(text), version=result.playbook.version,
                                      account_id="acme", history_limit=1_500),
            id="pb:daily:acme:once", task_queue=s.queue)
        out = await handle.result()
        lengths = []
        run_id: str | None = handle.first_execution_run_id
        while run_id:
            desc = await s.env.client.get_workflow_handle(handle.id, run_id=run_id).describe()
            history = await s.env.client.get_workflow_handle(handle.id, run_id=run_id).fetch_history()
            lengths.append(len(history.events))
            run_id = None
            if desc.status == WorkflowExecutionStatus.CONTINUED_AS_NEW:
                last = history.events[-1].workflow_execution_continued_as_new_event_attributes
                run_id = last.new_execution_run_id
    assert out.outcome == "completed" and len(out.steps) == DAYS + 1
    assert len(lengths) >= 2, lengths  # it really continued as new
    assert max(lengths) < BUDGET
    assert [n.text for n in s.crm.list_notes("acme")] == ["a year later"]
