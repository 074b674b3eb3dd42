"""The one message builder: an ``OutgoingEmail`` and its idempotency key become an RFC 5322 message.

csops writes every header line itself; the email package only writes the body. Text that a
template or account data can reach (subject, display names) is never handed to a header parser,
so an ``=?...?=`` in it is never decoded and re-folded (the route of CVE-2024-6923): it is sent
as typed when it is plain ASCII words, and otherwise as csops's own RFC 2047 encoded words
(UTF-8, base64; connectors/mailheaders.py), which any reader decodes back to exactly that text.
As a last guard the written bytes are parsed again and the message is refused unless the header
lines, their values and the body are exactly the ones csops wrote.

Values are checked first: CR, LF, NUL and every other control character, the Unicode line and
paragraph separators (U+2028, U+2029) and NEL (U+0085) are refused, also inside an encoded word
the value carries; addresses must be plain ``name@example.com``. The Message-ID is a hash of
the idempotency key, so a retried send carries the same Message-ID and a receiver can drop the
duplicate. Marketing mail gets the RFC 8058 one-click unsubscribe headers and a visible
unsubscribe line at the end of the body.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import quopri
import re
import unicodedata
from dataclasses import dataclass
from email import policy as email_policy
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import formatdate
from typing import Any

from connectors.base import OutgoingEmail, PermanentError
from connectors.mailheaders import fold, phrase, unstructured

__all__ = ["MAIL_POLICY", "Built", "build", "check_address", "check_header", "message_id"]

MARKETING = "marketing"
# A dot-atom local part and a dotted host name: no quoted local parts, comments or domain literals,
# which nothing here needs and which are where address parsers disagree.
_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                      r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*")
_CATEGORY = re.compile(r"[a-z][a-z0-9_-]{0,39}")
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([qQbB])\?([^?\s]*)\?=")
_URI = re.compile(r"[!#-;=?-~]+")  # printable ASCII without space, '"', '<' and '>'
_BODY_HEADERS = ("Content-Type", "Content-Transfer-Encoding", "MIME-Version")

MAIL_POLICY = email_policy.SMTP.clone(cte_type="7bit")
"""How bodies are written: CRLF line ends, 7-bit transfer encodings (quoted-printable or base64 for
non-ASCII text), so no server needs 8BITMIME."""


@dataclass(frozen=True)
class Built:
    """A message as written: its bytes and the header lines csops wrote (name, unfolded value)."""

    data: bytes
    """The whole message, CRLF line ends, 7-bit."""
    headers: tuple[tuple[str, str], ...]
    """Every header line in order, body headers included."""

    def as_bytes(self) -> bytes:
        """The message as it goes on the wire or into a file."""
        return self.data

    def __getitem__(self, name: str) -> str | None:
        """The first value written for header ``name`` (as written: encoded words stay encoded)."""
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def parsed(self) -> EmailMessage:
        """The message as a reader sees it (``policy.default``: encoded words decoded)."""
        msg = BytesParser(policy=email_policy.default).parsebytes(self.data)
        assert isinstance(msg, EmailMessage)
        return msg


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
                continue  # an unknown charset: csops sends the word as literal text anyway
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
    # Only to refuse words that plainly carry control characters; safety does not depend on it
    # (csops never lets anything decode the words in user text before sending).
    try:
        if encoding in "qQ":
            return quopri.decodestring(text.replace("_", " ").encode("ascii"), header=True)
        return base64.b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        return b""


def check_address(field: str, addr: str) -> str:
    """Return the plain address ``addr`` (``name@example.com``, stripped) or raise.

    Raises:
        PermanentError: a control character or line break, an encoded word (``=?...?=``), or not
            one plain ASCII address.
    """
    check_header(field, addr)
    addr = addr.strip()
    if not addr:
        raise PermanentError(f"the {field} is empty: an email needs a sender and at least one recipient")
    if len(addr) > 254 or not _ADDRESS.fullmatch(addr) or "=?" in addr or "?=" in addr:
        raise PermanentError(f"the {field} {addr[:100]!r} is not a plain email address (name@example.com)")
    return addr


# --- header values ------------------------------------------------------------------------------------

def _mailbox(field: str, addr: str, name: str = "") -> list[str]:
    addr = check_address(field, addr)
    name = check_header(f"{field} name", name).strip()
    return [*phrase(name), f"<{addr}>"] if name else [addr]


def _uri(field: str, value: str, scheme: str) -> str:
    check_header(field, value)
    if not value.startswith(scheme) or not _URI.fullmatch(value) or len(value) > 900 or "=?" in value:
        raise PermanentError(f"the {field} {value[:100]!r} is not a {scheme} URI without spaces, <> or =?")
    return value


# --- the message --------------------------------------------------------------------------------------


def build(message: OutgoingEmail, idempotency_key: str, *, domain: str = "csops.local",
          key_header: bool = False, require_unsubscribe: bool = True) -> Built:
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
            headers, an unknown category, marketing mail without an unsubscribe URL, or a message
            that does not read back exactly as written. Nothing else: building is deterministic,
            so whatever goes wrong here is not worth retrying.
    """
    try:
        return _build(message, idempotency_key, domain, key_header, require_unsubscribe)
    except PermanentError:
        raise
    except Exception as exc:  # e.g. the email package's InvalidHeaderDefect: same input, same outcome
        raise PermanentError(f"csops cannot write this email ({type(exc).__name__}: {str(exc)[:200]}); "
                             "check the addresses and texts the step uses") from exc


