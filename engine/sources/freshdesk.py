"""Freshdesk: its automation-rule webhooks are not signed, so the rule sends a shared secret in a custom
header, ``X-Csops-Secret``, compared in constant time. (Freshdesk: "Trigger webhook" action,
https://support.freshdesk.com/support/solutions/articles/132589-using-webhooks-in-automation-rules.)

The rule's JSON body (docs/sources.md gives it) is ``{"freshdesk_webhook": {...}}`` with the ticket
placeholders. Freshdesk sends no event id, so the id is a digest of the payload: a retried
delivery (the same body) is one event. Mapped: ``triggered_event`` saying created →
``support.ticket_created``; priority Urgent or High → ``support.ticket_escalated``; status Resolved
or Closed → ``support.ticket_solved``; a ``csat_rating`` → ``support.csat``.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from engine.config.sourceconfig import SourceConfig
from engine.sources.base import Delivery, Mapped, Refused, Vendor, account_of, build_event, same, secret_of

__all__ = ["FRESHDESK"]


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check the shared secret of ``X-Csops-Secret``."""
    given = d.headers.get("x-csops-secret")
    if not given:
        raise Refused("not_verified", "no X-Csops-Secret header: add it to the automation rule's webhook "
                      "(Custom headers) with the source's secret")
    if not same(secret_of(cfg).decode("utf-8"), given):
        raise Refused("bad_signature", "the X-Csops-Secret header is not this source's secret")


def _kind(ticket: dict[str, Any]) -> str | None:
    if ticket.get("csat_rating") not in (None, ""):
        return "support.csat"
    if "created" in str(ticket.get("triggered_event", "")).lower():
        return "support.ticket_created"
    if str(ticket.get("ticket_status", "")).lower() in ("resolved", "closed"):
        return "support.ticket_solved"
    if str(ticket.get("ticket_priority", "")).lower() in ("urgent", "high"):
        return "support.ticket_escalated"
    return None


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """The csops event of one rule's delivery."""
    ticket = payload.get("freshdesk_webhook") if isinstance(payload, dict) else None
    if not isinstance(ticket, dict):
        raise Refused("not_an_event", 'the body is not a Freshdesk webhook ({"freshdesk_webhook": {...}})')
    kind = _kind(ticket)
    if kind is None:
        return Mapped(ignored="this ticket change (status, priority, event) is not mapped to a csops event")
    account = account_of(cfg, FRESHDESK.account_path, payload)
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or FRESHDESK.account_path} is empty")
    ident = hashlib.sha256(json.dumps(payload, sort_keys=True).encode("utf-8")).hexdigest()[:40]
    data: dict[str, Any] = {"ticket_id": str(ticket.get("ticket_id", "")), "source": "freshdesk"}
    for ours, theirs in (("subject", "ticket_subject"), ("status", "ticket_status"), ("priority", "ticket_priority")):
        if isinstance(ticket.get(theirs), str):
            data[ours] = ticket[theirs].lower() if ours != "subject" else ticket[theirs]
    if kind == "support.csat":
        data["rating"] = str(ticket["csat_rating"])
    return Mapped(events=(build_event(cfg, ident, kind, account, now.isoformat(), data),))


FRESHDESK = Vendor(kind="freshdesk", verify=verify, map=map_event, account_path="freshdesk_webhook.csops_account_id")
