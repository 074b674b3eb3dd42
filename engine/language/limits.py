"""What validation can see of the run-time limits: constant forms that would go over them, and
attributes the sandbox refuses.

The sandbox (engine.language.sandbox) stops every evaluation at its limits whatever the data. This reader
finds, in a parsed text, the forms that are bound to hit a limit whatever the data —
``'A' * 4000000000``, ``x ** (9 ** 9)``, ``range(100000)``, ``'x' | center(4000000000)``, nested
loops of more than MAX_WORK iterations, ``lipsum`` — and attributes such as ``__class__`` or
``mro``, so ``csops validate`` reports them (``unbounded-expression``, ``unsafe-attribute``)
instead of a run failing later. Only constants are judged: ``'A' * account.arr`` is left to the
sandbox.
"""

from __future__ import annotations

import re
from typing import Any

from jinja2 import nodes
from jinja2.sandbox import (
    UNSAFE_ASYNC_GENERATOR_ATTRIBUTES,
    UNSAFE_COROUTINE_ATTRIBUTES,
    UNSAFE_GENERATOR_ATTRIBUTES,
)

from engine.language.sizes import (
    MAX_BUSINESS_DAYS,
    MAX_INT_BITS,
    MAX_RANGE,
    MAX_TEXT,
    MAX_WORK,
    LimitExceeded,
    check_brace_format,
    check_percent_format,
)

UNSAFE = frozenset({"mro", "func_globals", "func_code", "func_closure", "f_globals", "f_locals", "f_back", "f_code",
                    "tb_frame", "tb_next", "co_code", *UNSAFE_GENERATOR_ATTRIBUTES, *UNSAFE_COROUTINE_ATTRIBUTES,
                    *UNSAFE_ASYNC_GENERATOR_ATTRIBUTES})
"""Attributes of Python internals (besides those starting with ``_``) that the sandbox refuses."""

_ATTR_FILTERS = {"attr", "selectattr", "rejectattr", "map", "sort", "groupby", "sum", "unique", "min", "max"}
_WIDTH_METHODS = {"center", "ljust", "rjust", "zfill"}
WATCHED = re.compile(r"\b(?:range|lipsum|business_days|center|ljust|rjust|zfill|indent|format|format_map|batch|slice"
                     r"|tojson|attr|selectattr|rejectattr|" + "|".join(sorted(UNSAFE)) + r")\b|\._|\[\s*['\"]_")
"""Texts the fast reader of engine.language.refs leaves to Jinja2's parser, so that this reader sees them."""

Finding = tuple[str, str, tuple[str, ...], int]
"""(kind: "unsafe" or "unbounded", attribute or message, texts to point at, 0-based line)."""

_HUGE = 1 << (MAX_INT_BITS + 2)
"""Stands for a constant too big to compute."""


def unsafe_attribute(name: str, subscript: bool = False) -> bool:
    """Whether the sandbox refuses ``x.name`` (``x['name']``: only Python's own ``__`` names)."""
    if subscript:
        return name.startswith("__") or name in UNSAFE
    return name.startswith("_") or name in UNSAFE


def _int(node: nodes.Node) -> int | None:
    """The value of a constant whole-number expression (``9 ** 9``), _HUGE past the limits."""
    if isinstance(node, nodes.Const) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, nodes.Neg):
        inner = _int(node.node)
        return -inner if inner is not None else None
    if isinstance(node, (nodes.Pow, nodes.Mul, nodes.Add, nodes.Sub)):
        left, right = _int(node.left), _int(node.right)
        if left is None or right is None:
            return None
        if _HUGE in (abs(left), abs(right)):
            return _HUGE
        if isinstance(node, nodes.Pow):
            if right < 0:
                return None
            if abs(left) > 1 and (abs(left).bit_length() - 1) * right >= MAX_INT_BITS:
                return _HUGE
            value = int(left**right)
        elif isinstance(node, nodes.Mul):
            if abs(left).bit_length() + abs(right).bit_length() > MAX_INT_BITS + 1:
                return _HUGE
            value = left * right
        else:
            value = left + right if isinstance(node, nodes.Add) else left - right
        return _HUGE if value.bit_length() > MAX_INT_BITS else value
    return None


