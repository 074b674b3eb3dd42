"""Delighted: survey responses → ``survey.responded`` (score, and for NPS the category), unsubscribes →
``contact.unsubscribed`` (which suppresses the address).

Delighted's webhooks (https://app.delighted.com/docs/api/webhooks) carry no signature, so the URL
you give Delighted holds the source's secret as ``?token=``, compared in constant time. Payloads:
``event_type`` (survey_response.created|updated, unsubscribe.created), ``event_id`` (Delighted's
key for deduplicating redeliveries) and ``event_data`` (person, survey_type, score, comment,
person_properties).
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
    iso,
    same,
    secret_of,
)
from engine.sources.typeform import category

__all__ = ["DELIGHTED"]


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check the ``token`` of the URL."""
    given = d.query.get("token")
    if not given:
        raise Refused("not_verified", "no ?token= in the URL: give Delighted the URL "
                      "https://YOUR-HOST/v1/sources/NAME?token=SECRET (docs/sources.md)")
    if not same(secret_of(cfg).decode("utf-8"), given):
        raise Refused("bad_signature", "the URL's token is not this source's secret")


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """A survey response → ``survey.responded``; an unsubscribe → ``contact.unsubscribed``."""
    kind, ident, data = at_path(payload, "event_type"), at_path(payload, "event_id"), at_path(payload, "event_data")
    if not isinstance(kind, str) or not isinstance(ident, str) or not isinstance(data, dict):
        raise Refused("not_an_event", "the body is not a Delighted webhook (event_type, event_id, event_data)")
    if kind not in ("survey_response.created", "survey_response.updated", "unsubscribe.created"):
        return Mapped(ignored=f"Delighted event {kind} is not mapped to a csops event")
    account = account_of(cfg, DELIGHTED.account_path, payload)
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or DELIGHTED.account_path} is empty (send the survey "
                      "with the person property account_id)")
    email = at_path(data, "person.email")
    when = iso(data.get("updated_at") or data.get("created_at"), now)
    if kind == "unsubscribe.created":
        return Mapped(events=(build_event(cfg, ident, "contact.unsubscribed", account, when,
                                          {"email": email, "source": "delighted"}),))
    score = data.get("score")
    if not isinstance(score, int) or isinstance(score, bool):
        return Mapped(ignored="the response has no score")
    out: dict[str, Any] = {"score": score, "survey": str(data.get("survey_type") or "nps"), "source": "delighted"}
    if out["survey"] == "nps" and 0 <= score <= 10:
        out["category"] = category(score)
    if isinstance(data.get("comment"), str):
        out["comment"] = data["comment"][:2000]
    if isinstance(email, str):
        out["email"] = email
    return Mapped(events=(build_event(cfg, ident, "survey.responded", account, when, out),))


DELIGHTED = Vendor(kind="delighted", verify=verify, map=map_event,
                   account_path="event_data.person_properties.account_id")
