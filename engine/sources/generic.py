"""A generic source: any sender that signs its deliveries with an HMAC, mapped by csops.yaml.

``signature``: the header, sha256 or sha1, hex or base64, an optional prefix (``sha256=``) and an
optional timestamp header (then the signed text is ``TIMESTAMP.BODY`` and the tolerance applies,
as Stripe does). ``map``: payload paths of the id, the account and the time, the event type
(written out, or ``path:PATH``) and the data fields. docs/sources.md has an example.
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
    at_path,
    build_event,
    digest,
    iso,
    same,
    secret_of,
    within,
)

__all__ = ["GENERIC"]


def verify(cfg: SourceConfig, d: Delivery) -> None:
    """Check the configured HMAC (and the timestamp's age when there is one)."""
    sig = cfg.signature
    if sig is None:
        raise Refused("not_verified", f"source {cfg.name} has no signature: settings, so nothing it sends can "
                      "be verified")
    given = d.headers.get(sig.header.lower(), "")
    if not given.startswith(sig.prefix) or not given[len(sig.prefix):]:
        raise Refused("not_verified", f"no {sig.header} header{' starting ' + sig.prefix if sig.prefix else ''}")
    signed = d.body
    if sig.timestamp_header:
        stamp = d.headers.get(sig.timestamp_header.lower(), "").strip()
        if not stamp.isdigit() or len(stamp) > 11:
            raise Refused("not_verified", f"no {sig.timestamp_header} header with a Unix time")
        signed = stamp.encode("ascii") + b"." + d.body
    if not same(digest(secret_of(cfg), signed, sig.algorithm, sig.encoding), given[len(sig.prefix):]):
        raise Refused("bad_signature", f"the {sig.header} does not match this source's secret")
    if sig.timestamp_header:
        within(cfg, datetime.fromtimestamp(int(signed.split(b".", 1)[0]), UTC), d.now)


def _text(value: Any) -> str:
    return str(value).strip()[:255] if isinstance(value, (str, int)) and not isinstance(value, bool) else ""


def map_event(cfg: SourceConfig, payload: Any, now: datetime) -> Mapped:
    """The event the mapping reads from the payload."""
    m = cfg.map
    if m is None:
        raise Refused("not_an_event", f"source {cfg.name} has no map: settings")
    ident = _text(at_path(payload, m.id))
    if not ident:
        raise Refused("not_an_event", f"the payload has no id at {m.id}")
    kind = _text(at_path(payload, m.type[5:])) if m.type.startswith("path:") else m.type
    account = _text(at_path(payload, m.account_id))
    if not account:
        return Mapped(ignored=f"no account: {m.account_id} is empty in this payload")
    data = {name: value for name, path in m.data.items() if (value := at_path(payload, path)) is not None}
    return Mapped(events=(build_event(cfg, ident, kind, account,
                                      iso(at_path(payload, m.occurred_at), now) if m.occurred_at else now.isoformat(),
                                      data),))


GENERIC = Vendor(kind="generic", verify=verify, map=map_event, account_path="")
