"""200 playbook runs create their HubSpot task through a HubSpot that fails 30% of all calls
(429, 5xx, connections cut before and after the request is processed): every run completes and
every task exists exactly once, counted by the HubSpot stand-in itself."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from connectors.hubspot import HubSpotCRM
from engine.payloads.runtypes import run_id_for
from tests.fakes.http import FAULT_KINDS
from tests.fakes.hubspot import FakeHubSpot, HubSpotFaults
from tests.workflows.harness import stack

TOKEN = "pat-na1-00000000-fault-test-token"
RUNS, COMPANIES = 200, 20
PLAYBOOK = """\
playbook: hubspot-call
title: Call the customer
triggers: [{manual: {}}]
steps:
  - id: call
    task: {title: "Call {{ account.name }}", notes: "Primary: {{ contacts[0].email }}", priority: high,
           due: 5 business days}
"""


async def test_200_task_sends_through_30_percent_faults_land_exactly_once(tmp_path: Path) -> None:
    faults = HubSpotFaults(rate=0.3, seed=20240501)
    async with FakeHubSpot(TOKEN, faults) as fake:
        mgr = fake.add_owner("maria@example.com", "Maria", "Manager")
        csm = fake.add_owner("carl@example.com", "Carl", "CSM")
        fake.add_owner("ops@example.com", "Ops", "Fallback")  # the harness's fallback owner
        companies = [fake.add_company(name=f"Company {i}", hubspot_owner_id=csm, csops_segment="smb")
                     for i in range(COMPANIES)]
        for i, company in enumerate(companies):
            fake.add_contact(company, email=f"pat{i}@example.com", csops_primary_contact="true")
        crm = HubSpotCRM(TOKEN, base_url=fake.url, property_map={"manager.carl@example.com": mgr})
        crm.index_delay = 1.0  # the fake's search is consistent; keep the lost-answer retries short
        try:
            async with stack(tmp_path, crm=crm) as s:
                with s.env.auto_time_skipping_disabled():  # many runs awaited at once: see DESIGN.md
                    handles = [await s.start(PLAYBOOK, account_id=companies[i % COMPANIES], occurrence=f"r{i}")
                               for i in range(RUNS)]
                    outs = await asyncio.gather(*(h.result() for h in handles))
        finally:
            await crm.close()

    assert [o.outcome for o in outs] == ["completed"] * RUNS
    tasks = fake.tasks()
    keys = Counter(t.properties["csops_idempotency_key"] for t in tasks)
    expected = {f"{run_id_for('hubspot-call', companies[i % COMPANIES], f'r{i}')}/call" for i in range(RUNS)}
    assert fake.created["tasks"] == RUNS and len(tasks) == RUNS
    assert set(keys) == expected and max(keys.values()) == 1  # no duplicates, none missing
    assert {o.steps["call"].result["task_id"] for o in outs} == {t.id for t in tasks}
    assert all(t.properties["hubspot_owner_id"] == csm and t.properties["hs_task_priority"] == "HIGH" for t in tasks)
    assert {t.properties["hs_task_body"] for t in tasks} == {f"Primary: pat{i}@example.com" for i in range(COMPANIES)}

    # The faults really happened, on reads and on the creates themselves.
    assert set(faults.injected) == set(FAULT_KINDS) and min(faults.injected.values()) >= 50
    creates = {kind: n for (method, route, kind), n in faults.by_route.items()
               if (method, route) == ("POST", "/crm/v3/objects/tasks")}
    assert creates.get("drop_after", 0) >= 5  # processed, answer lost: a naive retry would duplicate these
    assert sum(faults.injected.values()) >= 0.25 * len(fake.requests)
    print(f"\nHubSpot under faults: {len(fake.requests)} requests, injected {dict(faults.injected)}, "
          f"on task creates {creates}, tasks created {fake.created['tasks']}, duplicates 0")
