"""The API under faults: one bad event among good ones, a locked store, a slow trigger, an unknown account.

The app, store, CRM and ingestor are real (SQLite under tmp_path, as in test_api.py). Faults are
real too: a SQLite trigger that refuses one event id, a second connection holding ``BEGIN
EXCLUSIVE`` on the database file, a playbook whose ``where`` takes seconds to evaluate.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.api.app import create_app
from engine.store.store import Store
from engine.triggers import ingest as ingest_module
from tests.unit.test_api import AUTH, NOW, TOKEN, Api, Starts, api, compiled, event, make_ingestor

__all__ = ["api"]

TOO_LATE = "9999-12-31T23:59:59-23:59"
"""A valid RFC 3339 time that is past year 9999 once in UTC (the store could not convert it: a 500 before)."""


def database(store: Store) -> str:
    path = store.db.engine.url.database
    assert path
    return path


# --- one bad event fails alone (issue 11, item 6) -------------------------------------------------

async def test_thirty_good_events_posted_concurrently_with_one_bad_store_thirty_and_refuse_one(api: Api) -> None:
    good = [api.client.post("/v1/events", json=event(f"good-{i}"), headers=AUTH) for i in range(30)]
    bad = api.client.post("/v1/events", json=event("bad", occurred_at=TOO_LATE), headers=AUTH)
    answers = await asyncio.gather(*good[:15], bad, *good[15:])
    refused = answers.pop(15)
    assert [a.status_code for a in answers] == [202] * 30
    assert [a.json()["results"][0]["status"] for a in answers] == ["accepted"] * 30
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["results"] == [
        {"id": "bad", "status": "rejected", "errors": [
            "occurred_at: is outside the years 1 to 9999 once converted to UTC ('9999-12-31T23:59:59-23:59'); "
            "send a real date-time"]}]
    assert api.store.counts()["events"] == 30
    assert await api.store.get_event("bad") is None


def refuse_in_the_database(store: Store, event_id: str) -> None:
    """A trigger in the database itself that refuses one event id: a fault validation cannot see."""
    with sqlite3.connect(database(store)) as con:
        con.execute(f"CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.id = '{event_id}' "
                    "BEGIN SELECT RAISE(ABORT, 'refused by a database trigger'); END")


async def test_an_event_the_database_refuses_fails_alone_in_a_concurrent_group(api: Api) -> None:
    refuse_in_the_database(api.store, "poison")
    posts = [api.client.post("/v1/events", json=event(f"ok-{i}"), headers=AUTH) for i in range(30)]
    posts.insert(7, api.client.post("/v1/events", json=event("poison"), headers=AUTH))
    answers = await asyncio.gather(*posts)
    refused = answers.pop(7)
    assert [a.json()["results"][0]["status"] for a in answers] == ["accepted"] * 30
    assert refused.status_code == 422
    assert refused.json()["error"]["details"]["results"] == [
        {"id": "poison", "status": "rejected",
         "errors": ["(event): the store refused it: refused by a database trigger"]}]
    assert api.store.counts()["events"] == 30


async def test_a_batch_with_a_refused_event_stores_the_others(api: Api) -> None:
    refuse_in_the_database(api.store, "poison")
    batch = [event("b-1"), event("poison"), event("b-2"), event("b-1")]
    r = await api.client.post("/v1/events", json={"events": batch}, headers=AUTH)
    assert r.status_code == 202
    assert [(x["id"], x["status"]) for x in r.json()["results"]] == [
        ("b-1", "accepted"), ("poison", "rejected"), ("b-2", "accepted"), ("b-1", "duplicate")]
    assert (r.json()["accepted"], r.json()["rejected"], r.json()["duplicates"]) == (2, 1, 1)
    assert {e.id for e in await api.store.events_for("acme")} == {"b-1", "b-2"}


# --- a locked store: 503 with Retry-After, soon (item 7) ------------------------------------------

async def test_a_locked_store_answers_503_with_retry_after_within_the_write_wait(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ingest_module, "API_WRITE_WAIT", 0.5)
    lock = sqlite3.connect(database(api.store), isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        began = time.monotonic()
        r = await api.client.post("/v1/events", json=event("while-locked"), headers=AUTH)
        took = time.monotonic() - began
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert r.status_code == 503 and r.headers["retry-after"] == "5"
    assert r.json() == {"error": {"code": "store_unavailable", "details": {"retry_after": 5}, "message":
                                  "the store is busy or unreachable (database unavailable: OperationalError); send "
                                  "the same request again in 5 s (events already stored answer duplicate)"}}
    assert 0.4 < took < 3
    r = await api.client.post("/v1/events", json=event("while-locked"), headers=AUTH)
    assert r.status_code == 202 and r.json()["accepted"] == 1


async def test_an_unexpected_error_in_any_route_is_a_json_500(tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise KeyError("a bug")

    store = Store(f"sqlite:///{tmp_path / 'csops.db'}")
    app = create_app(store=store, ingestor=make_ingestor(store, None, {}, Starts()),  # type: ignore[arg-type]
                     token=TOKEN, crm=object(), playbooks=broken, now=lambda: NOW, process=False)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
            r = await client.get("/v1/accounts/acme/explain", headers=AUTH)
    finally:
        store.close()
    assert r.status_code == 500 and r.headers["content-type"] == "application/json"
    error = r.json()["error"]
    ref = error["details"]["ref"]
    assert error == {"code": "internal_error", "details": {"ref": ref}, "message":
                     f"something went wrong on the server's side (ref {ref} in its log); it is not your "
                     "request's fault: try again later or report it"}


# --- a slow trigger condition does not freeze the API (item 8) ------------------------------------

SLOWEST = " and ".join(["(range(9999)|list|sort(reverse=true)|first) > 0"] * 12)
"""About as much work as one evaluation may do (engine/language/sandbox.py MAX_WORK)."""
SLOW = f"""playbook: slow-check
title: Slow check
triggers:
  - event: {{type: nps.submitted, where: "{SLOWEST}"}}
