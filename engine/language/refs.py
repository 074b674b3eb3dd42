"""What an expression or template refers to: names with attribute chains, filters and tests.

Checking names is split in two: extracting the references of a text (this module, a pure function
of the text and so cached), and checking them against the scope of the place the text is used
(engine.language.expressions). Extraction has two readers that give identical results: a small reader for
the simple forms that make up nearly every playbook (``{{ account.name | date }}``,
``account.arr >= 10000``), and Jinja2's own parser for everything else. Jinja2's lexer costs
~50 µs per text, which across a book of playbooks is most of the validation time; anything the
simple reader does not fully understand goes to Jinja2, so it can only be faster, never laxer
(tests/unit/test_refs.py checks the two agree).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import TemplateSyntaxError, nodes
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

from engine.language.limits import WATCHED as _WATCHED
from engine.language.limits import limit_findings

#: attrs: a str per ``.name`` or constant ``['key']``; "[]" for a constant index; None for a
#: dynamic subscript (nothing after it can be checked).
Attrs = tuple[str | None, ...]


@dataclass(frozen=True, slots=True)
class Ref:
    """One reference: ``kind`` is "name" (a root name and its chain), "filter" or "test"."""

    kind: str
    name: str
    attrs: Attrs = ()
    line: int = 0
    """0-based line within the text."""


@dataclass(frozen=True, slots=True)
class SyntaxProblem:
    """The text does not parse."""

    message: str
    line: int


Extracted = tuple[Ref, ...] | SyntaxProblem


def jinja_expression_refs(env: ImmutableSandboxedEnvironment, src: str) -> Extracted:
    """References of a bare expression, read by Jinja2 (as ``compile_expression`` parses it)."""
    try:
        parser = Parser(env, src, state="variable")
        expr = parser.parse_expression()
        if not parser.stream.eos:
            tok = parser.stream.current
            return SyntaxProblem(f"unexpected {tok.value!r} after the expression", tok.lineno - 1)
    except TemplateSyntaxError as exc:
        return SyntaxProblem(exc.message or "syntax error", max(0, (exc.lineno or 1) - 1))
    return tuple(_Extract().run(expr)) + limit_refs(expr)


def limit_refs(tree: nodes.Node) -> tuple[Ref, ...]:
    """What the limits reader finds in a parsed text, as refs."""
    return tuple(Ref(kind, name, needles, line) for kind, name, needles, line in limit_findings(tree))


def jinja_template_refs(env: ImmutableSandboxedEnvironment, src: str) -> Extracted:
    """References of a template, read by Jinja2."""
    try:
        tree = env.parse(src)
    except TemplateSyntaxError as exc:
        return SyntaxProblem(exc.message or "syntax error", max(0, (exc.lineno or 1) - 1))
    return tuple(_Extract().run(tree)) + limit_refs(tree)


class _Extract:
    """Walks a Jinja2 tree in source order; names bound by set/for/macro are not references."""

    def __init__(self) -> None:
        self.refs: list[Ref] = []

    def run(self, node: nodes.Node) -> list[Ref]:
        self._walk(node, set())
        return self.refs

    def _walk(self, node: nodes.Node, local: set[str]) -> None:
        if isinstance(node, nodes.For):
            self._walk(node.iter, local)
            inner = local | _targets(node.target) | {"loop"}
            for child in [*([node.test] if node.test else []), *node.body]:
                self._walk(child, inner)
            for child in node.else_:
                self._walk(child, local)
        elif isinstance(node, (nodes.Assign, nodes.AssignBlock)):
            for child in node.iter_child_nodes(exclude=("target",)):
                self._walk(child, local)
            local |= _targets(node.target)
        elif isinstance(node, (nodes.Macro, nodes.CallBlock)):
            if isinstance(node, nodes.Macro):
                local |= {node.name}  # a macro may call itself, and is defined after its block
            inner = local | {a.name for a in node.args} | {"caller", "varargs", "kwargs"}
            for child in node.body:
                self._walk(child, inner)
        elif isinstance(node, (nodes.Getattr, nodes.Getitem, nodes.Name)):
            self._chain(node, local)
        elif isinstance(node, (nodes.Filter, nodes.Test)):
            # the filtered value first: refs come out in source order
            if node.node is not None:
                self._walk(node.node, local)
            kind = "filter" if isinstance(node, nodes.Filter) else "test"
            self.refs.append(Ref(kind, node.name, (), node.lineno - 1))
            for child in node.iter_child_nodes(exclude=("node",)):
                self._walk(child, local)
        else:
            for child in node.iter_child_nodes():
                self._walk(child, local)

    def _chain(self, node: nodes.Node, local: set[str]) -> None:
        attrs: list[str | None] = []
        dynamic: list[nodes.Node] = []
        cur = node
        while isinstance(cur, (nodes.Getattr, nodes.Getitem)):
            if isinstance(cur, nodes.Getattr):
                attrs.append(cur.attr)
            elif isinstance(cur.arg, nodes.Const) and isinstance(cur.arg.value, str):
                attrs.append(cur.arg.value)
            elif isinstance(cur.arg, nodes.Const) and type(cur.arg.value) is int:
                attrs.append("[]")
            else:
                attrs.append(None)
                dynamic.append(cur.arg)
            cur = cur.node
        attrs.reverse()
        if isinstance(cur, nodes.Name):
            if cur.name not in local:
                self.refs.append(Ref("name", cur.name, _cut(attrs), cur.lineno - 1))
        else:
            self._walk(cur, local)
        for arg in reversed(dynamic):
            self._walk(arg, local)


def _cut(attrs: list[str | None]) -> Attrs:
    """Nothing after a dynamic subscript can be checked: keep the chain up to and with it."""
    return tuple(attrs[: attrs.index(None) + 1]) if None in attrs else tuple(attrs)


def _targets(node: nodes.Node) -> set[str]:
    return {n.name for n in node.find_all(nodes.Name)} | ({node.name} if isinstance(node, nodes.Name) else set())


# --- the simple reader ---------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<num>(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?![A-Za-z0-9_.]))"""
    r"""|(?P<str>'[^'\\\n{}%#]*'|"[^"\\\n{}%#]*")|(?P<op>==|!=|<=|>=|[<>+\-*/|.\[\](),]))"""
)
_KEYWORDS = {"and", "or", "not", "in", "is", "if", "else", "true", "false", "none", "True", "False", "None"}
_CONSTS = {"true", "false", "none", "True", "False", "None"}
_BINOPS = {"==", "!=", "<=", ">=", "<", ">", "+", "-", "*", "/", "and", "or", "in"}
_BLOCK = re.compile(r"\{\{(.*?)\}\}")


