"""The HTTP API through ASGI (httpx) and once through a real uvicorn server on a free port.

The store, the CRM and the ingestor are real (SQLite files under tmp_path); Temporal is a stand-in
with the two calls the API makes (status query, cancel signal), and starting a run is a recording
fake, so a test can count the runs the API's background processing started.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
import uvicorn

from connectors.base import Account
from connectors.mailpolicy import Unsubscribe
from connectors.sqlcrm import SQLCRM
from connectors.suppression import SuppressionList
from engine.api.app import MAX_BATCH, MAX_BODY, create_app
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.store.store import EventRecord, Store
from engine.triggers.signals import Decision

TOKEN = "t0ken-for-tests-only-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
SECRET = "unsubscribe-secret-for-tests"
PLAYBOOK = """playbook: nps-follow-up
title: NPS follow-up
triggers:
  - event: {type: nps.submitted, where: event.data.score <= 6}
steps:
  - id: call
    task: {title: Call them}
"""


def compiled(text: str = PLAYBOOK) -> Playbook:
    result = check_text(text)
    assert result.playbook is not None, [p.message for p in result.problems]
    return result.playbook


def event(event_id: str = "ev-1", *, score: int = 3, account: str = "acme", **over: Any) -> dict[str, Any]:
    return {"id": event_id, "type": "nps.submitted", "account_id": account, "occurred_at": "2026-11-23T09:00:00Z",
            "data": {"score": score}, **over}


# --- the ingestor ---------------------------------------------------------------------------------

@dataclass
class Starts:
    """A recording ``start``: every run the processing asked for."""

    calls: list[str] = field(default_factory=list)
    started: asyncio.Event = field(default_factory=asyncio.Event)

    async def __call__(self, playbook: Playbook, decision: Decision) -> tuple[str, str]:
        self.calls.append(decision.run_id)
        self.started.set()
        return "started", f"temporal-{len(self.calls)}"


async def no_signal(run_id: str, event: Any) -> bool:
    return True


def make_ingestor(store: Store, crm: SQLCRM, playbooks: Mapping[str, Playbook], start: Starts) -> Any:
    from engine.triggers.ingest import Ingestor

    return Ingestor(store=store, crm=crm, playbooks=lambda: playbooks, start=start, signal_run=no_signal,
                    calendar=Calendar(), now=lambda: NOW)


# --- Temporal stand-in ------------------------------------------------------------------------------

@dataclass
class FakeWorkflows:
    """The two calls the API makes to Temporal, answered from a dict of running runs."""

    running: dict[str, str] = field(default_factory=dict)
    """run id -> its current step."""
    cancelled: list[tuple[str, str]] = field(default_factory=list)

    async def status(self, run_id: str) -> dict[str, Any] | None:
        if run_id not in self.running:
            return None
        return {"current_step": self.running[run_id], "outcome": "", "open_tasks": ["task-1"], "steps": {"a": {}}}

    async def cancel(self, run_id: str, reason: str) -> Literal["cancelling", "not_found", "ended"]:
        if run_id not in self.running:
            return "not_found"
        self.cancelled.append((run_id, reason))
        return "cancelling"


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store
    starts: Starts
    workflows: FakeWorkflows
    suppressions: SuppressionList
    unsubscribe: Unsubscribe
    app: Any


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm, suppressions = Store(url), SQLCRM(url), SuppressionList(url)
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", lifecycle_stage="adopt", health_score=72,
                            health_band="green", previous_health_score=80))
    playbooks = {"nps-follow-up": compiled()}
    starts, workflows = Starts(), FakeWorkflows()
    unsub = Unsubscribe("https://csops.example.com/v1/unsubscribe/{token}", "", SECRET)
    app = create_app(store=store, ingestor=make_ingestor(store, crm, playbooks, starts), token=TOKEN,
                     workflows=workflows, crm=crm, playbooks=playbooks, unsubscribe=unsub,
                     suppressions=suppressions, now=lambda: NOW)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield Api(client, store, starts, workflows, suppressions, unsub, app)
    for closable in (store, crm, suppressions):
        closable.close()


# --- events ----------------------------------------------------------------------------------------

async def test_missing_and_wrong_token_are_401_with_a_challenge(api: Api) -> None:
    r = await api.client.post("/v1/events", json=event())
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == 'Bearer realm="csops"'
    assert r.json()["error"]["code"] == "unauthorized"
    r = await api.client.post("/v1/events", json=event(), headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401
    assert "invalid_token" in r.headers["www-authenticate"]
    assert TOKEN not in r.text
    r = await api.client.get("/v1/runs", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert await api.store.get_event("ev-1") is None


async def test_one_event_is_accepted_then_a_duplicate(api: Api) -> None:
    r = await api.client.post("/v1/events", json=event(), headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "unknown_accounts": 0, "duplicates": 0, "rejected": 0,
                        "results": [{"id": "ev-1", "status": "accepted", "errors": []}]}
    stored = await api.store.get_event("ev-1")
    assert stored is not None and stored.data == {"score": 3} and stored.account_id == "acme"
    r = await api.client.post("/v1/events", json=event(score=9), headers=AUTH)
    assert r.status_code == 202
    assert r.json()["results"] == [{"id": "ev-1", "status": "duplicate", "errors": []}]
    stored = await api.store.get_event("ev-1")
    assert stored is not None and stored.data == {"score": 3}  # the first one stands


async def test_a_batch_mixes_accepted_duplicate_and_rejected_in_order(api: Api) -> None:
    await api.client.post("/v1/events", json=event("old"), headers=AUTH)
    batch = [event("new-1"), event("old"), {"id": "bad", "type": "nps.submitted"}, "text", event("new-2")]
    r = await api.client.post("/v1/events", json={"events": batch}, headers=AUTH)
    assert r.status_code == 202
    body = r.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (2, 1, 2)
    assert [x["status"] for x in body["results"]] == ["accepted", "duplicate", "rejected", "rejected", "accepted"]
    assert [x["id"] for x in body["results"]] == ["new-1", "old", "bad", "", "new-2"]
    assert body["results"][2]["errors"]
    assert body["results"][2]["errors"] == ["account_id: is required", "occurred_at: is required"]
    assert body["results"][3]["errors"] == ["(event): must be a JSON object, not text"]


async def test_validation_errors_say_what_is_wrong(api: Api) -> None:
    as_json = {**AUTH, "Content-Type": "application/json"}
    r = await api.client.post("/v1/events", content=b'{"id": "x",', headers=as_json)
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "malformed_json"
    assert r.json()["error"]["message"].startswith("the body is not valid JSON (Expecting property name")
    r = await api.client.post("/v1/events", json=[event()], headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"]["message"] == 'the body is a JSON array; send one event object or {"events": [...]}'
    r = await api.client.post("/v1/events", json={"events": {}}, headers=AUTH)
    assert r.json()["error"]["message"] == "'events' is a JSON object; it must be an array of events"
    r = await api.client.post("/v1/events", json={"events": []}, headers=AUTH)
    assert r.status_code == 422
    assert r.json()["error"] == {"code": "invalid_batch_size", "details": None, "message":
                                 "a batch holds 1 to 1000 events, this one 0; split it into several requests"}
    r = await api.client.post("/v1/events", json={"events": [event(f"e{i}") for i in range(MAX_BATCH + 1)]},
                              headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_batch_size"
    # Every event rejected: 422 with the per-event results in details, nothing stored.
    r = await api.client.post("/v1/events", json=event(occurred_at="yesterday"), headers=AUTH)
    assert r.status_code == 422
    err = r.json()["error"]
    assert err["code"] == "invalid_events"
    assert err["message"].startswith("no event was accepted: ")
    assert "occurred_at" in err["message"]
    assert err["details"]["results"][0]["status"] == "rejected"
    assert await api.store.get_event("ev-1") is None


async def test_a_body_over_the_limit_is_413(api: Api) -> None:
    r = await api.client.post("/v1/events", content=b"x" * (MAX_BODY + 1),
                              headers={**AUTH, "Content-Type": "application/json"})
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "body_too_large"


async def test_fifty_concurrent_posts_of_one_event_accept_it_once_and_start_one_run(api: Api) -> None:
    answers = await asyncio.gather(*(api.client.post("/v1/events", json=event("same"), headers=AUTH)
                                     for _ in range(50)))
    statuses = [a.json()["results"][0]["status"] for a in answers]
    assert {a.status_code for a in answers} == {202}
    assert statuses.count("accepted") == 1 and statuses.count("duplicate") == 49
    ingestor = api.app.state.deps.ingestor
    await ingestor.process_pending()
    await ingestor.process_pending()  # a second round finds nothing new
    assert api.starts.calls == ["pb:nps-follow-up:acme:once"]
    decisions = (await api.client.get("/v1/decisions?account=acme", headers=AUTH)).json()["decisions"]
    assert [d["outcome"] for d in decisions] == ["started"]
    runs = (await api.client.get("/v1/runs", headers=AUTH)).json()["runs"]
    assert [r["run_id"] for r in runs] == ["pb:nps-follow-up:acme:once"]


async def test_the_background_loop_processes_what_was_accepted(api: Api) -> None:
    # The lifespan starts the loop; an accepted event wakes it, so the run starts without a poll.
    async with api.app.router.lifespan_context(api.app):
        r = await api.client.post("/v1/events", json=event("loop"), headers=AUTH)
        assert r.json()["accepted"] == 1
        # A generous deadline: on a loaded machine the loop's turn can take seconds; done is done at once.
        for _ in range(3000):
            if api.starts.calls:
                break
            await asyncio.sleep(0.01)
    assert api.starts.calls == ["pb:nps-follow-up:acme:once"]


# --- runs, decisions, explain ----------------------------------------------------------------------

async def add_runs(store: Store) -> None:
    for i, (account, status) in enumerate([("acme", "running"), ("acme", "completed"), ("globex", "running")]):
        run_id = f"pb:nps-follow-up:{account}:k{i}"
        await store.add_run(run_id=run_id, temporal_run_id=f"t{i}", playbook="nps-follow-up", version="v1",
                            account_id=account, occurrence=f"k{i}", started_at=NOW.replace(minute=i))
        if status != "running":
            await store.end_run(run_id, status=status, at=NOW.replace(minute=30))


async def test_runs_list_filters_and_pages(api: Api) -> None:
    await add_runs(api.store)
    r = await api.client.get("/v1/runs", params={"account": "acme"}, headers=AUTH)
    assert [x["run_id"] for x in r.json()["runs"]] == ["pb:nps-follow-up:acme:k1", "pb:nps-follow-up:acme:k0"]
    r = await api.client.get("/v1/runs", params={"status": "running"}, headers=AUTH)
    assert [x["account_id"] for x in r.json()["runs"]] == ["globex", "acme"]
    first = (await api.client.get("/v1/runs", params={"limit": 2}, headers=AUTH)).json()
    assert len(first["runs"]) == 2 and first["next_cursor"]
    rest = (await api.client.get("/v1/runs", params={"limit": 2, "cursor": first["next_cursor"]}, headers=AUTH))
    assert [x["run_id"] for x in rest.json()["runs"]] == ["pb:nps-follow-up:acme:k0"]
    assert rest.json()["next_cursor"] is None
    bad = await api.client.get("/v1/runs", params={"cursor": "junk"}, headers=AUTH)
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "bad_cursor"
    bad = await api.client.get("/v1/runs", params={"limit": 0}, headers=AUTH)
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid_request"
    assert bad.json()["error"]["details"][0]["where"] == "query.limit"


async def test_run_show_has_timeline_and_live_step(api: Api) -> None:
    from engine.store.store import AuditRow

    await add_runs(api.store)
    run_id = "pb:nps-follow-up:acme:k0"
    await api.store.add_audit([AuditRow(run_id=run_id, step="call", status="started", at=NOW),
                               AuditRow(run_id=run_id, step="call", status="done", at=NOW.replace(minute=5))])
    api.workflows.running[run_id] = "wait_reply"
    body = (await api.client.get(f"/v1/runs/{run_id}", headers=AUTH)).json()
    assert body["run"]["status"] == "running"
    assert [(s["step"], s["status"]) for s in body["timeline"]] == [("call", "started"), ("call", "done")]
    assert body["live"] == {"current_step": "wait_reply", "outcome": "", "open_tasks": ["task-1"],
                            "steps_done": ["a"], "held": ""}
    ended = (await api.client.get("/v1/runs/pb:nps-follow-up:acme:k1", headers=AUTH)).json()
    assert ended["run"]["status"] == "completed" and ended["live"] is None
    r = await api.client.get("/v1/runs/nope", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_run"


async def test_cancel_signals_a_running_run_and_refuses_others(api: Api) -> None:
    await add_runs(api.store)
    run_id = "pb:nps-follow-up:acme:k0"
    api.workflows.running[run_id] = "call"
    r = await api.client.post(f"/v1/runs/{run_id}/cancel", json={"reason": "customer asked"}, headers=AUTH)
    assert r.status_code == 202 and r.json() == {"run_id": run_id, "status": "cancelling"}
    assert api.workflows.cancelled == [(run_id, "customer asked")]
    r = await api.client.post("/v1/runs/pb:nps-follow-up:acme:k1/cancel", headers=AUTH)
    assert r.status_code == 409 and r.json()["error"]["code"] == "run_ended"
    r = await api.client.post("/v1/runs/ghost/cancel", headers=AUTH)
    assert r.status_code == 404
    as_json = {**AUTH, "Content-Type": "application/json"}
    r = await api.client.post(f"/v1/runs/{run_id}/cancel", content=b"\xff", headers=as_json)  # not UTF-8
    assert r.status_code == 400 and r.json()["error"]["code"] == "malformed_json"
    # In the store as running, but Temporal no longer has it.
    r = await api.client.post("/v1/runs/pb:nps-follow-up:globex:k2/cancel", headers=AUTH)
    assert r.status_code == 409
    assert len(api.workflows.cancelled) == 1


async def test_explain_gives_checks_and_recent_decisions(api: Api) -> None:
    r = await api.client.get("/v1/accounts/acme/explain", headers=AUTH)
    assert r.status_code == 200
    body = r.json()
    assert [p["playbook"] for p in body["playbooks"]] == ["nps-follow-up"]
    checks = {c["name"]: c for c in body["playbooks"][0]["checks"]}
    assert checks["enabled"]["state"] == "pass"
    assert checks["trigger 1"]["state"] == "waiting"
    assert checks["active run"] == {"name": "active run", "state": "pass", "text": "no run is active",
                                    "seen": {"active_run": None}}
    assert body["decisions"] == []
    r = await api.client.get("/v1/accounts/nobody/explain", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["message"] == "the CRM has no account 'nobody'"
    r = await api.client.get("/v1/accounts/acme/explain", params={"playbook": "nope"}, headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_playbook"


# --- unsubscribe, health, OpenAPI ------------------------------------------------------------------

async def test_one_click_unsubscribe_suppresses_the_address(api: Api) -> None:
    token = api.unsubscribe.token("Pat@Example.com")
    page = await api.client.get(f"/v1/unsubscribe/{token}")
    assert page.status_code == 200 and '<form method="post">' in page.text
    assert not await api.suppressions.contains("pat@example.com")  # a GET never unsubscribes
    r = await api.client.post(f"/v1/unsubscribe/{token}", content=b"List-Unsubscribe=One-Click",
                              headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and r.json() == {"unsubscribed": True}
    assert await api.suppressions.contains("pat@example.com")
    forged = token[:-2] + ("AA" if not token.endswith("AA") else "BB")
    r = await api.client.post(f"/v1/unsubscribe/{forged}", content=b"List-Unsubscribe=One-Click")
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_token"


# --- failed events ---------------------------------------------------------------------------------

async def test_failed_events_are_listed_and_queued_again(api: Api) -> None:
    for path, method in (("/v1/events/failed", "GET"), ("/v1/events/retry", "POST")):
        r = await api.client.request(method, path, json={"ids": ["x"]})
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthorized"
    r = await api.client.get("/v1/events/failed", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"events": []}
    await api.store.add_events([EventRecord(id="bad-1", type="nps.submitted", account_id="acme", occurred_at=NOW,
                                            received_at=NOW, data={"score": 3})], received_at=NOW)
    await api.store.unprocessed(10, now=NOW)
    await api.store.record_failures([("bad-1", "RuntimeError: boom")], at=NOW, max_attempts=1)
    r = await api.client.get("/v1/events/failed?limit=10", headers=AUTH)
    assert r.json() == {"events": [{"id": "bad-1", "type": "nps.submitted", "account_id": "acme",
                                    "occurred_at": "2026-11-23T10:00:00Z", "received_at": "2026-11-23T10:00:00Z",
                                    "failed_at": "2026-11-23T10:00:00Z", "attempts": 1,
                                    "last_error": "RuntimeError: boom", "data": {"score": 3}}]}
    r = await api.client.post("/v1/events/retry", json={"ids": ["bad-1", "nope"]}, headers=AUTH)
    assert r.status_code == 200
    assert r.json() == {"requeued": 1, "results": [{"id": "bad-1", "status": "requeued"},
                                                   {"id": "nope", "status": "unknown"}]}
    assert (await api.client.get("/v1/events/failed", headers=AUTH)).json() == {"events": []}
    assert await api.store.pending_count() == 1
    r = await api.client.post("/v1/events/retry", json={"ids": ["bad-1"]}, headers=AUTH)
    assert r.json() == {"requeued": 0, "results": [{"id": "bad-1", "status": "queued"}]}


@pytest.mark.parametrize("body", [{}, {"ids": []}, {"ids": "bad-1"}, {"ids": [""]}, {"ids": [1]}, [],
                                  {"ids": ["x"] * 1001}])
async def test_a_bad_retry_body_is_422(api: Api, body: Any) -> None:
    r = await api.client.post("/v1/events/retry", json=body, headers=AUTH)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "invalid_request" and error["message"].startswith("the request is not valid: body")
    r = await api.client.get("/v1/events/failed?limit=0", headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["where"] == "query.limit"


async def test_health_reports_the_processing_child_its_restarts_and_last_exit(api: Api) -> None:
    # csops api passes its child's status (engine/cli/apichild.py ProcessingChild.status); the child's side of it is
    # tests/unit/test_apichild.py.
    said = {"mode": "child", "running": False, "restarts": 3, "last_exit": -9}
    app = create_app(store=api.store, ingestor=object(), token=TOKEN, process=False,  # type: ignore[arg-type]
                     processing=lambda: said)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        assert (await client.get("/v1/health")).json() == {"status": "ok", "processing": said}
        said.update(running=True, restarts=4)
        assert (await client.get("/v1/health")).json()["processing"]["restarts"] == 4
    app = create_app(store=api.store, ingestor=object(), token=TOKEN, process=False)  # type: ignore[arg-type]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        assert (await client.get("/v1/health")).json()["processing"] == {
            "mode": "none", "running": False, "restarts": 0, "last_exit": None}


async def test_health_and_openapi_need_no_token(api: Api) -> None:
    assert (await api.client.get("/v1/health")).json() == {
        "status": "ok", "processing": {"mode": "in-process", "running": True, "restarts": 0, "last_exit": None}}
    doc = (await api.client.get("/openapi.json")).json()
    assert {"/v1/events", "/v1/events/failed", "/v1/events/retry",
            "/v1/runs", "/v1/runs/{run_id}", "/v1/runs/{run_id}/cancel", "/v1/decisions",
            "/v1/accounts/{account_id}/explain", "/v1/unsubscribe/{token}", "/v1/health"} <= set(doc["paths"])
    assert doc["components"]["schemas"]["Event"]["required"] == ["id", "type", "account_id", "occurred_at"]
    assert doc["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    r = await api.client.get("/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_the_app_refuses_to_start_without_a_token(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 's.db'}")
    try:
        with pytest.raises(ValueError, match="set CSOPS_API_TOKEN"):
            create_app(store=store, ingestor=object(), token="")  # type: ignore[arg-type]
        assert create_app(store=store, ingestor=object(), token="", insecure=True)  # type: ignore[arg-type]
    finally:
        store.close()


# --- a real server ---------------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_through_a_real_uvicorn_server(api: Api) -> None:
    port = free_port()
    app = api.app
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            r = await client.post("/v1/events", json={"events": [event("real-1"), event("real-2", score=9)]},
                                  headers=AUTH)
            assert r.status_code == 202 and r.json()["accepted"] == 2
            r = await client.post("/v1/events", content=json.dumps(event("real-1")), headers=AUTH)
            assert r.json()["duplicates"] == 1
            # the lifespan's loop processes real-1 (score 3 fires) and real-2 (9 does not)
            await asyncio.wait_for(api.starts.started.wait(), 10)
            assert api.starts.calls == ["pb:nps-follow-up:acme:once"]
            assert (await client.get("/v1/runs")).status_code == 401
    finally:
        server.should_exit = True
        await serving



@dataclass
class EndingWorkflows(FakeWorkflows):
    """A Temporal stand-in that also brings the store's record up to date, ending the listed runs."""

    ended: dict[str, str] = field(default_factory=dict)
    """run id -> the status Temporal has for it now."""

    async def refresh(self, store: Store, run_id: str) -> Any:
        if run_id in self.ended:
            await store.end_run(run_id, status=self.ended[run_id], reason="seen in Temporal", at=NOW)
        return await store.get_run(run_id)


async def test_runs_list_shows_runs_that_ended_meanwhile_as_ended(api: Api) -> None:
    # The store's copy follows Temporal when looked at; a list must not show a finished run as running.
    await add_runs(api.store)
    from engine.runtime.runcontrol import refreshed

    page = await api.store.runs(status="running")
    running = [r.run_id for r in page.runs]
    workflows = EndingWorkflows(ended={running[0]: "exited"})
    runs = await refreshed(api.store, workflows, page.runs)
    assert [(r.run_id, r.status) for r in runs] == [(running[0], "exited"), *((rid, "running") for rid in running[1:])]
    assert (await api.store.get_run(running[0])).status == "exited"  # type: ignore[union-attr]
