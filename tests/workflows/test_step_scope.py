"""What an effect step's activity is sent (StepScope, engine/runtime/workflow.py ``_scope``): the run's
facts, the trigger and earlier steps' results go along only when one of the step's texts names them,
so steps that do not read them write less to the run's history; a text that names them renders them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType

from tests.workflows.harness import stack

PLAYBOOK = """\
playbook: scoped
title: Scoped
triggers: [{manual: {}}]
steps:
  - id: plain
    note: {text: "plain for {{ account.name }}"}
  - id: named
    note: {text: "{{ run.id }} ({{ run.playbook }}) by {{ trigger.type }} after {{ steps.plain.status }}"}
  - id: by-when
    when: "trigger.type == 'manual'"
    note: {text: "manual"}
"""


def scopes(history: Any) -> dict[str, dict[str, Any]]:
    """Each effect step's scope as its activity received it, by step id."""
    out = {}
    for e in history.events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            sent = json.loads(e.activity_task_scheduled_event_attributes.input.payloads[0].data)
            out[sent["key"].rsplit("/", 1)[1]] = sent["scope"]
    return out


async def test_a_step_is_sent_the_run_trigger_and_steps_only_when_its_texts_name_them(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        handle = await s.start(PLAYBOOK)
        out = await handle.result()
        sent = scopes(await handle.fetch_history())
    assert [out.steps[k].status for k in ("plain", "named", "by-when")] == ["done", "done", "done"]
    assert (sent["plain"]["run"], sent["plain"]["trigger"], sent["plain"]["steps"]) == ({}, {}, {})
    assert sent["named"]["run"]["id"] == "pb:scoped:acme:once"
    assert sent["named"]["trigger"] == {"type": "manual"}
    assert sent["named"]["steps"]["plain"]["status"] == "done"
    assert (sent["by-when"]["trigger"], sent["by-when"]["run"]) == ({"type": "manual"}, {})
    assert [n.text for n in s.crm.list_notes("acme")] == [
        "plain for Acme Corp", "pb:scoped:acme:once (scoped) by manual after done", "manual"]