steps:
  - id: call
    task: {{title: Call them}}
"""


async def test_a_slow_where_is_cut_off_and_health_answers_meanwhile(api: Api,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    # The sandbox bounds an evaluation to about a second at worst (engine/language/sandbox.py); the child's
    # time bound is cut shorter here so the slowest allowed condition runs over it.
    monkeypatch.setattr("engine.triggers.matchproc.MATCH_TIMEOUT", 0.15)
    slow = compiled(SLOW)
    api.app.state.deps.ingestor.playbooks = lambda: {"slow-check": slow}
    async with api.app.router.lifespan_context(api.app):
        r = await api.client.post("/v1/events", json=event("slow-1"), headers=AUTH)
        assert r.json()["accepted"] == 1
        # Time every round of (health request, look for the decision, short sleep): a blocked event
        # loop shows as one long round, whichever await it blocked in.
        rounds: list[float] = []
        decided: list[Any] = []
        for _ in range(300):
            began = time.monotonic()
            assert (await api.client.get("/v1/health")).status_code == 200
            decided = await api.store.decisions(account_id="acme")
            await asyncio.sleep(0.05)
            rounds.append(time.monotonic() - began)
            if decided:
                break
    assert max(rounds) < 0.5, max(rounds)
    assert len(rounds) >= 2  # health was asked while the check ran
    [decision] = decided
    assert (decision.outcome, decision.reason) == ("suppressed", "expression_error")
    assert decision.message == ("suppressed: checking the triggers of playbook 'slow-check' took over 0.15 s and was "
                                "stopped; simplify its conditions (where, audience.when)")
    assert api.starts.calls == []


# --- an unknown account is said (item 10) ---------------------------------------------------------

async def test_an_event_for_an_unknown_account_is_stored_and_answered_unknown_account(api: Api) -> None:
    r = await api.client.post("/v1/events", json={"events": [event("k-1"), event("u-1", account="nobody")]},
                              headers=AUTH)
    assert r.status_code == 202
    assert r.json() == {"accepted": 1, "unknown_accounts": 1, "duplicates": 0, "rejected": 0, "results": [
        {"id": "k-1", "status": "accepted", "errors": []},
        {"id": "u-1", "status": "unknown_account", "errors": [
            "account_id: the CRM has no account 'nobody'; the event is stored and its facts kept, but it starts "
            "nothing until the account exists (check the id, or import the account first)"]}]}
    stored = await api.store.get_event("u-1")
    assert stored is not None and stored.account_id == "nobody"
    r = await api.client.post("/v1/events", json=event("u-1", account="nobody"), headers=AUTH)
    assert r.status_code == 202 and r.json()["results"][0]["status"] == "duplicate"


async def test_the_crm_is_asked_once_per_account_while_its_answer_is_remembered(
        api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    ingestor = api.app.state.deps.ingestor
    asked: list[str] = []
    real = ingestor.crm.get_account

    async def counting(account_id: str) -> Any:
        asked.append(account_id)
        return await real(account_id)

    monkeypatch.setattr(ingestor.crm, "get_account", counting)
    for i in range(3):
        r = await api.client.post("/v1/events", json={"events": [event(f"f-{i}", account="nobody"),
                                                                 event(f"g-{i}")]}, headers=AUTH)
        assert [x["status"] for x in r.json()["results"]] == ["unknown_account", "accepted"]
    assert sorted(asked) == ["acme", "nobody"]
    # After 30 s an unknown account is asked about again (it may have been imported meanwhile).
    clock = time.monotonic() + 31
    monkeypatch.setattr(ingest_module, "monotonic", lambda: clock)
    r = await api.client.post("/v1/events", json=event("f-9", account="nobody"), headers=AUTH)
    assert r.json()["results"][0]["status"] == "unknown_account"
    assert sorted(asked) == ["acme", "nobody", "nobody"]
