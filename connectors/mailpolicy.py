"""Mail policy in front of any Mailer: the suppression list, the marketing cap and unsubscribe links.

``PolicyMailer`` wraps the real mailer (SMTP or the outbox). An address on the suppression list is
never mailed, whatever the category; marketing mail past the recipient's cap is not sent; marketing
mail gets the recipient's own unsubscribe links. Instead of a Message-ID, ``send`` then returns the
marker ``"suppressed"`` or ``"capped"``, which the run records as the step's result.

``Unsubscribe`` makes and checks the links. A token is ``base64url(address) + "." + MAC`` where the
MAC is HMAC-SHA256 under a secret, truncated to 128 bits: whoever holds a link can unsubscribe that
address and no other. The one-click endpoint that receives the POST is served by the HTTP API,
which calls ``Unsubscribe.verify`` and adds the address to the ``SuppressionList``.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import hmac
import re
from datetime import timedelta
from typing import Any
from urllib.parse import quote

from connectors.base import Mailer, OutgoingEmail, PermanentError
from connectors.mailbuild import MARKETING
from connectors.suppression import SuppressionList, normalise

__all__ = ["CAPPED", "SUPPRESSED", "PolicyMailer", "Unsubscribe"]

SUPPRESSED = "suppressed"
"""What ``PolicyMailer.send`` returns when every recipient is on the suppression list."""
CAPPED = "capped"
"""What ``PolicyMailer.send`` returns when a marketing email is over its recipient's cap."""

_MAC_BYTES = 16
_MAILTO = re.compile(r"(?:mailto:)?([A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9.-]+)")


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Unsubscribe:
    """Signed unsubscribe links for one recipient each.

    Args:
        url: The one-click endpoint with ``{token}`` where the token goes, e.g.
            ``https://csops.example.com/unsubscribe/{token}``; must be https.
        mailto: An address that unsubscribes whoever writes to it (``unsubscribe@example.com``,
            ``mailto:`` optional), or empty for none; the token goes in the subject.
        secret: The signing key (from CSOPS_UNSUBSCRIBE_SECRET), at least 16 characters; changing
            it invalidates every link already sent.

    Raises:
        ValueError: a URL without ``{token}`` or not https, a malformed mailto, a short secret.
    """

    def __init__(self, url: str, mailto: str, secret: str) -> None:
        if not url.startswith("https://") or "{token}" not in url or any(c.isspace() or c in '<>"' for c in url):
            raise ValueError(f"the unsubscribe url {url!r} must be an https:// URL containing {{token}} and no spaces")
        match = _MAILTO.fullmatch(mailto.strip())
        if mailto.strip() and match is None:
            raise ValueError(f"the unsubscribe mailto {mailto!r} must be an address like unsubscribe@example.com")
        if len(secret) < 16:
            raise ValueError("the unsubscribe secret must be at least 16 characters: set CSOPS_UNSUBSCRIBE_SECRET "
                             "to a long random value (e.g. from `openssl rand -hex 32`)")
        self.url = url
        self.mailto = match.group(1) if match else ""
        self._secret = secret.encode("utf-8")

    def __repr__(self) -> str:
        return f"Unsubscribe(url={self.url!r}, mailto={self.mailto!r}, secret='***')"

    def token(self, email: str) -> str:
        """The token for ``email`` (normalised first, so letter case does not matter)."""
        address = normalise(email).encode("utf-8")
        return f"{_b64(address)}.{_b64(self._mac(address))}"

    def link_for(self, email: str) -> tuple[str, str]:
        """The recipient's ``(https URL, mailto URI)``; the mailto is empty when none is configured."""
        token = self.token(email)
        https = self.url.replace("{token}", token)
        mailto = f"mailto:{self.mailto}?subject={quote('unsubscribe ' + token)}" if self.mailto else ""
        return https, mailto

    def verify(self, token: str) -> str | None:
        """The address a token was made for, or None if it is malformed or was not signed by us."""
        payload, dot, mac = token.strip().partition(".")
        if not dot or not payload or not mac:
            return None
        try:
            address, given = _unb64(payload), _unb64(mac)
            email = address.decode("utf-8")
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(given, self._mac(address)):
            return None
        return email

    def _mac(self, address: bytes) -> bytes:
        # A label in the MAC input, so a MAC made with this secret for another purpose is no token.
        return hmac.new(self._secret, b"csops-unsubscribe\0" + address, hashlib.sha256).digest()[:_MAC_BYTES]


