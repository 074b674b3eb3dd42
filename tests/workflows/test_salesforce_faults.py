"""200 playbook runs creating a Salesforce task each through SalesforceCRM, while the Salesforce fake
fails 30% of all calls (429, 5xx, connections cut before and after processing, the token endpoint
included, and every token expiring half way): every run completes and every task exists exactly once,
counted on the fake's side."""

from __future__ import annotations

import asyncio
from pathlib import Path

from connectors.salesforce import SalesforceCRM
from connectors.salesforce_map import key_hash
from engine.payloads.runtypes import run_id_for
from tests.fakes.http import FAULT_KINDS, Faults
from tests.fakes.salesforce import FakeSalesforce
from tests.workflows.harness import stack

RUNS = 200
ACCOUNTS = 8
CLIENT_ID, SECRET = "3MVG9-faults", "secret-faults-1"
TASK = """\
playbook: sf-faults
title: Salesforce under faults
triggers: [{manual: {}}]
steps:
  - id: call
    task:
      assign: owner
      title: "Call {{ account.name }} ({{ account.segment }})"
      notes: "ARR {{ account.arr | int }}"
      due: 3d
      priority: high
"""


async def test_every_task_is_created_once_through_faults(tmp_path: Path) -> None:
    faults = Faults(rate=0.3, seed=7, retry_after=1)
    async with FakeSalesforce(faults, client_id=CLIENT_ID, client_secret=SECRET) as fake:
        mgr = fake.add("User", Username="m@sf", Email="maria@example.com", Name="Maria Manager")
        csm = fake.add("User", Username="c@sf", Email="carl@example.com", Name="Carl CSM", ManagerId=mgr)
        fake.add("User", Username="o@sf", Email="ops@example.com", Name="Ops Fallback")
        accounts = [fake.add("Account", Name=f"Acme {n}", Segment__c="smb", OwnerId=csm, ARR__c=1000.0 * n)
                    for n in range(ACCOUNTS)]
        fake.expire_tokens_at_task = RUNS // 2  # the session times out half way: the connector gets a new token
        crm = SalesforceCRM(fake.url, client_id=CLIENT_ID, client_secret=SECRET, timeout=5.0)
        runs = [(accounts[i % ACCOUNTS], f"n{i}") for i in range(RUNS)]
        try:
            async with stack(tmp_path, crm=crm) as s:
                handles = [await s.start(TASK, account_id=a, occurrence=o) for a, o in runs]
                # Many runs awaited at once can hang the time-skipping server (DESIGN.md): real time here.
                with s.env.auto_time_skipping_disabled():
                    outs = await asyncio.gather(*(h.result() for h in handles))
        finally:
            await crm.close()

    assert [o.outcome for o in outs] == ["completed"] * RUNS
    tasks = fake.tasks()
    assert fake.tasks_created == len(tasks) == RUNS  # counted server side: no run made a second task
    by_key = {t["Csops_Key__c"]: t for t in tasks}
    for (account, occurrence), out in zip(runs, outs, strict=True):
        task = by_key[key_hash(f"{run_id_for('sf-faults', account, occurrence)}/call")]
        assert out.steps["call"].result["task_id"] == task["Id"]  # the id the run recorded is the one made
        n = accounts.index(account)
        # The title and notes came from the account as read through SalesforceCRM.
        assert (task["WhatId"], task["OwnerId"], task["Subject"], task["Description"], task["Priority"]) == (
            account, csm, f"Call Acme {n} (smb)", f"ARR {1000 * n}", "High")

    # The faults really happened, and some upserts were processed with their answer lost.
    assert all(faults.injected[kind] > 0 for kind in FAULT_KINDS), faults.injected
    assert sum(faults.injected.values()) > 0.25 * len(fake.requests)
    assert fake.upserts_updated > 0
    assert fake.tokens_issued >= 2
    reads = sum(m == "GET" and "/sobjects/Account/" in p for m, p in fake.requests)
    assert reads >= RUNS
    print(f"\n{len(fake.requests)} requests, faults {dict(faults.injected)}, {fake.tasks_created} tasks created, "
          f"{fake.upserts_updated} upserts found their task already made, {reads} account reads, "
          f"{fake.tokens_issued} tokens, 0 duplicates")
