"""Reading a JSON request body safely: size, media type, encoding, nesting, numbers and strings.

The API parses ``POST /v1/events`` bodies here rather than letting FastAPI do it, so that every
hostile body is a 4xx with the error envelope, never a 500: a body nested 100,000 deep (Python's
parser would raise RecursionError), a 5,000-digit number (int() refuses over 4,300 digits), NaN or
1e999 (not JSON, and the store refuses them), a lone UTF-16 surrogate (cannot be written back as
UTF-8), a key given twice (which one counts?). The limits are documented in docs/api.md.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import AsyncIterable
from typing import TYPE_CHECKING, Any

from engine.errors import CsopsError

if TYPE_CHECKING:
    from fastapi import Request

__all__ = ["BODY_CODES", "MAX_BODY", "MAX_DEPTH", "MAX_NUMBER", "MAX_STRING", "BodyError", "json_media_type",
           "parse_json", "read_body", "read_limited"]

BODY_CODES = ("malformed_json", "duplicate_key", "limit_exceeded", "body_too_large", "unsupported_media_type")
"""What a :class:`BodyError` can say: not JSON; a key twice; nesting, a number or a text over its limit;
the body over MAX_BODY; a Content-Type that is not JSON."""

MAX_BODY = 4 * 1024 * 1024
"""Largest request body in bytes (413 above it): room for a full batch of ~4 KB events."""
MAX_DEPTH = 32
"""Deepest nesting of arrays and objects in a body (the body itself is level 1; a batch's event
``data`` object is level 4, so its values can nest 28 more levels)."""
MAX_NUMBER = 100
"""Most characters in one JSON number (sign, digits, point and exponent); floats must be finite."""
MAX_STRING = 65_536
"""Most characters in one JSON string, keys included."""


class BodyError(CsopsError):
    """A body that cannot be taken: ``code`` (one of :data:`BODY_CODES`), ``message`` and ``details``.

    ``csops event`` shares :func:`parse_json`; the API answers each code with its status at its
    boundary (engine/api/api_errors.py).
    """

    def __init__(self, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.code, self.message, self.details = code, message, details


def _limit(what: str, most: int, message: str, where: str = "") -> BodyError:
    details: dict[str, Any] = {"limit": what, "max": most}
    if where:
        details["where"] = where
    return BodyError("limit_exceeded", message, details)


def json_media_type(content_type: str | None) -> bool:
    """Whether a Content-Type header allows a JSON body (absent counts as yes: many senders omit it)."""
    if not content_type:
        return True
    kind = content_type.split(";", 1)[0].strip().lower()
    return kind in ("application/json", "*/*") or (kind.startswith("application/") and kind.endswith("+json"))


async def read_limited(chunks: AsyncIterable[bytes], content_length: str | None, *, limit: int = MAX_BODY) -> bytes:
    """The whole body, refusing one over ``limit`` bytes without reading it all.

    Raises:
        BodyError: ``body_too_large``, the body (or its declared length) is over the limit.
    """
    too_big = BodyError("body_too_large", f"the body is over {limit} bytes ({limit // 1024 // 1024} MiB): "
                        "send fewer events per request, in several requests", {"limit": "body", "max": limit})
    if content_length and content_length.strip().isdigit() and int(content_length) > limit:
        raise too_big
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_big
        parts.append(chunk)
    return b"".join(parts)


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out = dict(pairs)
    if len(out) == len(pairs):  # no key twice: the common case, without a Python loop
        return out
    out = {}
    for key, value in pairs:
        if key in out:
            raise BodyError("duplicate_key", f"the key {key[:60]!r} appears twice in one object; "
                            "send each key once (which of the two values was meant cannot be known)")
        out[key] = value
    return out


def _constant(name: str) -> Any:
    raise BodyError("malformed_json", f"{name} is not a JSON value; send a number, or null for no value")


def _int(text: str) -> int:
    if len(text) > MAX_NUMBER:
        raise _limit("number", MAX_NUMBER, f"a number has {len(text)} characters, over the limit of {MAX_NUMBER}: "
                     "send large values as text")
    return int(text)


def _float(text: str) -> float:
    if len(text) > MAX_NUMBER:
        raise _limit("number", MAX_NUMBER, f"a number has {len(text)} characters, over the limit of {MAX_NUMBER}: "
                     "send large values as text")
    value = float(text)
    if not math.isfinite(value):
        raise _limit("number", MAX_NUMBER, f"the number {text[:40]} is too large for a 64-bit float; "
                     "send large values as text")
    return value


def parse_json(body: bytes) -> Any:
    """The JSON document of a body, within the limits (MAX_DEPTH, MAX_NUMBER, MAX_STRING).

    Raises:
        BodyError: ``malformed_json`` for an empty body, bad UTF-8, invalid JSON or NaN/Infinity,
            ``duplicate_key``, ``limit_exceeded`` for nesting, a number or a string over its limit.
    """
    if not body.strip():
        raise BodyError("malformed_json", "the body is empty; send one event object or {\"events\": [...]} "
                        "with Content-Type: application/json")
    try:
        text = body.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise BodyError("malformed_json", f"the body is not UTF-8 (byte {exc.start} is not valid): "
                        "send JSON encoded as UTF-8") from None
    try:
        doc = json.loads(text, object_pairs_hook=_pairs, parse_constant=_constant, parse_int=_int,
                         parse_float=_float)
    except RecursionError:
        raise _limit("depth", MAX_DEPTH, f"the body nests arrays and objects more than {MAX_DEPTH} deep; "
                     "flatten the data") from None
    except json.JSONDecodeError as exc:
        raise BodyError("malformed_json", f"the body is not valid JSON ({exc}); send one event object or "
                        '{"events": [...]} with Content-Type: application/json') from None
    _check(doc, text)
    return doc


_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")
"""A \\uD800-\\uDFFF escape in JSON text: the only way a parsed string can hold a lone surrogate (UTF-8 that
decoded has none). Also matches an escaped backslash before such letters, which only costs the full check."""


def _check(doc: Any, text: str) -> None:
    """Depth and strings of a parsed document; the walk that names where the fault is runs only when there is one.

    When the text itself rules the strings' faults out (no string is longer than the whole text, and
    without a surrogate escape none holds a lone surrogate), only the nesting is walked: the objects
    and arrays, not each string of a batch."""
    if len(text) <= MAX_STRING and not _SURROGATE.search(text):
        if not _shallow(doc, 1):
            _find(doc)
    elif not _fine(doc, 1):
        _find(doc)


def _shallow(value: Any, depth: int) -> bool:
    """Whether no object or array nests deeper than MAX_DEPTH (recursion stops past it); ``value`` is the document
    or an object or array in it."""
    if depth > MAX_DEPTH:
        return False
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list) else ()
    for item in items:  # noqa: SIM110 - a loop, not all() over a generator: that costs a frame per object
        # a tuple, not dict | list: isinstance takes half the time with it, once per value of the body
        if isinstance(item, (dict, list)) and not _shallow(item, depth + 1):
            return False
    return True


def _fine(value: Any, depth: int) -> bool:
    """Whether ``_find`` finds nothing: the same checks, no paths built (recursion stops past MAX_DEPTH)."""
    if isinstance(value, str):
        return len(value) <= MAX_STRING and (value.isascii() or _text(value))
    if isinstance(value, dict):
        if depth > MAX_DEPTH:
            return False
        for key, item in value.items():
            if len(key) > MAX_STRING or not (key.isascii() or _text(key)):
                return False
            if isinstance(item, dict | list | str) and not _fine(item, depth + 1):
                return False
        return True
    if isinstance(value, list):
        if depth > MAX_DEPTH:
            return False
        for item in value:
            if isinstance(item, dict | list | str) and not _fine(item, depth + 1):
                return False
    return True


def _text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _find(doc: Any) -> None:
    """Depth and strings of a parsed document, without recursion (the path says where the fault is)."""
    todo: list[tuple[Any, int, str]] = [(doc, 1, "")]
    while todo:
        value, depth, path = todo.pop()
        if isinstance(value, str):
            _check_string(value, path or "(body)")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth > MAX_DEPTH:
            raise _limit("depth", MAX_DEPTH, f"{path or '(body)'}: nested more than {MAX_DEPTH} deep; "
                         "flatten the data", path)
        if isinstance(value, dict):
            for key, item in value.items():
                name = key[:60].encode("utf-8", "backslashreplace").decode("utf-8")
                where = f"{path}.{name}" if path else name
                _check_string(key, f"{where} (the key)")
                todo.append((item, depth + 1, where))
        else:
            todo.extend((item, depth + 1, f"{path}[{i}]") for i, item in enumerate(value))


def _check_string(text: str, where: str) -> None:
    if len(text) > MAX_STRING:
        raise _limit("string", MAX_STRING, f"{where}: a text of {len(text)} characters, over the limit of "
                     f"{MAX_STRING}", where)
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise BodyError("malformed_json", f"{where}: holds a lone UTF-16 surrogate (\\ud800-\\udfff "
                            "escaped alone), which is not text; send the character's full pair") from None


async def read_body(request: Request) -> bytes:
    """The body, refusing (413) one over MAX_BODY bytes without reading it all, and (415) one that is not JSON."""
    if not json_media_type(request.headers.get("content-type")):
        raise BodyError("unsupported_media_type", f"the Content-Type is {request.headers['content-type'][:80]!r}; "
                        "send JSON with Content-Type: application/json")
    return await read_limited(request.stream(), request.headers.get("content-length"), limit=MAX_BODY)
