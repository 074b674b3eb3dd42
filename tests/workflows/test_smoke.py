from __future__ import annotations

from datetime import date
from pathlib import Path

from tests.workflows.harness import stack

PB = """\
playbook: smoke
title: Smoke
triggers: [{manual: {}}]
steps:
  - id: kickoff
    task: {title: "Kick off {{ account.name }}", due: 5 business days}
  - id: wait-a-day
    wait: 1d
  - id: hello
    email:
      to: primary_contact
      subject: "Hi {{ contact.first_name }}"
      body: "Renewal {{ account.renewal_date | date }}"
  - id: ping
    alert: {to: [owner, "#cs-risk"], text: "{{ account.name }} pinged"}
"""


async def test_smoke(tmp_path: Path) -> None:
    async with stack(tmp_path, renewal=date(2027, 3, 5)) as s:
        handle = await s.start(PB)
        out = await handle.result()
        assert out.outcome == "completed", out
        assert [t.title for t in s.crm.list_tasks()] == ["Kick off Acme Corp"]
        msgs = s.mail.messages()
        assert [m["Subject"] for m in msgs] == ["Hi Pat"]
        assert [m.get("channel") or m.get("user_email") for m in s.chat.messages()] == ["carl@example.com", "cs-risk"]
