"""Zendesk: ``X-Zendesk-Webhook-Signature`` is base64(HMAC-SHA256(TIMESTAMP + BODY)) with the webhook's
signing secret, TIMESTAMP being ``X-Zendesk-Webhook-Signature-Timestamp`` (RFC 3339), kept within
the tolerance. Documented at https://developer.zendesk.com/documentation/webhooks/verifying/.

Payloads are Zendesk's ticket event webhooks
(https://developer.zendesk.com/api-reference/webhooks/event-types/ticket-events/): ``type``
``zen:event-type:ticket.*``, ``id`` (the event id), ``time``, ``detail`` (the ticket: id, subject,
status, priority, organization_id, tags...) and ``event`` (``previous``/``current``). Mapped:
ticket.created → ``support.ticket_created``; priority_changed to urgent or high, or tags_changed
adding ``escalated`` → ``support.ticket_escalated``; status_changed to solved or closed →
``support.ticket_solved``.
"""

from __future__ import annotations

from datetime import datetime
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

__all__ = ["ZENDESK"]

PREFIX = "zen:event-type:"


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check the signature over the timestamp header and the body, then the timestamp's age."""
    signature = d.headers.get("x-zendesk-webhook-signature")
    stamp = d.headers.get("x-zendesk-webhook-signature-timestamp", "")
    if not signature or not stamp:
        raise Refused("not_verified", "no X-Zendesk-Webhook-Signature and -Timestamp headers: this did not "
                      "come from a Zendesk webhook")
    if not same(digest(secret_of(cfg), stamp.encode("utf-8") + d.body, encoding="base64"), signature):
        raise Refused("bad_signature", "the X-Zendesk-Webhook-Signature does not match: check that secret: is "
                      "this webhook's signing secret (Admin Center > Apps and integrations > Webhooks > Reveal secret)")
    try:
        signed = datetime.fromisoformat(stamp.strip().replace("Z", "+00:00"))
    except ValueError:
        raise Refused("not_verified", "X-Zendesk-Webhook-Signature-Timestamp is not a time") from None
    if signed.tzinfo is None:
        raise Refused("not_verified", "X-Zendesk-Webhook-Signature-Timestamp has no time zone")
    within(cfg, signed, d.now)


def _kind(short: str, change: Any) -> str | None:
    current = str(at_path(change, "current") or "").lower()
    if short == "ticket.created":
        return "support.ticket_created"
    if short == "ticket.priority_changed" and current in ("urgent", "high"):
        return "support.ticket_escalated"
    if short == "ticket.tags_changed" and "escalated" in (at_path(change, "tags_added") or []):
        return "support.ticket_escalated"
    if short == "ticket.status_changed" and current in ("solved", "closed"):
        return "support.ticket_solved"
    return None


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """The csops event of one Zendesk ticket event."""
    kind, ident, ticket = at_path(payload, "type"), at_path(payload, "id"), at_path(payload, "detail")
    if not isinstance(kind, str) or not isinstance(ident, str) or not isinstance(ticket, dict):
        raise Refused("not_an_event", "the body is not a Zendesk event (type, id and detail expected)")
    ours = _kind(kind.removeprefix(PREFIX), at_path(payload, "event"))
    if ours is None:
        return Mapped(ignored=f"Zendesk event {kind} (as it changed) is not mapped to a csops event")
    account = account_of(cfg, ZENDESK.account_path, payload)
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or ZENDESK.account_path} is empty in this ticket")
    data = {"ticket_id": str(ticket.get("id", "")), "subject": ticket.get("subject"),
            "priority": str(ticket.get("priority") or "").lower() or None,
            "status": str(ticket.get("status") or "").lower() or None, "source": "zendesk"}
    return Mapped(events=(build_event(cfg, ident, ours, account, iso(at_path(payload, "time"), now),
                                      {k: v for k, v in data.items() if v is not None}),))


ZENDESK = Vendor(kind="zendesk", verify=verify, map=map_event, account_path="detail.organization_id")
