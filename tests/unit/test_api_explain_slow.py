"""The explain route evaluates playbook conditions off the event loop, within the matcher's time bound:
a slow ``audience.when`` cannot freeze the API (``/v1/health`` answers meanwhile)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.api.app import create_app
from engine.store.store import Store
from tests.unit.test_api import AUTH, NOW, TOKEN, Starts, compiled, make_ingestor

SLOWEST = " and ".join(["(range(9999)|list|sort(reverse=true)|first) > 0"] * 12)
"""About as much work as one evaluation may do (engine/language/sandbox.py MAX_WORK): 0.3-1 s here."""
SLOW = f"""playbook: slow
title: Slow
triggers:
  - manual: {{}}
audience:
  when: {SLOWEST}
steps:
  - id: call
    task: {{title: Call them}}
"""


@pytest.fixture
async def client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[httpx.AsyncClient]:
    # The sandbox bounds an evaluation to about a second at worst; the child's bound is cut shorter
    # here so the slowest condition it allows runs over it.
    monkeypatch.setattr("engine.triggers.matchproc.MATCH_TIMEOUT", 0.15)
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", health_score=72))
    playbooks = {"nps-follow-up": compiled(), "slow": compiled(SLOW)}
    app = create_app(store=store, ingestor=make_ingestor(store, crm, playbooks, Starts()), token=TOKEN, crm=crm,
                     playbooks=playbooks, now=lambda: NOW, process=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c
    await asyncio.to_thread(app.state.deps.explainer.close)
    store.close()
    crm.close()


async def test_health_answers_while_a_slow_explain_is_cut_off(client: httpx.AsyncClient) -> None:
    # a first explain starts the evaluating process, so the slow one below is timed on its own
    warm = await client.get("/v1/accounts/acme/explain", params={"playbook": "nps-follow-up"}, headers=AUTH)
    assert warm.status_code == 200, warm.text
    began = time.monotonic()
    slow = asyncio.create_task(client.get("/v1/accounts/acme/explain", headers=AUTH))
    # /v1/health every 50 ms while the explain runs: the longest wait between two answers is how long
    # the API was frozen (evaluating the condition on the loop took 9.5 s)
    answered, longest, last = 0, 0.0, time.monotonic()
    while not slow.done():
        health = await client.get("/v1/health")
        assert health.status_code == 200
        answered += 1
        longest, last = max(longest, time.monotonic() - last), time.monotonic()
        await asyncio.sleep(0.05)
    assert longest < 1.0, f"/v1/health went unanswered for {longest:.1f} s during a slow explain"
    assert answered >= 2
    r = await slow
    took = time.monotonic() - began
    assert r.status_code == 200, r.text
    by_playbook = {p["playbook"]: p["checks"] for p in r.json()["playbooks"]}
    assert by_playbook["slow"] == [{
        "name": "conditions", "state": "error", "seen": {"timeout_s": 0.15},
        "text": "checking the triggers of playbook 'slow' took over 0.15 s and was stopped; simplify its conditions "
                "(where, audience.when)"}]
    # the other playbook is explained as usual
    assert {c["name"]: c["state"] for c in by_playbook["nps-follow-up"]}["enabled"] == "pass"
    assert took < 10
