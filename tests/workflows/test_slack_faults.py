"""200 playbook runs alerting through SlackChat while the Slack fake fails 30% of all calls (429,
5xx, connections cut before and after processing): every run completes and every alert reaches
Slack exactly once, counted on the fake's side."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectors.slack import SlackChat
from tests.fakes.http import FAULT_KINDS, Faults
from tests.fakes.slack import FakeSlack
from tests.workflows.harness import stack

RUNS = 200
TOKEN = "xoxb-test-token"
ALERT = """\
playbook: slack-faults
title: Slack under faults
triggers: [{manual: {}}]
steps:
  - id: alert
    alert: {to: ["#cs-alerts", owner], text: "{{ account.name }} needs a look"}
"""


async def test_every_alert_arrives_once_through_faults(tmp_path: Path) -> None:
    faults = Faults(rate=0.3, seed=4, retry_after=1)
    async with FakeSlack(token=TOKEN, faults=faults) as fake:
        slack = SlackChat(TOKEN, base_url=fake.base_url)
        try:
            async with stack(tmp_path, chat=slack) as s:
                handles = [await s.start(ALERT, occurrence=f"n{i}") for i in range(RUNS)]
                # Many runs awaited at once can hang the time-skipping server (DESIGN.md): real time here.
                with s.env.auto_time_skipping_disabled():
                    outs = await asyncio.gather(*(h.result() for h in handles))
        finally:
            await slack.close()

    assert [o.outcome for o in outs] == ["completed"] * RUNS
    sent = [ref for o in outs for ref in o.steps["alert"].result]
    delivered = fake.deliveries()
    assert len(sent) == len(delivered) == 2 * RUNS
    assert sorted(delivered.values()) == [1] * (2 * RUNS)  # no key posted twice
    assert sorted(sent) == sorted(f"{p.channel}:{p.ts}" for p in fake.posted)  # each run got its own message
    channel = next(c.id for c in fake.channels.values() if c.name == "cs-alerts")
    dm = next(c.id for c in fake.channels.values() if c.user == fake.users["carl@example.com"])
    assert sorted(p.channel for p in fake.posted) == [channel] * RUNS + [dm] * RUNS
    assert {p.text for p in fake.posted} == {"Acme Corp needs a look"}

    # The faults really happened, and some posts were processed with their answer lost.
    assert all(faults.injected[kind] > 0 for kind in FAULT_KINDS), faults.injected
    assert sum(faults.injected.values()) > 0.25 * len(fake.requests)
    assert any(not p.answered for p in fake.posted)
    print(f"\n{len(fake.requests)} requests, faults {dict(faults.injected)}, "
          f"{sum(not p.answered for p in fake.posted)} posts with the answer lost, "
          f"{len(fake.called('conversations.history'))} history lookups, 0 duplicates")