def _build(message: OutgoingEmail, key: str, domain: str, key_header: bool, require_unsubscribe: bool) -> Built:
    if not message.to:
        raise PermanentError("an email needs at least one recipient")
    if not _DOMAIN.fullmatch(domain):
        raise PermanentError(f"the Message-ID domain {domain[:100]!r} is not a host name (example.com)")
    check_header("idempotency key", key)
    category = check_header("category", message.category)
    if not _CATEGORY.fullmatch(category):
        raise PermanentError(f"the category {category[:40]!r} is not a category name (operational or marketing)")
    recipients: list[str] = []
    for i, to in enumerate(message.to):
        recipients += [p + ("," if i < len(message.to) - 1 else "") for p in _mailbox("recipient", to)]
    headers: list[tuple[str, list[str]]] = [
        ("From", _mailbox("sender", message.sender, message.sender_name)),
        ("To", recipients),
        ("Subject", unstructured(check_header("subject", message.subject))),
        ("Date", [formatdate(usegmt=True)]),
        ("Message-ID", [message_id(key, domain)]),
        ("X-Csops-Category", [category]),
    ]
    if key_header:
        headers.append(("X-Csops-Idempotency-Key", unstructured(key)))
    body = message.body.replace("\r\n", "\n").replace("\r", "\n")  # one line-end convention: no smuggled "\r."
    if "\x00" in body:
        raise PermanentError("the body contains a NUL character, which SMTP cannot carry; fix the template")
    if message.category == MARKETING:
        body = _add_unsubscribe(headers, message, body, required=require_unsubscribe)
    part = EmailMessage(policy=MAIL_POLICY)
    part.set_content(body)  # only the body: its three headers hold no text of ours
    written = [(name, fold(name, pieces)) for name, pieces in headers]
    data = b"".join(f"{name}: {value}\r\n".encode("ascii") for name, value in written) + part.as_bytes()
    expected = [(name, value.replace("\r\n", "")) for name, value in written]
    expected += [(name, str(part[name])) for name in _BODY_HEADERS]
    _verify(data, expected, body, message)
    return Built(data=data, headers=tuple(expected))


def _add_unsubscribe(headers: list[tuple[str, list[str]]], message: OutgoingEmail, body: str, *,
                     required: bool) -> str:
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
    # Folded only between URIs: receivers do not decode encoded words in List-Unsubscribe.
    headers.append(("List-Unsubscribe", [u + ("," if i < len(uris) - 1 else "") for i, u in enumerate(uris)]))
    headers.append(("List-Unsubscribe-Post", ["List-Unsubscribe=One-Click"]))
    body = body.rstrip("\n")
    return f"{body}\n\n--\nTo stop receiving these emails, unsubscribe here: {url}\n"


def _verify(data: bytes, expected: list[tuple[str, str]], body: str, message: OutgoingEmail) -> None:
    """Refuse unless ``data`` reads back as exactly the header lines and body that were written.

    Read twice: raw (compat32: line by line, nothing decoded), and as readers decode it.
    """
    raw: Any = BytesParser(policy=email_policy.compat32).parsebytes(data)
    got = [(str(name), str(value).replace("\r\n", "").replace("\n", "")) for name, value in raw.items()]
    problem = ""
    if got != expected or raw.defects:
        problem = f"its header lines read back as {[n for n, _ in got]}, not {[n for n, _ in expected]}"
    else:
        read = BytesParser(policy=email_policy.default).parsebytes(data)
        sender = read["From"].addresses[0] if read["From"] and len(read["From"].addresses) == 1 else None
        if str(read["Subject"]) != message.subject:
            problem = "its subject does not read back as written"
        # Spaces aside: readers differ on those between encoded words of a name (mailheaders.phrase).
        elif sender is None or "".join(sender.display_name.split()) != "".join(message.sender_name.split()):
            problem = "its sender name does not read back as written"
        elif read.get_content().replace("\r\n", "\n") != (body if body.endswith("\n") else body + "\n"):
            problem = "its body does not read back as written"
    if problem:
        raise PermanentError(f"csops refused to send this email: {problem}; nothing was sent",
                             detail=repr(data[:2000]))
