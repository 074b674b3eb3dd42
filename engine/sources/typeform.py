"""Typeform: NPS/CSAT answers → ``survey.responded`` with ``score`` and, for NPS, ``category``
(promoter 9-10, passive 7-8, detractor 0-6).

Typeform signs with ``Typeform-Signature: sha256=BASE64``, HMAC-SHA256 of the body with the
webhook's secret (https://www.typeform.com/developers/webhooks/secure-your-webhooks/); payloads are
``form_response`` events (event_id, form_response.answers, form_response.hidden). Typeform sends no
signing time: a replay is caught by the event id only.
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

__all__ = ["TYPEFORM", "category"]

SCORED = ("nps", "opinion_scale", "rating")
"""Typeform field types whose number answer is the score, first found first."""


def category(score: int) -> str:
    """The NPS category of a 0-10 score."""
    return "promoter" if score >= 9 else "passive" if score >= 7 else "detractor"


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check ``Typeform-Signature``."""
    given = d.headers.get("typeform-signature", "")
    if not given.startswith("sha256="):
        raise Refused("not_verified", "no Typeform-Signature: sha256=... header: this did not come from a "
                      "Typeform webhook with a secret")
    if not same(digest(secret_of(cfg), d.body, encoding="base64"), given[7:]):
        raise Refused("bad_signature", "the Typeform-Signature does not match: check that secret: is the "
                      "secret set on the webhook (Connect > Webhooks > Edit > Secret)")


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """A form response with a score → ``survey.responded``."""
    ident, response = at_path(payload, "event_id"), at_path(payload, "form_response")
    if not isinstance(ident, str) or not isinstance(response, dict):
        raise Refused("not_an_event", "the body is not a Typeform event (event_id and form_response expected)")
    answers = [a for a in response.get("answers") or [] if isinstance(a, dict)]
    scored = [a for t in SCORED for a in answers
              if at_path(a, "field.type") == t and isinstance(a.get("number"), int) and not isinstance(
                  a.get("number"), bool)]
    if not scored:
        return Mapped(ignored="the response has no NPS, opinion scale or rating answer")
    account = account_of(cfg, TYPEFORM.account_path, payload)
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or TYPEFORM.account_path} is empty (add a hidden "
                      "field account_id to the form)")
    score, kind = scored[0]["number"], at_path(scored[0], "field.type")
    data: dict[str, Any] = {"score": score, "survey": "nps" if kind == "nps" else "csat", "source": "typeform",
                            "form_id": str(response.get("form_id", ""))}
    if kind == "nps" and 0 <= score <= 10:
        data["category"] = category(score)
    return Mapped(events=(build_event(cfg, ident, "survey.responded", account,
                                      iso(response.get("submitted_at"), now), data),))


TYPEFORM = Vendor(kind="typeform", verify=verify, map=map_event, account_path="form_response.hidden.account_id")
