"""Sizes: what the sandbox (engine.language.sandbox) refuses to build, checked before Python builds it.

A repeat, a padding width, a format width, a join, a replace or a power can ask for gigabytes in
one operation; each is checked here against the documented limits (docs/playbook-reference.md,
section 10, Limits) from the sizes of its operands, so nothing big is ever allocated.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from jinja2.utils import Namespace

from engine.errors import CsopsError

MAX_TEXT = 100_000
"""Characters: a rendered text, and any text built by repeating, padding or formatting."""
MAX_WEIGHT = 1_000_000
"""Size of any value an operation takes or makes: characters of text plus items of lists, nested."""
MAX_PRINTED = 1_000_000
"""Characters printed in all while rendering one text, inside blocks, loops and macros too."""
MAX_RANGE = 10_000
"""Items of one ``range()``, and of one list or text built by repeating or batching."""
MAX_INT_BITS = 4_096
"""Bits of a whole number made by ``**`` or ``*`` (about 1,233 decimal digits)."""
MAX_WORK = 100_000
"""Work units of one evaluation: each loop iteration, call, operator, filter, test, comparison and
printed value costs one, plus one per 100 characters or items it handles."""
MAX_BUSINESS_DAYS = 3660
"""``business_days(n)``: at most this many either way (about 14 years); engine.language.workcalendar enforces it too."""
ACTIVITY_SECONDS = 10.0
"""Wall-clock guard of one render in an activity (the workflow relies on the counts alone)."""


class LimitExceeded(CsopsError, ValueError):
    """An expression or template went over a documented limit: the author's mistake, never retried."""

    def __init__(self, what: str) -> None:
        super().__init__(f"expression limit exceeded: {what} (see the limits in docs/playbook-reference.md)")


def weight(value: Any, cap: int = MAX_WEIGHT) -> int:
    """Characters plus items of ``value``, nested; stops counting just past ``cap``."""
    if isinstance(value, (str, bytes)):
        return len(value)
    total, todo = 0, [value]
    while todo and total <= cap:
        item = todo.pop()
        if isinstance(item, (str, bytes)):
            total += len(item)
        elif isinstance(item, dict):
            total += len(item)
            todo.extend(item.keys())
            todo.extend(item.values())
        elif isinstance(item, (list, tuple, set, frozenset)):
            total += len(item)
            todo.extend(item)
        elif isinstance(item, Namespace):
            todo.append(item._Namespace__attrs)  # printed with its content
        else:
            total += 1
    return total


def check_weight(value: Any, what: str) -> int:
    w = weight(value)
    if w > MAX_WEIGHT:
        raise LimitExceeded(f"{what} is larger than {MAX_WEIGHT:,} characters or items")
    return w


def materialize(value: Any) -> Any:
    """A lazy sequence (map, select...) as a list, counted as it is read: its size is then known."""
    if not isinstance(value, Iterator):
        return value
    out, total = [], 0
    for item in value:
        total += 1 + weight(item)
        if total > MAX_WEIGHT:
            raise LimitExceeded(f"a sequence is larger than {MAX_WEIGHT:,} characters or items")
        out.append(item)
    return out


def _text_size(size: int, what: str) -> None:
    if size > MAX_TEXT:
        raise LimitExceeded(f"{what} would be {size:,} characters; the limit is {MAX_TEXT:,}")


