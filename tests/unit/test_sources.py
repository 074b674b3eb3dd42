"""POST /v1/sources/{name}: each vendor's webhook, signed exactly as the vendor documents, through the real API,
store, CRM and ingestor (SQLite under tmp_path).

Per source: a valid delivery stores the mapped event(s); the same delivery again is one event; a
wrong signature is 401 with nothing stored; a stale timestamp (where the vendor signs one) is 401;
a payload naming an account the CRM lacks is stored and listed in ``unknown_accounts``; a payload
with no account is 202 ``ignored``. An unknown source name is 404.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.api.app import create_app
from engine.config.config import Secret
from engine.language.context import Calendar
from engine.sources import GenericMap, GenericSignature, SourceConfig
from engine.store.store import Store

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
TS = int(NOW.timestamp())
SECRETS = {"stripe": "whsec_test_secret", "zendesk": "dGhpc19zZWNyZXRfaXNfZm9yX3Rlc3Rpbmdfb25seQ==",
           "intercom": "intercom-client-secret", "freshdesk": "freshdesk-shared", "typeform": "typeform-secret",
           "delighted": "delighted-token", "segment": "segment-shared", "billing": "generic-secret"}


def sources() -> dict[str, SourceConfig]:
    out = {name: SourceConfig(name=name, kind=name, secret=Secret(value, name.upper()))
           for name, value in SECRETS.items() if name != "billing"}
    out["billing"] = SourceConfig(
        name="billing", kind="generic", secret=Secret(SECRETS["billing"], "BILLING"),
        signature=GenericSignature(header="X-Billing-Signature", prefix="sha256=", timestamp_header="X-Billing-Time"),
        map=GenericMap(id="event.uuid", type="billing.invoice_overdue", account_id="customer.external_id",
                       occurred_at="event.at", data={"invoice": "invoice.number", "amount": "invoice.total"}))
    return out


async def no_signal(run_id: str, event: Any) -> bool:
    return True


async def no_start(playbook: Any, decision: Any) -> tuple[str, str]:
    raise AssertionError("no playbook is loaded: nothing starts")


@dataclass
class Api:
    client: httpx.AsyncClient
    store: Store


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[Api]:
    from engine.triggers.ingest import Ingestor

    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme"))
    ingestor = Ingestor(store=store, crm=crm, playbooks=dict, start=no_start, signal_run=no_signal,
                        calendar=Calendar(), now=lambda: NOW)
    app = create_app(store=store, ingestor=ingestor, token="t0ken-for-tests-only-0123456789", crm=crm,
                     now=lambda: NOW, process=False)
    app.state.sources = sources()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        yield Api(client, store)
    store.close()
    crm.close()


def raw(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode("utf-8")


def mac(secret: str, message: bytes, algo: Any = hashlib.sha256) -> bytes:
    return hmac.new(secret.encode("utf-8"), message, algo).digest()


# --- each vendor's documented signing, from the sender's side ---------------------------------------

def sign_stripe(body: bytes, *, t: int = TS, secret: str = SECRETS["stripe"]) -> dict[str, str]:
    # https://docs.stripe.com/webhooks#verify-manually: signed_payload = "{t}.{body}", HMAC-SHA256 hex, v1 scheme.
    return {"Stripe-Signature": f"t={t},v1={mac(secret, f'{t}.'.encode() + body).hex()},v0=ignored"}


def sign_zendesk(body: bytes, *, stamp: str = "2026-11-23T09:59:30Z",
                 secret: str = SECRETS["zendesk"]) -> dict[str, str]:
    # https://developer.zendesk.com/documentation/webhooks/verifying/: base64(HMACSHA256(TIMESTAMP + BODY)).
    return {"X-Zendesk-Webhook-Signature": base64.b64encode(mac(secret, stamp.encode() + body)).decode(),
            "X-Zendesk-Webhook-Signature-Timestamp": stamp}


def sign_intercom(body: bytes, secret: str = SECRETS["intercom"]) -> dict[str, str]:
    # https://developers.intercom.com/docs/references/webhooks/webhook-models (signed notifications):
    # X-Hub-Signature: sha1=<hex HMAC-SHA1 of the body with the app's client_secret>.
    return {"X-Hub-Signature": "sha1=" + mac(secret, body, hashlib.sha1).hex()}


def sign_typeform(body: bytes, secret: str = SECRETS["typeform"]) -> dict[str, str]:
    # https://www.typeform.com/developers/webhooks/secure-your-webhooks/: "sha256=" + base64(HMAC-SHA256(body)).
    return {"Typeform-Signature": "sha256=" + base64.b64encode(mac(secret, body)).decode()}


def sign_segment(body: bytes, secret: str = SECRETS["segment"]) -> dict[str, str]:
    # Segment Webhooks destination: X-Signature = hex HMAC-SHA1 of the body with the shared secret.
    return {"X-Signature": mac(secret, body, hashlib.sha1).hex()}


def sign_billing(body: bytes, *, t: int = TS) -> dict[str, str]:
    return {"X-Billing-Signature": "sha256=" + mac(SECRETS["billing"], f"{t}.".encode() + body).hex(),
            "X-Billing-Time": str(t)}


# --- payloads in each vendor's documented shape --------------------------------------------------------

def stripe_subscription(account: str = "acme", ident: str = "evt_1SubUpd") -> dict[str, Any]:
    # https://docs.stripe.com/api/events/object and https://docs.stripe.com/api/subscriptions/object
    return {"id": ident, "object": "event", "type": "customer.subscription.updated", "created": TS - 60,
            "api_version": "2024-06-20", "livemode": False,
            "data": {"object": {"id": "sub_1", "object": "subscription", "customer": "cus_9", "status": "active",
                                "current_period_end": 1798761600,  # 2027-01-01T00:00:00Z
                                "metadata": {"account_id": account},
                                "items": {"object": "list", "data": [
                                    {"id": "si_1", "quantity": 3, "price": {
                                        "id": "price_1", "unit_amount": 5000, "currency": "usd",
                                        "recurring": {"interval": "month", "interval_count": 1}}}]}}}}


def stripe_invoice(kind: str = "invoice.payment_failed") -> dict[str, Any]:
    # https://docs.stripe.com/api/invoices/object
    return {"id": "evt_1InvFail", "object": "event", "type": kind, "created": TS - 30,
            "data": {"object": {"id": "in_1", "object": "invoice", "customer": "cus_9", "amount_due": 15000,
                                "currency": "usd", "attempt_count": 2, "due_date": 1795000000,
                                "metadata": {"account_id": "acme"}}}}


def zendesk_priority(account: Any = "acme", current: str = "URGENT") -> dict[str, Any]:
    # https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/ (Priority changed)
    return {"account_id": 22129848, "detail": {"id": "5158", "subject": "Export broken", "status": "OPEN",
                                               "priority": current, "organization_id": account, "tags": []},
            "event": {"current": current, "previous": "NORMAL"}, "id": "cbe4028c-7239-495d-b020-f22348516046",
            "subject": "zen:ticket:5158", "time": "2026-11-23T09:59:00Z",
            "type": "zen:event-type:ticket.priority_changed", "zendesk_event_version": "2022-11-06"}


def intercom_closed() -> dict[str, Any]:
    # https://developers.intercom.com/docs/references/webhooks/webhook-models (notification object)
    return {"type": "notification_event", "app_id": "abc", "id": "notif_ccd8a4d0", "topic": "conversation.admin.closed",
            "created_at": TS - 5, "data": {"type": "notification_event_data", "item": {
                "type": "conversation", "id": "147", "custom_attributes": {"account_id": "acme"}}}}


def freshdesk_ticket() -> dict[str, Any]:
    # The rule's JSON body as docs/sources.md gives it (Freshdesk placeholders filled in).
    return {"freshdesk_webhook": {"ticket_id": 88, "ticket_subject": "Login fails", "ticket_status": "Open",
                                  "ticket_priority": "Urgent", "triggered_event": "{priority:{from:Low,to:Urgent}}",
                                  "csops_account_id": "acme"}}


def typeform_nps(score: int = 4) -> dict[str, Any]:
    # https://www.typeform.com/developers/webhooks/example-payload/
    return {"event_id": "01HTYPEFORM", "event_type": "form_response", "form_response": {
        "form_id": "lT4Z3j", "token": "a3a12ec67a1365927098a606107fac15", "submitted_at": "2026-11-23T09:58:00Z",
        "hidden": {"account_id": "acme"},
        "definition": {"id": "lT4Z3j", "fields": [{"id": "nps1", "type": "nps", "title": "How likely..."}]},
        "answers": [{"type": "text", "text": "ok", "field": {"id": "t1", "type": "short_text"}},
                    {"type": "number", "number": score, "field": {"id": "nps1", "type": "nps"}}]}}


def delighted_response(score: int = 10) -> dict[str, Any]:
    # https://app.delighted.com/docs/api/webhooks (example request body)
    return {"event_type": "survey_response.updated",
            "event_id": "b8d057c59327541d7ec2104c0a9a255ad1997fb00831b9c6bbf09561e6d5cbd0",
            "event_data": {"id": "5435", "person": {"id": "5975", "email": "charlie_gravis@example.com"},
                           "survey_type": "nps", "score": score, "comment": "Your service is fast and flawless!",
                           "created_at": TS - 600, "updated_at": TS - 10,
                           "person_properties": {"account_id": "acme"}}}


def segment_track() -> dict[str, Any]:
    # https://segment.com/docs/connections/spec/track/
    return {"type": "track", "event": "Feature Used", "messageId": "ajs-f8ca1e4de5024d9430b3928bd8ac6b96",
            "timestamp": "2026-11-23T09:57:00Z", "userId": "u-1",
            "properties": {"feature": "sso", "product": "admin"}, "context": {"groupId": "acme"}}


def billing_event() -> dict[str, Any]:
    return {"event": {"uuid": "b-77", "at": "2026-11-23T09:00:00Z"}, "customer": {"external_id": "acme"},
            "invoice": {"number": "INV-9", "total": 1200}}


CASES: dict[str, tuple[Any, Any, str, str]] = {
    # name: (payload, signer, stored event id, stored type)
    "stripe": (stripe_subscription(), sign_stripe, "stripe:evt_1SubUpd", "account.updated"),
    "zendesk": (zendesk_priority(), sign_zendesk, "zendesk:cbe4028c-7239-495d-b020-f22348516046",
                "support.ticket_escalated"),
    "intercom": (intercom_closed(), sign_intercom, "intercom:notif_ccd8a4d0", "support.ticket_solved"),
    "typeform": (typeform_nps(), sign_typeform, "typeform:01HTYPEFORM", "survey.responded"),
    "segment": (segment_track(), sign_segment, "segment:ajs-f8ca1e4de5024d9430b3928bd8ac6b96", "usage.feature_used"),
    "billing": (billing_event(), sign_billing, "billing:b-77", "billing.invoice_overdue"),
}


async def post(api: Api, name: str, payload: Any, headers: dict[str, str], query: str = "") -> httpx.Response:
    body = payload if isinstance(payload, bytes) else raw(payload)
    return await api.client.post(f"/v1/sources/{name}{query}", content=body,
                                 headers={"Content-Type": "application/json", **headers})


@pytest.mark.parametrize("name", list(CASES))
async def test_a_signed_delivery_is_stored_once_and_a_redelivery_is_a_duplicate(api: Api, name: str) -> None:
    payload, signer, ident, kind = CASES[name]
    body = raw(payload)
    r = await post(api, name, body, signer(body))
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "accepted"
    assert r.json()["events"] == [{"id": ident, "type": kind, "account_id": "acme", "status": "accepted",
                                   "errors": []}]
    assert r.json()["unknown_accounts"] == []
    stored = await api.store.get_event(ident)
    assert stored is not None and stored.type == kind and stored.account_id == "acme"
    again = await post(api, name, body, signer(body))
    assert again.status_code == 202 and again.json()["status"] == "duplicate"
    assert [e["status"] for e in again.json()["events"]] == ["duplicate"]


@pytest.mark.parametrize("name", list(CASES))
async def test_a_wrong_signature_is_401_and_stores_nothing(api: Api, name: str) -> None:
    payload, signer, ident, _ = CASES[name]
    body = raw(payload)
    headers = signer(body)
    tampered = body.replace(b"acme", b"acmf")
    r = await post(api, name, tampered, headers)
    assert r.status_code == 401
    assert r.json()["error"]["code"] == "bad_signature"
    assert SECRETS[name] not in r.text
    assert await api.store.get_event(ident) is None
    r = await post(api, name, body, {})
    assert r.status_code == 401 and r.json()["error"]["code"] == "not_verified"
    assert await api.store.get_event(ident) is None


async def test_stripe_maps_the_renewal_date_and_arr(api: Api) -> None:
    body = raw(stripe_subscription())
    await post(api, "stripe", body, sign_stripe(body))
    stored = await api.store.get_event("stripe:evt_1SubUpd")
    assert stored is not None
    # 3 seats x $50.00 a month = $1,800.00 a year; the period ends 2027-01-01 (UTC).
    assert stored.data == {"fields": {"renewal_date": "2027-01-01", "arr": 1800.0}}
    assert stored.occurred_at == datetime.fromtimestamp(TS - 60, UTC)


async def test_stripe_invoice_payment_failed_and_overdue_become_billing_events(api: Api) -> None:
    for kind, ours in (("invoice.payment_failed", "billing.payment_failed"),
                       ("invoice.overdue", "billing.invoice_overdue")):
        payload = {**stripe_invoice(kind), "id": f"evt_{ours}"}
        body = raw(payload)
        r = await post(api, "stripe", body, sign_stripe(body))
        assert r.status_code == 202 and r.json()["events"][0]["type"] == ours
        stored = await api.store.get_event(f"stripe:evt_{ours}")
        assert stored is not None and stored.data == {
            "stripe_id": "in_1", "customer": "cus_9", "amount_due": 15000, "currency": "usd", "attempt_count": 2,
            "due_date": "2026-11-18"}


@pytest.mark.parametrize("offset", [301, -301, 86400])
async def test_stripe_refuses_a_timestamp_over_five_minutes_away(api: Api, offset: int) -> None:
    body = raw(stripe_subscription())
    r = await post(api, "stripe", body, sign_stripe(body, t=TS - offset))
    assert r.status_code == 401 and r.json()["error"]["code"] == "stale_timestamp"
    assert await api.store.get_event("stripe:evt_1SubUpd") is None
    ok = await post(api, "stripe", body, sign_stripe(body, t=TS - 299))
    assert ok.status_code == 202


async def test_stripe_accepts_either_signature_while_a_secret_rolls(api: Api) -> None:
    body = raw(stripe_subscription())
    old = sign_stripe(body, secret="whsec_old")["Stripe-Signature"]
    new = sign_stripe(body)["Stripe-Signature"].split(",")[1]
    r = await post(api, "stripe", body, {"Stripe-Signature": f"{old},{new}"})
    assert r.status_code == 202


async def test_zendesk_refuses_a_stale_timestamp(api: Api) -> None:
    body = raw(zendesk_priority())
    r = await post(api, "zendesk", body, sign_zendesk(body, stamp="2026-11-23T09:50:00Z"))
    assert r.status_code == 401 and r.json()["error"]["code"] == "stale_timestamp"


async def test_generic_refuses_a_stale_timestamp(api: Api) -> None:
    body = raw(billing_event())
    r = await post(api, "billing", body, sign_billing(body, t=TS - 3600))
    assert r.status_code == 401 and r.json()["error"]["code"] == "stale_timestamp"
    assert await api.store.get_event("billing:b-77") is None


async def test_an_account_the_crm_lacks_is_stored_and_listed(api: Api) -> None:
    body = raw(stripe_subscription(account="globex", ident="evt_globex"))
    r = await post(api, "stripe", body, sign_stripe(body))
    assert r.status_code == 202
    assert r.json()["status"] == "accepted" and r.json()["unknown_accounts"] == ["globex"]
    assert await api.store.get_event("stripe:evt_globex") is not None


async def test_a_payload_naming_no_account_is_ignored_and_stores_nothing(api: Api) -> None:
    payload = zendesk_priority(account=None)
    body = raw(payload)
    r = await post(api, "zendesk", body, sign_zendesk(body))
    assert r.status_code == 202
    assert r.json() == {"source": "zendesk", "status": "ignored", "events": [], "unknown_accounts": [],
                        "reason": "no account: detail.organization_id is empty in this ticket"}
    assert await api.store.get_event("zendesk:cbe4028c-7239-495d-b020-f22348516046") is None


async def test_an_unmapped_vendor_type_is_ignored(api: Api) -> None:
    payload = {**stripe_subscription(), "type": "charge.succeeded"}
    body = raw(payload)
    r = await post(api, "stripe", body, sign_stripe(body))
    assert r.status_code == 202 and r.json()["status"] == "ignored"
    assert r.json()["reason"] == "Stripe event type charge.succeeded is not mapped to a csops event"


async def test_an_unknown_source_is_404(api: Api) -> None:
    r = await post(api, "paddle", {"id": 1}, {})
    assert r.status_code == 404 and r.json()["error"]["code"] == "unknown_source"
    assert "delighted" in r.json()["error"]["message"]


@pytest.mark.parametrize(("score", "category"), [(10, "promoter"), (9, "promoter"), (8, "passive"), (7, "passive"),
                                                 (6, "detractor"), (0, "detractor")])
async def test_delighted_nps_gets_its_category(api: Api, score: int, category: str) -> None:
    payload = delighted_response(score)
    payload["event_id"] = f"d-{score}"
    r = await post(api, "delighted", payload, {}, query="?token=delighted-token")
    assert r.status_code == 202, r.text
    stored = await api.store.get_event(f"delighted:d-{score}")
    assert stored is not None and stored.type == "survey.responded"
    assert stored.data["score"] == score and stored.data["category"] == category
    assert stored.data["email"] == "charlie_gravis@example.com"


async def test_delighted_refuses_a_wrong_token_and_maps_an_unsubscribe(api: Api) -> None:
    r = await post(api, "delighted", delighted_response(), {}, query="?token=guess")
    assert r.status_code == 401 and r.json()["error"]["code"] == "bad_signature"
    unsub = {"event_type": "unsubscribe.created", "event_id": "u-1",
             "event_data": {"person": {"email": "Bob@Acme.com"}, "person_properties": {"account_id": "acme"}}}
    r = await post(api, "delighted", unsub, {}, query="?token=delighted-token")
    assert r.status_code == 202
    stored = await api.store.get_event("delighted:u-1")
    assert stored is not None and stored.type == "contact.unsubscribed" and stored.data["email"] == "Bob@Acme.com"


async def test_typeform_nps_score_and_category(api: Api) -> None:
    body = raw(typeform_nps(4))
    await post(api, "typeform", body, sign_typeform(body))
    stored = await api.store.get_event("typeform:01HTYPEFORM")
    assert stored is not None
    assert stored.data == {"score": 4, "category": "detractor", "survey": "nps", "source": "typeform",
                           "form_id": "lT4Z3j"}


async def test_freshdesk_shared_secret_and_a_redelivery(api: Api) -> None:
    body = raw(freshdesk_ticket())
    r = await post(api, "freshdesk", body, {"X-Csops-Secret": "nope"})
    assert r.status_code == 401
    r = await post(api, "freshdesk", body, {"X-Csops-Secret": SECRETS["freshdesk"]})
    assert r.status_code == 202 and r.json()["events"][0]["type"] == "support.ticket_escalated"
    r = await post(api, "freshdesk", body, {"X-Csops-Secret": SECRETS["freshdesk"]})
    assert r.json()["status"] == "duplicate"


async def test_segment_feature_and_product(api: Api) -> None:
    body = raw(segment_track())
    await post(api, "segment", body, sign_segment(body))
    stored = await api.store.get_event("segment:ajs-f8ca1e4de5024d9430b3928bd8ac6b96")
    assert stored is not None and stored.data == {"feature": "sso", "product": "admin", "source": "segment"}


async def test_generic_maps_paths_to_fields(api: Api) -> None:
    body = raw(billing_event())
    await post(api, "billing", body, sign_billing(body))
    stored = await api.store.get_event("billing:b-77")
    assert stored is not None and stored.data == {"invoice": "INV-9", "amount": 1200}
    assert stored.occurred_at == datetime(2026, 11, 23, 9, tzinfo=UTC)


async def test_a_stripe_renewal_date_and_a_zendesk_escalation_reach_the_account_and_start_a_play(
        tmp_path: Path) -> None:
    """The quickstart's story: the CRM gets Stripe's renewal date and ARR; Zendesk's escalation starts a play."""
    from engine.language.validate import check_text
    from engine.triggers.ingest import Ingestor

    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme"))
    checked = check_text("playbook: escalations\ntitle: Escalations\ntriggers:\n"
                         "  - event: {type: support.ticket_escalated}\nsteps:\n"
                         "  - id: call\n    task: {title: Call about the escalated ticket}\n")
    playbook = checked.playbook
    assert playbook is not None
    started: list[str] = []

    async def start(playbook: Any, decision: Any) -> tuple[str, str]:
        started.append(decision.run_id)
        return "started", "temporal-1"

    ingestor = Ingestor(store=store, crm=crm, playbooks=lambda: {"escalations": playbook}, start=start,
                        signal_run=no_signal, calendar=Calendar(), now=lambda: NOW)
    app = create_app(store=store, ingestor=ingestor, token="t0ken-for-tests-only-0123456789", crm=crm,
                     now=lambda: NOW, process=False)
    app.state.sources = sources()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as client:
        api = Api(client, store)
        stripe, zendesk = raw(stripe_subscription()), raw(zendesk_priority())
        assert (await post(api, "stripe", stripe, sign_stripe(stripe))).status_code == 202
        assert (await post(api, "zendesk", zendesk, sign_zendesk(zendesk))).status_code == 202
        done = await ingestor.process_pending()
    assert [p.error for p in done] == ["", ""]
    account = await crm.get_account("acme")
    assert account is not None and account.renewal_date == date(2027, 1, 1) and account.arr == 1800.0
    assert started == ["pb:escalations:acme:once"]
    store.close()
    crm.close()


