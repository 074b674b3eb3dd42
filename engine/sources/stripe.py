"""Stripe: ``Stripe-Signature: t=TIMESTAMP,v1=HEX[,v1=HEX...]``, HMAC-SHA256 of ``TIMESTAMP.BODY`` with the
endpoint's signing secret (whsec_...), the timestamp within the tolerance (default 300 s, as Stripe's
libraries). Documented at https://docs.stripe.com/webhooks#verify-manually.

Mapped (docs/sources.md): ``customer.subscription.created|updated`` → ``account.updated`` with
``renewal_date`` (the current period's end, UTC date) and ``arr`` (the items' recurring amounts per
year); ``customer.subscription.deleted`` → ``billing.subscription_cancelled``;
``invoice.payment_failed`` → ``billing.payment_failed``; ``invoice.overdue`` →
``billing.invoice_overdue``. Others are answered 202 and ignored.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.config.sourceconfig import SourceConfig
from engine.sources.base import (
    Delivery,
    Mapped,
    Refused,
    Vendor,
    account_of,
    at_path,
    build_event,
    digest,
    iso,
    same,
    secret_of,
    within,
)

__all__ = ["STRIPE", "annual"]

PER_YEAR = {"day": 365, "week": 52, "month": 12, "year": 1}


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check ``Stripe-Signature`` (any of its v1 signatures may match: Stripe sends two while a secret rolls)."""
    header = d.headers.get("stripe-signature", "")
    parts = [p.partition("=") for p in header.split(",")]
    stamps = [v for k, _, v in parts if k.strip() == "t"]
    signatures = [v for k, _, v in parts if k.strip() == "v1"]
    if not stamps or not signatures or not stamps[0].strip().isdigit():
        raise Refused("not_verified", "no valid Stripe-Signature header (t=...,v1=...): this did not come "
                      "from Stripe, or the endpoint is not the one whose signing secret is configured")
    expected = digest(secret_of(cfg), stamps[0].strip().encode("ascii") + b"." + d.body)
    if not any(same(expected, s) for s in signatures):
        raise Refused("bad_signature", "the Stripe-Signature does not match: check that secret: is this "
                      "endpoint's signing secret (Developers > Webhooks > the endpoint > Signing secret)")
    within(cfg, datetime.fromtimestamp(min(int(stamps[0]), 10**11), UTC), d.now)


def annual(subscription: Any) -> float | None:
    """The subscription's recurring amount per year in the currency's main unit; None when it has no priced items."""
    total, seen = 0.0, False
    for item in at_path(subscription, "items.data") or []:
        price = at_path(item, "price") or at_path(item, "plan") or {}
        amount = price.get("unit_amount", price.get("amount")) if isinstance(price, dict) else None
        recurring = price.get("recurring") or price if isinstance(price, dict) else {}
        interval, count = recurring.get("interval"), recurring.get("interval_count") or 1
        quantity = item.get("quantity", 1) if isinstance(item, dict) else 1
        if isinstance(amount, (int, float)) and interval in PER_YEAR and isinstance(count, int) and count > 0:
            total += amount * (quantity if isinstance(quantity, int) else 1) * PER_YEAR[interval] / count
            seen = True
    return round(total / 100, 2) if seen else None


def _renewal(subscription: Any) -> str | None:
    # Newer API versions keep the period on each item; older ones on the subscription.
    end = at_path(subscription, "current_period_end") or at_path(subscription, "items.data.0.current_period_end")
    if not isinstance(end, int) or isinstance(end, bool) or not 0 < end < 10**11:
        return None
    return datetime.fromtimestamp(end, UTC).date().isoformat()


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """The csops event of one Stripe event object."""
    kind, obj, ident = at_path(payload, "type"), at_path(payload, "data.object"), at_path(payload, "id")
    if not isinstance(kind, str) or not isinstance(ident, str) or not isinstance(obj, dict):
        raise Refused("not_an_event", "the body is not a Stripe event (id, type and data.object expected)")
    account = account_of(cfg, STRIPE.account_path, payload)
    if kind not in TYPES:
        return Mapped(ignored=f"Stripe event type {kind} is not mapped to a csops event")
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or STRIPE.account_path} is empty in this {kind}")
    when = iso(at_path(payload, "created"), now)
    if kind.startswith("customer.subscription.") and kind != "customer.subscription.deleted":
        fields: dict[str, Any] = {}
        if (renewal := _renewal(obj)) is not None:
            fields["renewal_date"] = renewal
        if (arr := annual(obj)) is not None:
            fields["arr"] = arr
        if not fields:
            return Mapped(ignored=f"this {kind} has neither a period end nor priced items")
        return Mapped(events=(build_event(cfg, ident, "account.updated", account, when, {"fields": fields}),))
    data = {"stripe_id": obj.get("id"), "customer": obj.get("customer")}
    if kind.startswith("invoice."):
        data.update({k: obj.get(k) for k in ("amount_due", "currency", "attempt_count", "hosted_invoice_url")})
        data["due_date"] = iso(obj["due_date"], now)[:10] if isinstance(obj.get("due_date"), int) else None
    return Mapped(events=(build_event(cfg, ident, TYPES[kind], account, when,
                                      {k: v for k, v in data.items() if v is not None}),))


TYPES = {"customer.subscription.created": "account.updated", "customer.subscription.updated": "account.updated",
         "customer.subscription.deleted": "billing.subscription_cancelled",
         "invoice.payment_failed": "billing.payment_failed", "invoice.overdue": "billing.invoice_overdue"}
"""Stripe event type → csops event type."""

STRIPE = Vendor(kind="stripe", verify=verify, map=map_event, account_path="data.object.metadata.account_id")