class _Fail(Exception):
    pass


def _tokens(src: str) -> list[tuple[str, str]]:
    out, pos, end = [], 0, len(src.rstrip())
    while pos < end:
        m = _TOKEN.match(src, pos)
        if m is None or m.end() == pos:
            raise _Fail
        kind = m.lastgroup or ""
        out.append((kind, m.group(kind)))
        pos = m.end()
    return out


class _Simple:
    """expr := unary (BINOP unary)*; unary := ['not'] unary | primary postfix* filter*."""

    def __init__(self, src: str, line: int) -> None:
        self.toks = _tokens(src)
        self.i = 0
        self.line = line
        self.refs: list[Ref] = []

    def peek(self) -> tuple[str, str]:
        return self.toks[self.i] if self.i < len(self.toks) else ("end", "")

    def take(self) -> tuple[str, str]:
        tok = self.peek()
        if tok[0] == "end":
            raise _Fail
        self.i += 1
        return tok

    def expect(self, value: str) -> None:
        if self.take()[1] != value:
            raise _Fail

    def run(self) -> list[Ref]:
        if not self.toks:
            raise _Fail
        self.expr()
        if self.i != len(self.toks):
            raise _Fail
        return self.refs

    def expr(self) -> None:
        self.unary(True)
        while True:
            kind, value = self.peek()
            if kind in ("op", "name") and value in _BINOPS:
                self.i += 1
            elif (kind, value) == ("name", "not") and self.toks[self.i + 1 : self.i + 2] == [("name", "in")]:
                self.i += 2
            else:
                return
            # as in Jinja2's grammar, "not" starts an operand of and/or only: after == it is a name
            self.unary(value in ("and", "or"))

    def unary(self, allow_not: bool) -> None:
        if self.peek() == ("name", "not"):
            if not allow_not:
                raise _Fail
            self.i += 1
            self.unary(True)
            return
        self.primary()
        while self.peek() == ("op", "|"):
            self.i += 1
            kind, name = self.take()
            if kind != "name" or name in _KEYWORDS:
                raise _Fail
            self.refs.append(Ref("filter", name, (), self.line))
            if self.peek() == ("op", "("):
                self.args()

    def primary(self) -> None:
        kind, value = self.take()
        if kind in ("num", "str") or (kind == "name" and value in _CONSTS):
            return
        if (kind, value) == ("op", "["):
            self.separated(self.literal, "]")
            return
        if kind != "name" or value in _KEYWORDS:
            raise _Fail
        attrs: list[str | None] = []
        at = len(self.refs)
        if self.peek() == ("op", "("):
            self.args()
            self.refs.insert(at, Ref("name", value, (), self.line))
            return  # Jinja2 does not check a chain after a call; neither do we
        while True:
            tok = self.peek()
            if tok == ("op", "."):
                self.i += 1
                k, attr = self.take()
                if k != "name":
                    raise _Fail
                attrs.append(attr)
            elif tok == ("op", "["):
                self.i += 1
                k, key = self.take()
                if k == "str":
                    attrs.append(key[1:-1])
                elif k == "num" and "." not in key:
                    attrs.append("[]")
                else:
                    raise _Fail
                self.expect("]")
            else:
                break
        self.refs.insert(at, Ref("name", value, tuple(attrs), self.line))

    def args(self) -> None:
        self.expect("(")
        self.separated(self.arg, ")")

    def separated(self, item: Callable[[], None], close: str) -> None:
        """``item, item, ... close`` (possibly empty); the opening bracket is already taken."""
        if self.peek() != ("op", close):
            item()
            while self.peek() == ("op", ","):
                self.i += 1
                item()
        self.expect(close)

    def arg(self) -> None:
        kind, value = self.peek()
        if kind == "name" and value not in _CONSTS:
            if self.toks[self.i + 1 : self.i + 2] == [("op", "(")]:
                raise _Fail  # calls inside arguments: rare, let Jinja2 read them
            self.primary()
        else:
            self.literal()

    def literal(self) -> None:
        kind, value = self.take()
        if not (kind in ("num", "str") or (kind == "name" and value in _CONSTS)):
            raise _Fail