def _with(base: dict[str, Any], **changes: Any) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(base))
    for path, value in changes.items():
        node = out
        *parents, last = path.split("__")
        for p in parents:
            node = node[p]
        node[last] = value
    return out


MAPPINGS: list[tuple[str, Any, Any, str | None]] = [
    # (source, payload, signer, csops type or None for ignored)
    ("stripe", _with(stripe_subscription(ident="evt_del"), type="customer.subscription.deleted"), sign_stripe,
     "billing.subscription_cancelled"),
    ("zendesk", _with(zendesk_priority(), type="zen:event-type:ticket.status_changed", id="z-2",
                      event={"previous": "OPEN", "current": "SOLVED"}), sign_zendesk, "support.ticket_solved"),
    ("zendesk", _with(zendesk_priority(), type="zen:event-type:ticket.tags_changed", id="z-3",
                      event={"tags_added": ["escalated"], "tags_removed": []}), sign_zendesk,
     "support.ticket_escalated"),
    ("zendesk", _with(zendesk_priority(), type="zen:event-type:ticket.created", id="z-4"), sign_zendesk,
     "support.ticket_created"),
    ("zendesk", _with(zendesk_priority(current="LOW"), id="z-5"), sign_zendesk, None),
    ("intercom", _with(intercom_closed(), topic="conversation.rating.added", id="notif_r",
                       data__item__conversation_rating={"rating": 2}), sign_intercom, "support.csat"),
    ("intercom", _with(intercom_closed(), topic="conversation.user.created", id="notif_c"), sign_intercom,
     "support.ticket_created"),
    ("intercom", _with(intercom_closed(), topic="contact.created", id="notif_x"), sign_intercom, None),
    ("typeform", _with(typeform_nps(), event_id="tf-2", form_response__answers=[]), sign_typeform, None),
    ("segment", _with(segment_track(), type="identify", messageId="m-2"), sign_segment, None),
]


@pytest.mark.parametrize(("source", "payload", "signer", "kind"), MAPPINGS,
                         ids=[f"{m[0]}-{m[3]}-{i}" for i, m in enumerate(MAPPINGS)])
async def test_each_vendor_event_maps_as_documented(api: Api, source: str, payload: Any, signer: Any,
                                                    kind: str | None) -> None:
    body = raw(payload)
    r = await post(api, source, body, signer(body))
    assert r.status_code == 202, r.text
    if kind is None:
        assert r.json()["status"] == "ignored" and r.json()["events"] == []
        assert await api.store.pending_count() == 0
    else:
        [event] = r.json()["events"]
        assert event["type"] == kind
        stored = await api.store.get_event(event["id"])
        assert stored is not None and stored.account_id == "acme"
        if kind == "support.csat":
            assert stored.data["rating"] == 2
