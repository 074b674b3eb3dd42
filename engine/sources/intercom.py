"""Intercom: ``X-Hub-Signature: sha1=HEX``, HMAC-SHA1 of the body with the app's client secret.
Documented at https://developers.intercom.com/docs/references/webhooks/webhook-models (signed
notifications). Intercom sends no signing time, so a replay is caught by the notification id only.

Payloads are notification objects: ``type: notification_event``, ``id`` (notif_...), ``topic``,
``created_at`` and ``data.item``. Mapped: ``conversation.user.created`` and ``ticket.created`` →
``support.ticket_created``; ``conversation.priority.updated`` (priority) →
``support.ticket_escalated``; ``conversation.admin.closed`` → ``support.ticket_solved``;
``conversation.rating.added`` → ``support.csat`` (score 1-5 as ``rating``).
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
)

__all__ = ["INTERCOM"]

TOPICS = {"conversation.user.created": "support.ticket_created", "ticket.created": "support.ticket_created",
          "conversation.priority.updated": "support.ticket_escalated",
          "conversation.admin.closed": "support.ticket_solved", "conversation.rating.added": "support.csat"}


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check ``X-Hub-Signature``."""
    given = d.headers.get("x-hub-signature", "")
    if not given.startswith("sha1="):
        raise Refused("not_verified", "no X-Hub-Signature: sha1=... header: this did not come from Intercom")
    if not same(digest(secret_of(cfg), d.body, "sha1"), given[5:]):
        raise Refused("bad_signature", "the X-Hub-Signature does not match: check that secret: is the app's "
                      "client secret (Developer Hub > your app > Basic information)")


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """The csops event of one Intercom notification."""
    topic, ident, item = at_path(payload, "topic"), at_path(payload, "id"), at_path(payload, "data.item")
    if not isinstance(topic, str) or not isinstance(ident, str) or not isinstance(item, dict):
        raise Refused("not_an_event", "the body is not an Intercom notification (id, topic, data.item expected)")
    if topic not in TOPICS:
        return Mapped(ignored=f"Intercom topic {topic} is not mapped to a csops event")
    if topic == "conversation.priority.updated" and item.get("priority") != "priority":
        return Mapped(ignored="the conversation's priority was removed, not set")
    account = account_of(cfg, INTERCOM.account_path, payload)
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or INTERCOM.account_path} is empty in this {topic}")
    data: dict[str, Any] = {"ticket_id": str(item.get("id", "")), "source": "intercom"}
    rating = at_path(item, "conversation_rating.rating")
    if TOPICS[topic] == "support.csat" and isinstance(rating, int):
        data["rating"] = rating
    return Mapped(events=(build_event(cfg, ident, TOPICS[topic], account, iso(at_path(payload, "created_at"), now),
                                      data),))


INTERCOM = Vendor(kind="intercom", verify=verify, map=map_event, account_path="data.item.custom_attributes.account_id")
