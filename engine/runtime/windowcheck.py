"""What the ``email_window`` activity finds out before a send window is waited for.

The order a send is checked in is suppression, then the marketing cap, then the window: an email
every recipient of which is suppressed, or that the cap already refuses, is not held for a window
(its step goes on at once and records ``suppressed`` or ``capped``); only a send that would go out
waits. Nothing is counted against the cap here: the count is taken when the email is really sent.

The zone is the first recipient contact's ``timezone``, else the account's ``fields.timezone``,
else "" (the workflow then uses the calendar's). A name that is not a time zone is passed over.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from connectors.base import Contact

__all__ = ["blocked", "zone_of"]


def _valid(name: Any) -> str:
    if not isinstance(name, str) or not name.strip():
        return ""
    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return ""
    return name.strip()


def zone_of(recipient_ids: Sequence[str], contacts: Sequence[Contact], account_fields: dict[str, Any]) -> str:
    """The zone a send window is read in: a recipient contact's, else the account's, else ""."""
    by_id = {c.id: c for c in contacts}
    for rid in recipient_ids:
        if rid in by_id and (zone := _valid(by_id[rid].timezone)):
            return zone
    return _valid(account_fields.get("timezone"))


async def blocked(mailer: Any, emails: Sequence[str], category: str) -> str:
    """``suppressed`` when every address is suppressed, ``capped`` when a marketing email's recipient has
    reached the cap, "" when the email would go out (or the mailer applies no policy)."""
    from connectors.mailpolicy import PolicyMailer

    if not isinstance(mailer, PolicyMailer) or not emails:
        return ""
    if len(await mailer.suppressions.suppressed(list(emails))) >= len({e.strip().lower() for e in emails}):
        return "suppressed"
    if category == "marketing" and mailer.marketing_cap:
        since = datetime.now(UTC) - mailer.window
        counts = [await mailer.suppressions.marketing_count(e, since=since) for e in emails]
        if all(c >= mailer.marketing_cap for c in counts):
            return "capped"
    return ""


async def hold(inp: Any, recipients: Sequence[Any], view: Any, mailer: Any) -> dict[str, str]:
    """The ``email_window`` activity's answer: ``zone``, ``blocked`` (suppressed, capped or "") and ``until``
    (ISO, UTC; "" when it may go now). A mailer with a ``held`` method is told (the simulation shows it)."""
    from engine.language.sendwindow import SendWindow, next_opening

    zone = zone_of([r.id for r in recipients], view.contacts, dict(view.account.fields))
    refused = await blocked(mailer, [r.email for r in recipients if r.email], inp.category)
    out = {"zone": zone or inp.zone, "blocked": refused, "until": ""}
    if refused:
        return out
    now = datetime.fromisoformat(inp.now)
    window = SendWindow.from_dict(inp.window)
    opening = next_opening(now, window, ZoneInfo(out["zone"]))
    if opening > now:
        out["until"] = opening.isoformat()
        if hasattr(mailer, "held"):
            await mailer.held(inp.key, opening.astimezone(ZoneInfo(out["zone"])), window.describe())
    return out
