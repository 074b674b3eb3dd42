"""Events that suppress an address (a hard bounce, an unsubscribe, a complaint) through the real ingestor,
store and suppression list; the mailer then refuses the address. And the list over the API and the CLI,
each change logged with who, when and why."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Account, OutgoingEmail
from connectors.mailpolicy import SUPPRESSED, PolicyMailer
from connectors.outbox import EmailOutbox
from connectors.sqlcrm import SQLCRM
from connectors.suppression import SuppressionList
from engine.api.app import create_app
from engine.language.context import Calendar
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from engine.triggers.suppress import event_suppressor

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
TOKEN = "t0ken-for-tests-only-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


async def no_signal(run_id: str, event: Any) -> bool:
    return True


async def no_start(playbook: Any, decision: Any) -> tuple[str, str]:
    raise AssertionError("nothing starts")


@dataclass
class Parts:
    store: Store
    suppressions: SuppressionList
    ingestor: Ingestor
    client: httpx.AsyncClient
    folder: Path


@pytest.fixture
async def parts(tmp_path: Path) -> AsyncIterator[Parts]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm, lst = Store(url), SQLCRM(url), SuppressionList(url)
    crm.add_account(Account(id="acme", name="Acme"))
    ingestor = Ingestor(store=store, crm=crm, playbooks=dict, start=no_start, signal_run=no_signal,
                        calendar=Calendar(), now=lambda: NOW, suppress=event_suppressor(lst))
    app = create_app(store=store, ingestor=ingestor, token=TOKEN, crm=crm, now=lambda: NOW, process=False)
    app.state.suppression_list = lst
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Parts(store, lst, ingestor, client, tmp_path / "mail")
    for closable in (store, crm, lst):
        closable.close()


def event(ident: str, kind: str, data: dict[str, Any]) -> dict[str, Any]:
    return {"id": ident, "type": kind, "account_id": "acme", "occurred_at": "2026-11-23T09:00:00Z", "data": data}


@pytest.mark.parametrize(("kind", "data", "reason"), [
    ("email.bounced", {"email": "Ann@Acme.test", "bounce_type": "hard"}, "bounced"),
    ("email.bounced", {"email": "ann@acme.test"}, "bounced"),
    ("contact.unsubscribed", {"email": "ann@acme.test"}, "unsubscribed"),
    ("email.complained", {"email": "ann@acme.test"}, "complaint"),
])
async def test_the_event_suppresses_the_address_and_the_mailer_refuses_it(parts: Parts, kind: str,
                                                                          data: dict[str, Any], reason: str) -> None:
    [result] = await parts.ingestor.ingest([event("e-1", kind, data)], process=True)
    assert result.status == "accepted"
    assert result.notes == ("suppressed ann@acme.test (" + reason + ")",)
    [entry] = await parts.suppressions.list()
    assert (entry.email, entry.reason, entry.by) == ("ann@acme.test", reason, "event:e-1")
    mailer = PolicyMailer(EmailOutbox(parts.folder), suppressions=parts.suppressions)
    sent = await mailer.send(OutgoingEmail(to=("ann@acme.test",), sender="cara@example.com", sender_name="Cara",
                                           subject="Hi", body="Hello.\n", category="operational"), "k-1")
    assert sent == SUPPRESSED
    assert not parts.folder.exists() or not list(parts.folder.iterdir())


async def test_a_soft_bounce_and_an_event_without_an_address_suppress_nothing(parts: Parts) -> None:
    results = await parts.ingestor.ingest([
        event("s-1", "email.bounced", {"email": "ann@acme.test", "bounce_type": "soft"}),
        event("s-2", "contact.unsubscribed", {"contact_id": "c-9"})], process=True)
    assert results[0].notes == ()
    assert results[1].notes == ("contact.unsubscribed without data.email: no address was suppressed",)
    assert await parts.suppressions.list() == []


async def test_a_second_unsubscribe_keeps_the_first_reason(parts: Parts) -> None:
    await parts.ingestor.ingest([event("a-1", "email.bounced", {"email": "ann@acme.test"})], process=True)
    [result] = await parts.ingestor.ingest([event("a-2", "contact.unsubscribed", {"email": "ann@acme.test"})],
                                           process=True)
    assert result.notes == ("ann@acme.test was already suppressed",)
    [entry] = await parts.suppressions.list()
    assert (entry.reason, entry.by) == ("bounced", "event:a-1")


# --- the API -----------------------------------------------------------------------------------------------

async def test_the_api_needs_the_token(parts: Parts) -> None:
    for method, path in (("GET", "/v1/suppressions"), ("POST", "/v1/suppressions"),
                         ("DELETE", "/v1/suppressions/a@b.c?reason=x"), ("GET", "/v1/suppressions/log")):
        r = await parts.client.request(method, path, json={"email": "a@b.c", "reason": "x"})
        assert r.status_code == 401, path
    assert await parts.suppressions.list() == []


async def test_add_list_remove_over_the_api_is_audited(parts: Parts) -> None:
    r = await parts.client.post("/v1/suppressions", json={"email": "Bob@X.com", "reason": "asked by phone",
                                                          "by": "cara"}, headers=AUTH)
    assert r.status_code == 201 and r.json() == {"email": "bob@x.com", "added": True}
    r = await parts.client.post("/v1/suppressions", json={"email": "bob@x.com", "reason": "again"}, headers=AUTH)
    assert r.status_code == 200 and r.json()["added"] is False
    r = await parts.client.get("/v1/suppressions", headers=AUTH)
    [entry] = r.json()["suppressions"]
    assert (entry["email"], entry["reason"], entry["by"]) == ("bob@x.com", "asked by phone", "cara")
    r = await parts.client.delete("/v1/suppressions/bob@x.com", headers=AUTH)
    assert r.status_code == 422  # a removal must say why
    r = await parts.client.delete("/v1/suppressions/bob@x.com?reason=wrong+address&by=dan", headers=AUTH)
    assert r.status_code == 200 and r.json() == {"email": "bob@x.com", "removed": True}
    r = await parts.client.delete("/v1/suppressions/bob@x.com?reason=again", headers=AUTH)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_suppressed"
    r = await parts.client.get("/v1/suppressions/log?email=BOB@x.com", headers=AUTH)
    assert [(x["action"], x["reason"], x["by"]) for x in r.json()["log"]] == [
        ("removed", "wrong address", "dan"), ("already", "again", "api"), ("added", "asked by phone", "cara")]
    r = await parts.client.post("/v1/suppressions", json={"email": "not-an-address", "reason": "x"}, headers=AUTH)
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_email"


# --- the CLI -----------------------------------------------------------------------------------------------

def test_the_cli_adds_lists_and_removes_with_who_and_why(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    from engine.cli.main import main

    monkeypatch.chdir(tmp_path)
    for name in [k for k in os.environ if k.startswith("CSOPS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("CSOPS_DATABASE_URL", f"sqlite:///{tmp_path / 'c.db'}")
    assert main(["suppression", "add", "Ann@Acme.test", "--reason", "legal hold", "--by", "cara"]) == 0
    assert main(["suppression", "add", "ann@acme.test", "--reason", "again"]) == 1
    assert main(["suppression", "add", "nope", "--reason", "x"]) == 2
    capsys.readouterr()
    assert main(["suppression", "list"]) == 0
    out = capsys.readouterr()
    assert out.out.split("\t")[:2] == ["ann@acme.test", "legal hold"]
    assert out.out.rstrip().endswith("\tcara")
    assert main(["suppression", "remove", "ann@acme.test"]) == 2  # --reason is required
    assert main(["suppression", "remove", "ann@acme.test", "--reason", "cleared", "--by", "dan"]) == 0
    assert main(["suppression", "remove", "ann@acme.test", "--reason", "cleared"]) == 1
    capsys.readouterr()
    assert main(["suppression", "log"]) == 0
    lines = [line.split("\t")[1:] for line in capsys.readouterr().out.splitlines()]
    assert lines == [["removed", "ann@acme.test", "cleared", "dan"], ["already", "ann@acme.test", "again", lines[1][3]],
                     ["added", "ann@acme.test", "legal hold", "cara"]]


async def test_a_delighted_unsubscribe_through_its_source_suppresses_the_address(parts: Parts) -> None:
    from engine.config.config import Secret
    from engine.sources import SourceConfig

    app = parts.client._transport.app  # type: ignore[attr-defined]
    app.state.sources = {"delighted": SourceConfig(name="delighted", kind="delighted",
                                                   secret=Secret("tok-123", "DELIGHTED"))}
    # https://app.delighted.com/docs/api/webhooks: unsubscribe.created
    body = {"event_type": "unsubscribe.created", "event_id": "u-77",
            "event_data": {"person": {"email": "Zed@Acme.test"}, "person_properties": {"account_id": "acme"}}}
    r = await parts.client.post("/v1/sources/delighted?token=tok-123", json=body)
    assert r.status_code == 202 and r.json()["status"] == "accepted"
    [done] = await parts.ingestor.process_pending()
    assert done.notes == ("suppressed zed@acme.test (unsubscribed)",)
    [entry] = await parts.suppressions.list()
    assert (entry.email, entry.reason, entry.by) == ("zed@acme.test", "unsubscribed", "event:delighted:u-77")