def _seq_len(node: nodes.Node) -> tuple[int, int] | None:
    """(length, limit) of a constant text or list literal."""
    if isinstance(node, nodes.Const) and isinstance(node.value, str):
        return len(node.value), MAX_TEXT
    if isinstance(node, (nodes.List, nodes.Tuple)):
        return len(node.items), MAX_RANGE
    return None


def _arg(node: nodes.Call | nodes.Filter, index: int, name: str) -> nodes.Expr | None:
    if len(node.args) > index:
        return node.args[index]
    return next((kw.value for kw in node.kwargs if kw.key == name), None)


def _const_str(node: nodes.Node | None) -> str | None:
    return node.value if isinstance(node, nodes.Const) and isinstance(node.value, str) else None


def _format_fields(fmt: str) -> list[str]:
    """Attribute names a ``str.format`` text reads: ``{0.__class__}`` reads ``__class__``."""
    names = []
    for field in re.findall(r"\{([^{}:!]*)", fmt):
        names += re.findall(r"\.([A-Za-z_]\w*)", field) + re.findall(r"\[([^\]]*)\]", field)
    return names


class _Reader:
    def __init__(self) -> None:
        self.found: list[Finding] = []

    def add(self, message: str, needles: tuple[str, ...], node: nodes.Node) -> None:
        self.found.append(("unbounded", message, needles, node.lineno - 1))

    def unsafe(self, name: str, node: nodes.Node) -> None:
        needles = (f".\0{name}", f"['\0{name}']", f'["\0{name}"]', f"'\0{name}", name)
        self.found.append(("unsafe", name, needles, node.lineno - 1))

    def walk(self, node: nodes.Node, loops: int = 1) -> None:
        if isinstance(node, nodes.For):
            times = self.loop_len(node.iter)
            if times is not None and loops * times > MAX_WORK >= loops:
                target = node.target.name if isinstance(node.target, nodes.Name) else ""
                self.add(f"these nested loops would run {loops * times:,} times; the limit is {MAX_WORK:,} "
                         "steps of work", (f"for {target} in", "for"), node)
            self.walk(node.iter, loops)
            for child in [*node.body, *node.else_, *([node.test] if node.test else [])]:
                self.walk(child, loops * (times or 1))
            return
        self.check(node)
        for child in node.iter_child_nodes():
            self.walk(child, loops)

    def loop_len(self, node: nodes.Node) -> int | None:
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range":
            args = [_int(a) for a in node.args]
            if args and None not in args and not node.kwargs and all(abs(a or 0) < _HUGE for a in args):
                try:
                    return len(range(*[a or 0 for a in args]))
                except (ValueError, TypeError):
                    return None
        seq = _seq_len(node)
        return seq[0] if seq else None

    def check(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr) and unsafe_attribute(node.attr):
            self.unsafe(node.attr, node)
        elif isinstance(node, nodes.Getitem) and unsafe_attribute(_const_str(node.arg) or "", subscript=True):
            self.unsafe(str(_const_str(node.arg)), node)
        elif isinstance(node, nodes.Name) and node.name == "lipsum" and node.ctx == "load":
            self.add("lipsum() is not available: it makes text of any length", ("lipsum",), node)
        elif isinstance(node, nodes.Mul):
            self.repeat(node)
        elif isinstance(node, nodes.Pow):
            self.power(node)
        elif isinstance(node, nodes.Mod) and (fmt := _const_str(node.left)) is not None:
            self.widths(check_percent_format, fmt, node)
        elif isinstance(node, nodes.Call):
            self.call(node)
        elif isinstance(node, nodes.Filter):
            self.filter(node)

    def repeat(self, node: nodes.Mul) -> None:
        for seq_node, n_node in ((node.left, node.right), (node.right, node.left)):
            seq, n = _seq_len(seq_node), _int(n_node)
            if seq is not None and n is not None and seq[0] * n > seq[1]:
                what = "text" if seq[1] == MAX_TEXT else "list"
                shown = f"{n:,}" if n < _HUGE else "a huge number of"
                self.add(f"a {what} repeated {shown} times is over the limit of {seq[1]:,}", (str(n), "*"), node)
                return
        if _int(node) == _HUGE:
            self.add(f"this product has more than {MAX_INT_BITS:,} bits", (" \0* ", "*"), node)

    def power(self, node: nodes.Pow) -> None:
        base, exp = _int(node.left), _int(node.right)
        if exp is None or exp <= 0:
            return
        if (base is None and exp >= MAX_INT_BITS) or (base is not None and _int(node) == _HUGE):
            shown = f"{exp:,}" if exp < _HUGE else "a huge number"
            self.add(f"a power with exponent {shown} has more than {MAX_INT_BITS:,} bits", ("**",), node)

    def widths(self, check: Any, fmt: str, node: nodes.Node) -> None:
        try:
            check(fmt)
        except LimitExceeded:
            self.add(f"a format width over the limit of {MAX_TEXT:,} characters", (fmt[:20],), node)

    def call(self, node: nodes.Call) -> None:
        fn = node.node
        if isinstance(fn, nodes.Name) and fn.name == "range":
            n = self.loop_len(node)
            if n is not None and n > MAX_RANGE:
                self.add(f"range() of {n:,} items; the limit is {MAX_RANGE:,}", ("range",), node)
        elif isinstance(fn, nodes.Name) and fn.name == "business_days":
            n = _int(node.args[0]) if node.args else None
            if n is not None and abs(n) > MAX_BUSINESS_DAYS:
                self.add(f"business_days() of more than {MAX_BUSINESS_DAYS:,} days", ("business_days",), node)
        elif isinstance(fn, nodes.Getattr) and fn.attr in _WIDTH_METHODS:
            width = _int(_arg(node, 0, "width") or nodes.Const(0))
            if width is not None and width > MAX_TEXT:
                self.add(f"{fn.attr}() width over the limit of {MAX_TEXT:,}", (f".\0{fn.attr}", fn.attr), node)
        elif isinstance(fn, nodes.Getattr) and fn.attr in ("format", "format_map"):
            fmt = _const_str(fn.node)
            if fmt is not None:
                self.widths(check_brace_format, fmt, node)
                for name in _format_fields(fmt):
                    if unsafe_attribute(name.strip("'\""), subscript=True) or unsafe_attribute(name):
                        self.unsafe(name, node)

    def filter(self, node: nodes.Filter) -> None:
        name = node.name
        if name in ("center", "indent"):
            width = _int(_arg(node, 0, "width") or nodes.Const(0))
            if width is not None and width > MAX_TEXT:
                self.add(f"{name} width over the limit of {MAX_TEXT:,}", (name,), node)
        elif name in ("batch", "slice"):
            count = _int(_arg(node, 0, "linecount" if name == "batch" else "slices") or nodes.Const(0))
            if count is not None and count > MAX_RANGE:
                self.add(f"{name} of more than {MAX_RANGE:,}", (name,), node)
        elif name == "tojson":
            indent = _int(_arg(node, 0, "indent") or nodes.Const(0))
            if indent is not None and indent > 16:
                self.add("tojson indent over the limit of 16", ("tojson",), node)
        elif name == "format" and node.node is not None and (fmt := _const_str(node.node)) is not None:
            self.widths(check_percent_format, fmt, node)
        if name in _ATTR_FILTERS:
            texts = [_const_str(a) for a in node.args[:1]] if name in ("attr", "selectattr", "rejectattr") else []
            texts += [_const_str(kw.value) for kw in node.kwargs if kw.key == "attribute"]
            for text in texts:
                for part in (text or "").split("."):
                    if unsafe_attribute(part):
                        self.unsafe(part, node)


def limit_findings(tree: nodes.Node) -> list[Finding]:
    """The limits and unsafe attributes a parsed expression or template runs into whatever the data."""
    reader = _Reader()
    reader.walk(tree)
    return reader.found