def _int_arg(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


# --- operators ---------------------------------------------------------------------------------

def _repeat(seq: Any, n: Any) -> None:
    count = _int_arg(n)
    if isinstance(seq, (str, bytes)):
        _text_size(len(seq) * count, "a repeated text")
    elif isinstance(seq, (list, tuple)) and count > 0:
        if len(seq) * count > MAX_RANGE:
            raise LimitExceeded(f"a repeated list would have {len(seq) * count:,} items; the limit is {MAX_RANGE:,}")
        if weight(seq) * count > MAX_WEIGHT:
            raise LimitExceeded(f"a repeated list is larger than {MAX_WEIGHT:,} characters or items")


def _bits(n: int) -> int:
    return max(abs(n).bit_length(), 1)


def check_binop(op: str, left: Any, right: Any) -> None:
    """Refuse an operation whose result would be too big, before Python builds it."""
    ints = isinstance(left, int) and isinstance(right, int)
    # a power of a b-bit number has at least (b - 1) * exponent + 1 bits, at most b * exponent
    if op == "**" and ints and right > 0 and abs(left) > 1 and (_bits(left) - 1) * right >= MAX_INT_BITS:
        raise LimitExceeded(f"a power with exponent {right:,} would have more than {MAX_INT_BITS:,} bits")
    if op == "*":
        if ints and _bits(left) + _bits(right) > MAX_INT_BITS + 1:
            raise LimitExceeded(f"a product would have more than {MAX_INT_BITS:,} bits")
        _repeat(left, right)
        _repeat(right, left)
    if op == "%" and isinstance(left, str):
        check_percent_format(left, right if isinstance(right, tuple) else (right,))


# --- formatting widths -------------------------------------------------------------------------

_PERCENT_SPEC = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[a-zA-Z%]")
_BRACE_FIELD = re.compile(r"\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}")


def _widths(found: list[str], args: tuple[Any, ...], kwargs: dict[str, Any], dynamic: bool) -> None:
    for digits in found:
        _text_size(int(digits), "a format width")
    if dynamic:  # the width comes from an argument: `'%*s' % (n, x)`, `'{:{w}}'.format(x, w=n)`
        for arg in (*args, *kwargs.values()):
            _text_size(_int_arg(arg), "a format width")


def check_percent_format(fmt: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
    """Widths and precisions of a ``%`` format (the ``format`` filter, the ``%`` operator)."""
    specs = _PERCENT_SPEC.findall(fmt)
    found = [g for spec in specs for g in spec if g and g != "*"]
    _widths(found, args, kwargs or {}, any("*" in spec for spec in specs))


def check_brace_format(fmt: str, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> None:
    """Widths and precisions of a ``str.format`` text."""
    fields = _BRACE_FIELD.findall(fmt)
    specs = [f.partition(":")[2] for f in fields]
    found = [d for spec in specs for d in re.findall(r"\d+", re.sub(r"\{[^{}]*\}", "", spec))]
    _widths(found, args, kwargs or {}, any("{" in spec for spec in specs))


# --- calls of text methods ---------------------------------------------------------------------

def _arg(args: tuple[Any, ...], kwargs: dict[str, Any], i: int, name: str, default: Any) -> Any:
    return args[i] if len(args) > i else kwargs.get(name, default)


def _replace_size(s: Any, old: Any, new: Any, count: Any) -> None:
    if not (all(isinstance(x, str) for x in (s, old, new)) or all(isinstance(x, bytes) for x in (s, old, new))):
        return
    times = s.count(old) if old else len(s) + 1
    if isinstance(count, int) and count >= 0:
        times = min(times, count)
    _text_size(len(s) + times * max(len(new) - len(old), 0), "a replaced text")


def _join_size(sep: Any, items: list[Any]) -> None:
    total = len(sep) * max(len(items) - 1, 0) if isinstance(sep, (str, bytes)) else 0
    _text_size(total + sum(weight(i) for i in items), "a joined text")


def check_method(obj: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """Padding, replacing, joining and translating methods of texts: refuse results that are too
    long. Returns the arguments (a lazy sequence to join is read into a list first)."""
    owner, name = getattr(obj, "__self__", None), getattr(obj, "__name__", "")
    if not isinstance(owner, (str, bytes)):
        return args
    if name in ("center", "ljust", "rjust", "zfill"):
        _text_size(_int_arg(_arg(args, kwargs, 0, "width", 0)), f"{name}() width")
    elif name == "expandtabs":
        tabs = owner.count("\t") if isinstance(owner, str) else owner.count(b"\t")
        _text_size(len(owner) + tabs * _int_arg(_arg(args, kwargs, 0, "tabsize", 8)), "expandtabs()")
    elif name == "replace":
        _replace_size(owner, _arg(args, kwargs, 0, "old", ""), _arg(args, kwargs, 1, "new", ""),
                      _arg(args, kwargs, 2, "count", -1))
    elif name == "join" and args:
        items = list(materialize(iter(args[0])) if not isinstance(args[0], list) else args[0])
        _join_size(owner, items)
        args = (items, *args[1:])
    elif name == "translate" and args and isinstance(args[0], dict):
        longest = max((weight(v) for v in args[0].values()), default=1)
        _text_size(len(owner) * max(longest, 1), "a translated text")
    return args


# --- filters -----------------------------------------------------------------------------------

def _center(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    _text_size(_int_arg(_arg(args, kw, 1, "width", 80)), "center width")


def _indent(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    s, width = args[0], _arg(args, kw, 1, "width", 4)
    pad = len(width) if isinstance(width, str) else _int_arg(width)
    lines = str(s).count("\n") + 1 if isinstance(s, str) else 1
    _text_size(weight(s) + lines * pad, "an indented text")


def _wordwrap(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    wrap = _arg(args, kw, 4, "wrapstring", None) or "\n"
    _text_size(weight(args[0]) + len(str(wrap)) * (weight(args[0]) + 1), "a wrapped text")


def _replace(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    _replace_size(args[0], _arg(args, kw, 1, "old", ""), _arg(args, kw, 2, "new", ""), _arg(args, kw, 3, "count", -1))


def _join(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    if isinstance(args[0], (list, tuple)):
        _join_size(_arg(args, kw, 1, "d", ""), list(args[0]))


def _format(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    if isinstance(args[0], str):
        check_percent_format(args[0], args[1:], kw)


def _count(index: int, name: str) -> Callable[[tuple[Any, ...], dict[str, Any]], None]:
    def check(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        n = _int_arg(_arg(args, kw, index, name, 0))
        if n > MAX_RANGE:
            raise LimitExceeded(f"{name} {n:,} is over the limit of {MAX_RANGE:,}")
    return check


def _tojson(args: tuple[Any, ...], kw: dict[str, Any]) -> None:
    indent = _arg(args, kw, 1, "indent", None)
    if _int_arg(indent) > 16:
        raise LimitExceeded(f"tojson indent {indent:,} is over the limit of 16")


FILTER_CHECKS: dict[str, Callable[[tuple[Any, ...], dict[str, Any]], None]] = {
    "center": _center, "indent": _indent, "wordwrap": _wordwrap, "replace": _replace, "join": _join,
    "format": _format, "batch": _count(1, "linecount"), "slice": _count(1, "slices"), "tojson": _tojson,
}
