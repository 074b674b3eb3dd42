"""What every source module shares: the delivery, the refusal, HMAC checks, JSON paths, event building.

A source module (one per vendor) gives a :class:`Vendor`: ``verify`` checks a delivery by the
vendor's documented scheme and raises :class:`Refused` when it does not hold; ``map`` turns the
verified payload into csops events (plain dicts in the format of schemas/event.schema.json).
Each event's id is ``NAME:VENDOR_EVENT_ID``, so a redelivery is stored once and two sources cannot
collide.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.config.sourceconfig import SourceConfig
from engine.errors import CsopsError

__all__ = ["REFUSED_CODES", "Delivery", "Mapped", "Refused", "Vendor", "account_of", "at_path", "build_event",
           "digest", "iso", "same", "secret_of", "within"]


@dataclass(frozen=True, kw_only=True)
class Delivery:
    """One webhook request as the vendor sent it."""

    body: bytes
    """The raw body (signatures are over these bytes, never over re-serialised JSON)."""
    headers: Mapping[str, str]
    """Request headers, names in lower case."""
    query: Mapping[str, str] = field(default_factory=dict)
    """Query parameters."""
    now: datetime = field(default_factory=lambda: datetime.now(UTC))
    """When it arrived."""


REFUSED_CODES = ("not_verified", "bad_signature", "stale_timestamp", "malformed_json", "not_an_event")
"""What a :class:`Refused` can say: no proof it came from the vendor (no signature or secret, or one that
cannot be read); a signature or secret that does not match; signed too far from now (a replay); a body
that is not JSON; JSON that is not the vendor's event."""


class Refused(CsopsError):
    """A delivery that is not taken: ``code`` (one of :data:`REFUSED_CODES`) and ``message`` in plain words.

    It says what is wrong in the engine's words; the API answers each code with its status at its
    boundary (engine/api/api_errors.py ``SOURCE_STATUS``: not verified 401, not JSON 400, not an event 422).
    """

    def __init__(self, code: str, message: str) -> None:
        if code not in REFUSED_CODES:
            raise ValueError(f"{code!r} is not a code of Refused ({', '.join(REFUSED_CODES)})")
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True, kw_only=True)
class Mapped:
    """What a payload becomes."""

    events: tuple[dict[str, Any], ...] = ()
    """csops events to ingest."""
    ignored: str = ""
    """Why nothing is ingested (a type csops does not map, no account in the payload)."""


@dataclass(frozen=True, kw_only=True)
class Vendor:
    """A source kind: how its deliveries are verified and mapped."""

    kind: str
    """The kind in csops.yaml."""
    verify: Callable[[SourceConfig, Delivery], None]
    """Raises Refused when the delivery is not the vendor's."""
    map: Callable[[SourceConfig, Any, datetime], Mapped]
    """The events of a verified payload (the datetime is when it arrived)."""
    account_path: str
    """Where the payload names the account, unless csops.yaml says (account_path)."""


def secret_of(cfg: SourceConfig) -> bytes:
    """The source's secret as bytes (the config check made sure there is one)."""
    if cfg.secret is None:
        raise Refused("not_verified", f"source {cfg.name} has no secret configured, so nothing it sends "
                      "can be verified; set secret: in csops.yaml")
    return cfg.secret.reveal().encode("utf-8")


def digest(key: bytes, message: bytes, algorithm: str = "sha256", encoding: str = "hex") -> str:
    """HMAC of ``message`` as hex or base64 text."""
    raw = hmac.new(key, message, getattr(hashlib, algorithm)).digest()
    return raw.hex() if encoding == "hex" else base64.b64encode(raw).decode("ascii")


def same(expected: str, given: str | None) -> bool:
    """Constant-time comparison, so a signature cannot be guessed byte by byte from response times."""
    return given is not None and hmac.compare_digest(expected.encode("utf-8"), given.strip().encode("utf-8"))


def within(cfg: SourceConfig, signed: datetime, now: datetime) -> None:
    """Refuse a signing time further than the tolerance from now: a captured delivery cannot be replayed later."""
    off = abs((now - signed).total_seconds())
    if off > cfg.tolerance:
        raise Refused("stale_timestamp", f"the delivery was signed {int(off)} s away from now, over the "
                      f"{cfg.tolerance} s tolerance: a replay, or this machine's clock is wrong")


def at_path(obj: Any, path: str) -> Any:
    """The value at a dotted path (a number picks a list item); None when any step is missing."""
    for step in path.split(".") if path else ():
        if isinstance(obj, Mapping):
            obj = obj.get(step)
        elif isinstance(obj, list) and step.isdigit() and int(step) < len(obj):
            obj = obj[int(step)]
        else:
            return None
    return obj


def iso(value: Any, default: datetime) -> str:
    """An RFC 3339 time from Unix seconds or an RFC 3339 text; ``default`` when it is neither."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and 0 < value < 1e11:
        return datetime.fromtimestamp(value, UTC).isoformat()
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return default.isoformat()
        return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()
    return default.isoformat()


def account_of(cfg: SourceConfig, vendor_default: str, payload: Any) -> str:
    """The account id the payload names (configured path, else the vendor's), as text; "" when none."""
    value = at_path(payload, cfg.account_path or vendor_default)
    if isinstance(value, bool) or value is None or isinstance(value, (dict, list)):
        return ""
    return str(value).strip()[:255]


def build_event(cfg: SourceConfig, vendor_id: Any, kind: str, account: str, occurred_at: str,
                data: Mapping[str, Any]) -> dict[str, Any]:
    """A csops event whose id is ``NAME:VENDOR_ID`` (the idempotency key)."""
    return {"id": f"{cfg.name}:{vendor_id}"[:255], "type": kind, "account_id": account, "occurred_at": occurred_at,
            "data": dict(data)}
