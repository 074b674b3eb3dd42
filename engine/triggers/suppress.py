"""Events that suppress an address: a hard bounce, an unsubscribe, a spam complaint.

The ingestor calls :func:`event_suppressor`'s function for every processed event (after its facts,
before routing and triggers), so an address is on the suppression list before any run that the
same event wakes could mail it. The PolicyMailer (connectors/mailpolicy.py) then refuses to send to
it. The entry says why (``bounced``, ``unsubscribed``, ``complaint``) and who: ``event:ID``.

| type | suppresses when |
|---|---|
| ``email.bounced`` | ``data.bounce_type`` is not ``soft`` (hard, permanent, or not said) |
| ``contact.unsubscribed`` | always |
| ``email.complained`` | always (a spam complaint) |

The address is ``data.email`` (else ``data.contact_email``); an event without one is noted and
suppresses nothing. Adding an address already on the list changes nothing (the first reason stands).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol

__all__ = ["REASONS", "Suppressing", "event_suppressor", "suppression_of"]

REASONS = {"email.bounced": "bounced", "contact.unsubscribed": "unsubscribed", "email.complained": "complaint"}
"""Event type → the reason kept with the entry."""


class Suppressing(Protocol):
    """connectors.suppression.SuppressionList, as far as this module uses it."""

    async def add(self, email: str, reason: str = "", *, by: str = "") -> bool:
        """Suppress; False when it already was."""


class _Event(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def type(self) -> str: ...
    @property
    def data(self) -> Any: ...


def suppression_of(event: _Event) -> tuple[str, str] | str | None:
    """(address, reason) when the event suppresses an address; a note when it should but cannot; None otherwise."""
    reason = REASONS.get(event.type)
    if reason is None:
        return None
    data = event.data if isinstance(event.data, dict) else {}
    if event.type == "email.bounced" and str(data.get("bounce_type", "hard")).lower() == "soft":
        return None  # a full mailbox or a greylist: the next send may get through
    email = data.get("email") or data.get("contact_email")
    if not isinstance(email, str) or "@" not in email:
        return f"{event.type} without data.email: no address was suppressed"
    return email, reason


def event_suppressor(suppressions: Suppressing) -> Callable[[_Event], Awaitable[str | None]]:
    """The ingestor's ``suppress``: adds the address an event names; a note for the event's answer."""
    async def suppress(event: _Event) -> str | None:
        found = suppression_of(event)
        if not isinstance(found, tuple):
            return found
        email, reason = found[0].strip().lower(), found[1]
        try:
            new = await suppressions.add(email, reason, by=f"event:{event.id}")
        except ValueError:
            return f"{event.type}: {email!r:.80} is not an email address; nothing was suppressed"
        return f"suppressed {email} ({reason})" if new else f"{email} was already suppressed"

    return suppress
