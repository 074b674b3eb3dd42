"""The one message builder: an ``OutgoingEmail`` and its idempotency key become an RFC 5322 message.

Every header value that a template can reach is checked before anything is built, so a rendered
value cannot inject a header or a second message: CR, LF, NUL and every other control character,
the Unicode line and paragraph separators (U+2028, U+2029) and NEL (U+0085) are refused, and so
are RFC 2047 encoded words (``=?utf-8?q?...=0D=0A...?=``) whose decoded text holds any of them.
The Message-ID is a hash of the idempotency key, so a retried send carries the same Message-ID
and a receiver can drop the duplicate. Marketing mail gets the RFC 8058 one-click unsubscribe
headers and a visible unsubscribe line at the end of the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
import unicodedata
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import EmailPolicy
from email.utils import formatdate
from typing import Any

from connectors.base import OutgoingEmail, PermanentError

__all__ = ["MAIL_POLICY", "build", "check_address", "check_header", "message_id"]

MARKETING = "marketing"
_LIST_UNSUBSCRIBE = "List-Unsubscribe"
# A dot-atom local part and a dotted host name: no quoted local parts, comments or domain literals,
# which nothing here needs and which are where address parsers disagree.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_URI = re.compile(r"[!#-;=?-~]+")  # printable ASCII without space, '"', '<' and '>'


class _MailPolicy(EmailPolicy):
    """policy.SMTP, except that List-Unsubscribe is never turned into encoded words.

    The standard folder encodes a long run without spaces (a URL) as RFC 2047 encoded words, which
    receivers do not decode in List-Unsubscribe; so that header is folded only between its URIs.
    """

    def fold(self, name: str, value: Any) -> str:
        if name.lower() == _LIST_UNSUBSCRIBE.lower():
            return self._fold_uris(name, str(value))
        return str(super().fold(name, value))

    def fold_binary(self, name: str, value: Any) -> bytes:
        if name.lower() == _LIST_UNSUBSCRIBE.lower():
            return self._fold_uris(name, str(value)).encode("ascii")
        return bytes(super().fold_binary(name, value))

    def _fold_uris(self, name: str, value: str) -> str:
        line = f"{name}: {value}"
        if len(line) > (self.max_line_length or 998):
            line = line.replace(", <", f",{self.linesep} <")
        return line + self.linesep


MAIL_POLICY = _MailPolicy(linesep="\r\n", cte_type="7bit")
"""How messages are written: CRLF line ends, and bodies in 7-bit transfer encodings (quoted-printable
or base64 for non-ASCII text), so no server needs 8BITMIME."""


def message_id(idempotency_key: str, domain: str = "csops.local") -> str:
    """The Message-ID every send with this key gets: ``<32 hex digits of SHA-256@domain>``."""
    return f"<{hashlib.sha256(idempotency_key.encode('utf-8')).hexdigest()[:32]}@{domain}>"


def check_header(field: str, value: str) -> str:
    """Return ``value`` if it is safe as one header line, else raise.

    Raises:
        PermanentError: ``value`` holds a line break or another control character, directly or
            inside an RFC 2047 encoded word; the message names ``field``.
    """
    _check_text(field, value, depth=0)
    return value


def _check_text(field: str, value: str, *, depth: int) -> None:
    for ch in value:
        if _forbidden(ch):
            _refuse(field, value, ord(ch), depth)
    if depth < 3:  # a decoded word may hold another encoded word; three levels is past any real use
        for charset, encoding, text in _ENCODED_WORD.findall(value):
            raw = _decode_word(encoding, text)
            # A CR, LF or NUL byte is dangerous whatever charset the word claims (or misclaims).
            for byte in raw:
                if byte < 0x20 or byte == 0x7F:
                    _refuse(field, value, byte, depth + 1)
            try:
                decoded = raw.decode(charset.split("*", 1)[0], errors="replace")
            except LookupError:
                continue  # an unknown charset: receivers show the word as literal text
            _check_text(field, decoded, depth=depth + 1)


def _refuse(field: str, value: str, code: int, depth: int) -> None:
    where = " inside an encoded word (=?...?=)" if depth else ""
    raise PermanentError(
        f"the {field} contains a line break or control character (U+{code:04X}){where}; "
        "a header must be one line of plain text: fix the template or the data it uses",
        detail=repr(value[:200]))


def _forbidden(ch: str) -> bool:
    # Cc covers C0 (CR, LF, NUL, TAB...), DEL and C1 (NEL U+0085); Zl/Zp are U+2028/U+2029;
    # Cs is a lone surrogate, which cannot be encoded at all.
    return unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs")


def _decode_word(encoding: str, text: str) -> bytes:
    try:
        if encoding in "qQ":
            return quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return b""  # not decodable: a receiver shows it as literal text


def check_address(field: str, addr: str) -> str:
    """Return the plain address ``addr`` (``name@example.com``, stripped) or raise.

    Raises:
        PermanentError: a control character or line break, or not one plain ASCII address.
    """
    check_header(field, addr)
    addr = addr.strip()
    if not addr:
        raise PermanentError(f"the {field} is empty: an email needs a sender and at least one recipient")
    if len(addr) > 254 or not _ADDRESS.fullmatch(addr):
        raise PermanentError(f"the {field} {addr[:100]!r} is not a plain email address (name@example.com)")
    return addr


def _address(field: str, addr: str, name: str = "") -> Address:
    return Address(display_name=check_header(f"{field} name", name).strip(), addr_spec=check_address(field, addr))


def _uri(field: str, value: str, scheme: str) -> str:
    check_header(field, value)
    if not value.startswith(scheme) or not _URI.fullmatch(value) or len(value) > 900:
        raise PermanentError(f"the {field} {value[:100]!r} is not a {scheme} URI without spaces or <>")
    return value


def build(message: OutgoingEmail, idempotency_key: str, *, domain: str = "csops.local",
          key_header: bool = False, require_unsubscribe: bool = True) -> EmailMessage:
    """Build the message; every check happens here, before any byte goes anywhere.

    Args:
        message: The rendered email.
        idempotency_key: ``workflow-id/step-path``; the Message-ID is derived from it.
        domain: The domain part of the Message-ID (the sending domain).
        key_header: Add ``X-Csops-Idempotency-Key`` (the outbox does; it reveals workflow ids, so
            mail to customers does not).
        require_unsubscribe: Refuse marketing mail without an unsubscribe URL (SMTP); the outbox,
            which delivers to nobody, passes False.

    Raises:
        PermanentError: no recipient, an invalid address, a header value that could inject
            headers, an unknown category, or marketing mail without an unsubscribe URL.
    """
    if not message.to:
        raise PermanentError("an email needs at least one recipient")
    if not _DOMAIN.fullmatch(domain):
        raise PermanentError(f"the Message-ID domain {domain[:100]!r} is not a host name (example.com)")
    check_header("idempotency key", idempotency_key)
    category = check_header("category", message.category)
    if not _CATEGORY.fullmatch(category):
        raise PermanentError(f"the category {category[:40]!r} is not a category name (operational or marketing)")
    msg = EmailMessage(policy=MAIL_POLICY)
    msg["From"] = _address("sender", message.sender, message.sender_name)
    msg["To"] = [_address("recipient", to) for to in message.to]
    msg["Subject"] = check_header("subject", message.subject)
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = message_id(idempotency_key, domain)
    msg["X-Csops-Category"] = category
    if key_header:
        msg["X-Csops-Idempotency-Key"] = idempotency_key
    body = message.body.replace("\r\n", "\n").replace("\r", "\n")  # one line-end convention: no smuggled "\r."
    if "\x00" in body:
        raise PermanentError("the body contains a NUL character, which SMTP cannot carry; fix the template")
    if category == MARKETING:
        body = _add_unsubscribe(msg, message, body, required=require_unsubscribe)
    msg.set_content(body)
    return msg


def _add_unsubscribe(msg: EmailMessage, message: OutgoingEmail, body: str, *, required: bool) -> str:
    if not message.unsubscribe_url:
        if required:
            raise PermanentError("marketing email needs an unsubscribe link and none is set: configure "
                                 "email.unsubscribe (url, mailto, secret) in csops.yaml")
        return body
    if len(message.to) != 1:
        raise PermanentError("marketing email goes to one recipient per message (each gets its own "
                             "unsubscribe link)")
    url = _uri("unsubscribe URL", message.unsubscribe_url, "https://")
    uris = [f"<{url}>"]
    if message.unsubscribe_mailto:
        uris.append(f"<{_uri('unsubscribe mailto', message.unsubscribe_mailto, 'mailto:')}>")
    # RFC 8058: the HTTPS URI answers a POST of "List-Unsubscribe=One-Click" with no further step.
    msg[_LIST_UNSUBSCRIBE] = ", ".join(uris)
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    body = body.rstrip("\n")
    return f"{body}\n\n--\nTo stop receiving these emails, unsubscribe here: {url}\n"