def simple_expression_refs(src: str, line: int = 0) -> tuple[Ref, ...] | None:
    """References of a simple expression, or None when it is not simple (ask Jinja2).

    Texts the limits reader may have something to say about go to Jinja2 too: the names it
    watches, ``._`` and ``['_``, and a repeat (``*``) of a text or list.
    """
    if "\n" in src or _WATCHED.search(src) or ("*" in src and ("'" in src or '"' in src or "[" in src)):
        return None
    try:
        return tuple(_Simple(src, line).run())
    except (_Fail, IndexError):
        return None


def simple_template_refs(src: str) -> tuple[Ref, ...] | None:
    """References of a template made of text and simple ``{{ }}`` blocks, or None."""
    if "{%" in src or "{#" in src:
        return None
    refs: list[Ref] = []
    last = 0
    for m in _BLOCK.finditer(src):
        if "{{" in src[last : m.start()] or "{{" in m.group(1):
            return None
        inner = simple_expression_refs(m.group(1), src.count("\n", 0, m.start()))
        if inner is None:
            return None
        refs.extend(inner)
        last = m.end()
    if "{{" in src[last:]:
        return None
    return tuple(refs)


@lru_cache(maxsize=8192)
def expression_refs(env: ImmutableSandboxedEnvironment, src: str) -> Extracted:
    """References of a bare expression (cached: a pure function of the text)."""
    simple = simple_expression_refs(src)
    return simple if simple is not None else jinja_expression_refs(env, src)


@lru_cache(maxsize=8192)
def template_refs(env: ImmutableSandboxedEnvironment, src: str) -> Extracted:
    """References of a template (cached: a pure function of the text)."""
    simple = simple_template_refs(src)
    return simple if simple is not None else jinja_template_refs(env, src)