class PolicyMailer:
    """A ``Mailer`` that applies the suppression list, the marketing cap and unsubscribe links.

    Args:
        inner: The mailer that really sends (``SMTPMailer``, ``EmailOutbox``).
        suppressions: The suppression list and marketing log (closed by ``close``).
        unsubscribe: Makes each marketing recipient's links; without it SMTP refuses marketing mail.
        marketing_cap: At most this many marketing emails per recipient within the window; 0 = no cap.
        cap_window_days: The window the cap counts over, in days.
    """

    def __init__(self, inner: Mailer, *, suppressions: SuppressionList, unsubscribe: Unsubscribe | None = None,
                 marketing_cap: int = 0, cap_window_days: int = 7) -> None:
        if marketing_cap < 0 or cap_window_days < 1:
            raise ValueError("marketing_cap must be 0 (no cap) or more, and cap_window_days 1 or more")
        self.inner = inner
        self.suppressions = suppressions
        self.unsubscribe = unsubscribe
        self.marketing_cap = marketing_cap
        self.window = timedelta(days=cap_window_days)

    def __repr__(self) -> str:
        return (f"PolicyMailer({self.inner!r}, unsubscribe={self.unsubscribe!r}, marketing_cap={self.marketing_cap}, "
                f"cap_window_days={self.window.days})")

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str:
        """Send unless suppressed or capped; return the Message-ID, ``"suppressed"`` or ``"capped"``.

        Suppressed recipients are dropped from ``to``; when none is left nothing is sent.

        Raises:
            PermanentError: marketing mail to several recipients; whatever the inner mailer raises
                (SMTP refuses marketing mail when no unsubscribe is configured).
        """
        blocked = await self.suppressions.suppressed(list(message.to))
        to = tuple(addr for addr in message.to if normalise(addr) not in blocked)
        if not to:
            return SUPPRESSED
        message = dataclasses.replace(message, to=to)
        if message.category != MARKETING:
            return await self.inner.send(message, idempotency_key)
        if len(to) != 1:
            raise PermanentError("marketing email goes to one recipient per message (each gets its own "
                                 "unsubscribe link)")
        if self.unsubscribe is not None:
            url, mailto = self.unsubscribe.link_for(to[0])
            message = dataclasses.replace(message, unsubscribe_url=url, unsubscribe_mailto=mailto)
        # Without links, the inner mailer decides: SMTP refuses (configure email.unsubscribe); the
        # outbox, which reaches nobody, writes the message so a fresh machine's demo runs.
        if self.marketing_cap and not await self.suppressions.reserve_marketing(
                to[0], idempotency_key, cap=self.marketing_cap, window=self.window):
            return CAPPED
        try:
            return await self.inner.send(message, idempotency_key)
        except PermanentError:
            if self.marketing_cap:
                await self.suppressions.release_marketing(idempotency_key)  # it reached nobody
            raise

    async def check(self) -> list[str]:
        """The inner mailer's problems, and whether the suppression list's database answers."""
        problems: list[str] = []
        inner_check: Any = getattr(self.inner, "check", None)
        if inner_check is not None:
            problems.extend(await inner_check())
        try:
            await self.suppressions.contains("check@csops.invalid")
        except Exception as exc:  # noqa: BLE001 - any failure is a problem to report, in words
            problems.append(f"the suppression list's database does not answer ({type(exc).__name__}): check "
                            "the store's database URL")
        return problems

    async def close(self) -> None:
        """Close the inner mailer and the suppression list."""
        inner_close: Any = getattr(self.inner, "close", None)
        if inner_close is not None:
            await inner_close()
        self.suppressions.close()
