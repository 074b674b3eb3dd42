"""The one redaction point: every configured secret, removed from what csops says, logs or records.

Servers echo secrets back: an SMTP 535 reply that quotes the login (plain or in the base64 AUTH
sent), a Slack error that quotes the token, a URL with a token in its query. Wherever such text
leaves csops it passes through ``redact``: the failures activities raise (and so Temporal's history:
message, details and cause chain), every log record (``install_logging``), and what
``csops check-config`` prints. ``engine/wiring.py`` registers every ``Secret`` of the configuration
when it builds connectors, before any of them runs.

A secret is replaced by ``[redacted]`` as given and in the forms it travels in: base64 at any
alignment inside longer base64 (``\\0user\\0password`` of AUTH PLAIN), URL-safe base64, URL
encoding, and JSON/``repr`` escaping. Secrets shorter than ``MIN_LENGTH`` characters are not
registered: redacting them would blank out ordinary words.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
from typing import Any
from urllib.parse import quote, quote_plus

__all__ = ["MIN_LENGTH", "REDACTED", "RedactFilter", "install_logging", "redact", "redact_value", "register",
           "registered"]

REDACTED = "[redacted]"
MIN_LENGTH = 6
_B64_CORE = 8  # the shortest run of base64 characters taken as a secret's trace

_lock = threading.Lock()
_forms: set[str] = set()
_pattern: re.Pattern[str] | None = None


def register(*secrets: str) -> None:
    """Redact these values (and their encoded forms) from now on, in this process."""
    global _pattern
    added = False
    with _lock:
        for secret in secrets:
            if not isinstance(secret, str) or len(secret) < MIN_LENGTH:
                continue
            for form in _encoded_forms(secret):
                if form not in _forms:
                    _forms.add(form)
                    added = True
        if added:
            # Longest first, so a secret's longer form is replaced whole, not piece by piece.
            _pattern = re.compile("|".join(re.escape(f) for f in sorted(_forms, key=len, reverse=True)))


def registered() -> int:
    """How many forms are registered (0: nothing to redact)."""
    return len(_forms)


def redact(text: str) -> str:
    """``text`` with every registered secret form replaced by ``[redacted]``."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(REDACTED, text)


def redact_value(value: Any) -> Any:
    """``value`` with every string in it redacted (lists, tuples and dicts walked; others as they are)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, bytes):
        return redact(value.decode("utf-8", "replace")).encode("utf-8")
    if isinstance(value, list | tuple):
        return type(value)(redact_value(v) for v in value)
    if isinstance(value, dict):
        return {redact_value(k): redact_value(v) for k, v in value.items()}
    return value


def _encoded_forms(secret: str) -> set[str]:
    raw = secret.encode("utf-8")
    forms = {secret, quote(secret, safe=""), quote_plus(secret), json.dumps(secret)[1:-1], repr(secret)[1:-1]}
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        forms.add(encode(raw).decode("ascii"))
        forms.add(encode(raw).decode("ascii").rstrip("="))
        # Inside longer base64 the secret starts at byte offset 0, 1 or 2 of a 3-byte group; the
        # groups made of its bytes only encode the same whatever comes before or after.
        for offset in range(3):
            encoded = encode(b"\0" * offset + raw).decode("ascii")
            start = 4 if offset else 0
            end = (offset + len(raw)) // 3 * 4
            if end - start >= _B64_CORE:
                forms.add(encoded[start:end])
    return {f for f in forms if len(f) >= MIN_LENGTH}


class RedactFilter(logging.Filter):
    """Redacts a record in place: its message and arguments, and its traceback text.

    A record without a secret is left exactly as it is (formatters such as uvicorn's read
    ``args`` as a tuple); one with a secret keeps its shape where it can.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if _pattern is None:
            return True
        message = _message(record)
        if redact(message) != message:
            record.msg = redact(record.msg) if isinstance(record.msg, str) else record.msg
            if isinstance(record.args, tuple):
                record.args = tuple(_argument(a) for a in record.args)
            elif isinstance(record.args, dict):
                record.args = {k: _argument(v) for k, v in record.args.items()}
            shown = _message(record)
            if redact(shown) != shown:  # a secret split between the format and its arguments
                record.msg, record.args = redact(message), None
        if record.exc_info and not record.exc_text:
            text = logging.Formatter().formatException(record.exc_info)
            if redact(text) != text:
                record.exc_text = redact(text)
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


def _message(record: logging.LogRecord) -> str:
    try:
        return record.getMessage()
    except Exception:  # noqa: BLE001 - a bad format string: judge what there is
        return str(record.msg)


def _argument(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float):
        return value  # cannot hold a secret, and %d needs a number
    return redact(value if isinstance(value, str) else str(value))


_installed: list[bool] = []


def install_logging() -> None:
    """Redact every log record of this process from its creation, whichever handler writes it
    (handlers added later, such as a test's, included). Idempotent."""
    with _lock:
        if _installed:
            return
        _installed.append(True)
    make = logging.getLogRecordFactory()
    redacting = RedactFilter()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redacting.filter(record)
        return record

    logging.setLogRecordFactory(factory)
