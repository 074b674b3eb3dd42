"""A corpus of hostile webhook deliveries: forged, malformed, replayed or oversized, each answered with a
4xx and plain words, and nothing stored (no traceback, no 500, no secret in the answer)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import pytest

from engine.api.app import MAX_BODY
from tests.unit.test_sources import (  # noqa: F401 - api is a fixture
    SECRETS,
    TS,
    Api,
    api,
    mac,
    post,
    raw,
    sign_intercom,
    sign_stripe,
    sign_zendesk,
    stripe_subscription,
    zendesk_priority,
)

STRIPE = raw(stripe_subscription())
ZENDESK = raw(zendesk_priority())
Case = tuple[str, str, bytes, Callable[[], dict[str, str]], int, str]


def stripe_sig(text: str) -> Callable[[], dict[str, str]]:
    return lambda: {"Stripe-Signature": text}


GOOD_V1 = sign_stripe(STRIPE)["Stripe-Signature"].split(",")[1]

CORPUS: list[Case] = [
    # (what, source, body, headers, status, error code)
    ("stripe: no t=", "stripe", STRIPE, stripe_sig(GOOD_V1), 401, "not_verified"),
    ("stripe: no v1=", "stripe", STRIPE, stripe_sig(f"t={TS}"), 401, "not_verified"),
    ("stripe: t is not a number", "stripe", STRIPE, stripe_sig(f"t=now,{GOOD_V1}"), 401, "not_verified"),
    ("stripe: t is negative", "stripe", STRIPE, stripe_sig(f"t=-5,{GOOD_V1}"), 401, "not_verified"),
    ("stripe: t is huge", "stripe", STRIPE, lambda: sign_stripe(STRIPE, t=10**30), 401, "stale_timestamp"),
    ("stripe: only v0 (the test scheme)", "stripe", STRIPE,
     stripe_sig(f"t={TS},v0={mac(SECRETS['stripe'], f'{TS}.'.encode() + STRIPE).hex()}"), 401, "not_verified"),
    ("stripe: signature upper-cased", "stripe", STRIPE,
     stripe_sig(f"t={TS},{GOOD_V1.upper().replace('V1=', 'v1=')}"), 401, "bad_signature"),
    ("stripe: signature over the body alone", "stripe", STRIPE,
     stripe_sig(f"t={TS},v1={mac(SECRETS['stripe'], STRIPE).hex()}"), 401, "bad_signature"),
    ("stripe: sha1 instead of sha256", "stripe", STRIPE,
     stripe_sig(f"t={TS},v1={mac(SECRETS['stripe'], f'{TS}.'.encode() + STRIPE, hashlib.sha1).hex()}"),
     401, "bad_signature"),
    ("stripe: another source's secret", "stripe", STRIPE, lambda: sign_stripe(STRIPE, secret=SECRETS["zendesk"]),
     401, "bad_signature"),
    ("stripe: empty header", "stripe", STRIPE, stripe_sig(""), 401, "not_verified"),
    ("stripe: garbage header", "stripe", STRIPE, stripe_sig("=,=,,t=,v1="), 401, "not_verified"),
    ("stripe: signed, not JSON", "stripe", b"not json {", lambda: sign_stripe(b"not json {"), 400, "malformed_json"),
    ("stripe: signed, invalid UTF-8", "stripe", b"\xff\xfe{}", lambda: sign_stripe(b"\xff\xfe{}"), 400,
     "malformed_json"),
    ("stripe: signed, a JSON array", "stripe", b"[1,2]", lambda: sign_stripe(b"[1,2]"), 422, "not_an_event"),
    ("stripe: signed, no data.object", "stripe", b'{"id":"evt_1","type":"invoice.overdue"}',
     lambda: sign_stripe(b'{"id":"evt_1","type":"invoice.overdue"}'), 422, "not_an_event"),
    ("stripe: signed, deeply nested", "stripe", b"[" * 5000 + b"]" * 5000,
     lambda: sign_stripe(b"[" * 5000 + b"]" * 5000), 400, "malformed_json"),
    ("zendesk: timestamp not a time", "zendesk", ZENDESK, lambda: sign_zendesk(ZENDESK, stamp="yesterday"), 401,
     "not_verified"),
    ("zendesk: timestamp without a zone", "zendesk", ZENDESK,
     lambda: sign_zendesk(ZENDESK, stamp="2026-11-23T09:59:30"), 401, "not_verified"),
    ("zendesk: timestamp swapped after signing", "zendesk", ZENDESK,
     lambda: {**sign_zendesk(ZENDESK), "X-Zendesk-Webhook-Signature-Timestamp": "2026-11-23T09:59:31Z"}, 401,
     "bad_signature"),
    ("zendesk: body + timestamp order", "zendesk", ZENDESK,
     lambda: {"X-Zendesk-Webhook-Signature": __import__("base64").b64encode(
         mac(SECRETS["zendesk"], ZENDESK + b"2026-11-23T09:59:30Z")).decode(),
         "X-Zendesk-Webhook-Signature-Timestamp": "2026-11-23T09:59:30Z"}, 401, "bad_signature"),
    ("intercom: sha256= prefix", "intercom", b"{}", lambda: {"X-Hub-Signature": "sha256=" + "0" * 64}, 401,
     "not_verified"),
    ("intercom: a signature for another body", "intercom", b'{"id":"x"}', lambda: sign_intercom(b"{}"), 401,
     "bad_signature"),
    ("typeform: no prefix", "typeform", b"{}", lambda: {"Typeform-Signature": "abc"}, 401, "not_verified"),
    ("segment: empty header", "segment", b"{}", lambda: {"X-Signature": ""}, 401, "not_verified"),
    ("freshdesk: secret with a suffix", "freshdesk", b"{}", lambda: {"X-Csops-Secret": SECRETS["freshdesk"] + "x"},
     401, "bad_signature"),
    ("billing (generic): no timestamp header", "billing", b"{}", lambda: {"X-Billing-Signature": "sha256=00"}, 401,
     "not_verified"),
    ("billing (generic): prefix only", "billing", b"{}",
     lambda: {"X-Billing-Signature": "sha256=", "X-Billing-Time": str(TS)}, 401, "not_verified"),
    ("billing (generic): timestamp not digits", "billing", b"{}",
     lambda: {"X-Billing-Signature": "sha256=00", "X-Billing-Time": "12e3"}, 401, "not_verified"),
]


@pytest.mark.parametrize(("source", "body", "headers", "status", "code"), [c[1:] for c in CORPUS],
                         ids=[c[0] for c in CORPUS])
async def test_a_hostile_delivery_is_refused_and_stores_nothing(api: Api, source: str, body: bytes,  # noqa: F811
                                                                headers: Callable[[], dict[str, str]], status: int,
                                                                code: str) -> None:
    r = await post(api, source, body, headers())
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code
    assert all(secret not in r.text for secret in SECRETS.values())
    assert await api.store.pending_count() == 0


async def test_a_body_over_the_limit_is_413_before_it_is_verified(api: Api) -> None:  # noqa: F811
    body = b" " * (MAX_BODY + 1)
    r = await post(api, "stripe", body, sign_stripe(body))
    assert r.status_code == 413
    assert await api.store.pending_count() == 0


async def test_a_source_name_that_is_a_path_trick_is_404(api: Api) -> None:  # noqa: F811
    for name in ("..%2Fevents", "STRIPE", "stripe%00", "%20stripe"):
        r = await api.client.post(f"/v1/sources/{name}", content=b"{}")
        assert r.status_code == 404, name

