"""``POST /v1/runs`` through ASGI over the real door (store, built-in CRM) with a recording start:
who is recorded, and how a refusal says to force a start."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from engine.api.app import create_app
from tests.unit.test_door import NOW, Rig, playbook
from tests.unit.test_door import rig as rig  # the fixture

TOKEN = "t0ken-for-tests-only-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def client(rig: Rig) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(store=rig.store, ingestor=object(), token=TOKEN, crm=rig.crm,  # type: ignore[arg-type]
                     playbooks=lambda: rig.books, door=rig.door(), now=lambda: NOW, process=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def test_a_start_without_by_records_api(rig: Rig, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/runs", json={"playbook": "manual", "account_id": "acme"}, headers=AUTH)
    assert r.status_code == 201, r.text
    [run] = (await rig.store.runs(account_id="acme")).runs
    assert run.trigger["by"] == "api"
    [decision] = await rig.store.decisions(account_id="acme")
    assert decision.signal == {"kind": "manual", "via": "api", "by": "api"}


async def test_a_start_with_by_records_it(rig: Rig, client: httpx.AsyncClient) -> None:
    r = await client.post("/v1/runs", json={"playbook": "manual", "account_id": "acme", "by": "ann"}, headers=AUTH)
    assert r.status_code == 201, r.text
    assert (await rig.store.runs(account_id="acme")).runs[0].trigger["by"] == "ann"


async def test_a_suppressed_start_says_how_to_force_it_in_the_body(rig: Rig, client: httpx.AsyncClient) -> None:
    rig.books["strategic-only"] = playbook("strategic-only")
    r = await client.post("/v1/runs", json={"playbook": "strategic-only", "account_id": "smallco"}, headers=AUTH)
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert (error["code"], error["details"]["reason"]) == ("start_suppressed", "audience_segment")
    assert error["message"].endswith('[rule: audience_segment]; "force": true with a "reason" starts it anyway')
    assert "--force" not in error["message"]
    r = await client.post("/v1/runs", json={"playbook": "strategic-only", "account_id": "smallco", "force": True},
                          headers=AUTH)
    assert (r.status_code, r.json()["error"]["code"]) == (422, "reason_required")
    assert '"reason"' in r.json()["error"]["message"] and "--reason" not in r.json()["error"]["message"]
