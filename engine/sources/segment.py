"""Segment-style track calls (Segment's Webhooks destination; Mixpanel, Amplitude and Pendo exports in
the same shape) → ``usage.feature_used``.

Segment signs with ``X-Signature``: hex HMAC-SHA1 of the body with the destination's shared secret
(https://segment.com/docs/connections/destinations/catalog/webhooks/, "Authentication"). A track
call: ``type: track``, ``messageId`` (the id), ``event``, ``properties`` (``feature``, ``product``),
``timestamp`` and the account under the configured group key (default ``context.groupId``; e.g.
``properties.account_id``). Other calls (identify, page, group) are answered 202 and ignored.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.config.sourceconfig import SourceConfig
from engine.sources.base import Delivery, Mapped, Refused, Vendor, at_path, build_event, digest, iso, same, secret_of

__all__ = ["SEGMENT"]


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check ``X-Signature``."""
    given = d.headers.get("x-signature")
    if not given:
        raise Refused("not_verified", "no X-Signature header: set a shared secret on the Webhooks destination")
    if not same(digest(secret_of(cfg), d.body, "sha1"), given):
        raise Refused("bad_signature", "the X-Signature does not match: check that secret: is the "
                      "destination's shared secret")


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """A track call → ``usage.feature_used`` with the feature (properties.feature, else the event name)."""
    kind, ident = at_path(payload, "type"), at_path(payload, "messageId")
    if not isinstance(kind, str) or not isinstance(ident, str):
        raise Refused("not_an_event", "the body is not a Segment call (type and messageId expected)")
    if kind != "track":
        return Mapped(ignored=f"a {kind} call is not mapped; only track calls are")
    group = at_path(payload, cfg.account_path or cfg.group_key)
    account = str(group).strip()[:255] if isinstance(group, (str, int)) and not isinstance(group, bool) else ""
    if not account:
        return Mapped(ignored=f"no account: {cfg.account_path or cfg.group_key} is empty in this track call")
    feature = at_path(payload, "properties.feature") or at_path(payload, "event")
    if not isinstance(feature, str) or not feature.strip():
        return Mapped(ignored="the track call names no feature (properties.feature or event)")
    data = {"feature": feature.strip()[:200], "source": "segment"}
    product = at_path(payload, "properties.product")
    if isinstance(product, str) and product.strip():
        data["product"] = product.strip()[:200]
    return Mapped(events=(build_event(cfg, ident, "usage.feature_used", account,
                                      iso(at_path(payload, "timestamp"), now), data),))


SEGMENT = Vendor(kind="segment", verify=verify, map=map_event, account_path="")
