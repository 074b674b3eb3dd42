"""Expression results and milestone probes remembered over one scan of one playbook.

The daily scan asks the same questions of thousands of accounts: ``audience.when: account.arr > 0``,
``entry.key: account.renewal_date``, "is the milestone of this renewal date due". An answer is a pure
function of the few values the expression reads, so it is worked out once per distinct set of
values and looked up after that (a Jinja evaluation costs about 50 µs; a look-up, 2).

Only expressions whose answer provably depends on nothing else are remembered: names, constant
attribute and item look-ups, constants, comparisons, ``and``/``or``/``not``, arithmetic and
``x if c else y`` (no calls, filters or tests: a call could read anything, ``random`` is a filter).
The values read must be plain scalars (text, numbers, booleans, None, dates), compared with their
type, so ``0`` and ``0.0`` and ``False`` are different inputs. Anything else, and every evaluation
that raised, goes through ``engine.language.context.evaluate`` every time, as without a memo: the
answers are the same with or without one (tests/unit/test_scan_fast.py checks it on a corpus).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from datetime import date, datetime
from typing import Any

from jinja2 import Undefined, nodes
from jinja2.parser import Parser

from engine.language.context import DATE_FIELDS, evaluate
from engine.language.expressions import ENV

__all__ = ["PARTS", "Memo", "iso_dates", "node_path", "seen_key", "unread"]

Path = tuple[str | int, ...]
_PURE = (nodes.Const, nodes.Compare, nodes.Operand, nodes.And, nodes.Or, nodes.Not, nodes.Neg, nodes.Pos,
         nodes.Add, nodes.Sub, nodes.Mul, nodes.Div, nodes.FloorDiv, nodes.Mod, nodes.CondExpr, nodes.List,
         nodes.Tuple)
_SCALARS = (str, int, float, bool, date, type(None))
_MISSING = object()


@functools.lru_cache(maxsize=2048)
def paths(src: str) -> tuple[Path, ...] | None:
    """The name/attribute paths ``src`` reads, when its value depends on nothing else; else None.
    Remembered: every page of a scan asks it of the same few expressions (``unread``), a parse each."""
    try:
        tree = Parser(ENV, src, state="variable").parse_expression()
    except Exception:  # noqa: BLE001 - not ours to report: evaluate() says what is wrong, every time
        return None
    found: list[Path] = []

    def walk(node: nodes.Node) -> bool:
        if isinstance(node, nodes.Name | nodes.Getattr | nodes.Getitem):
            path = node_path(node)
            if path is None:
                return False
            found.append(path)
            return True
        if not isinstance(node, _PURE):
            return False
        return all(walk(child) for child in node.iter_child_nodes())

    return tuple(dict.fromkeys(found)) if walk(tree) else None


PARTS = {"people": (("contacts",), ("account", "owner")), "usage": (("account", "usage"),),
         "fields": (("account", "fields"),),
         **{name: (("account", name),) for name in ("name", "arr", "renewal_date", "contract_start", "renewal_status",
                                                    "health")}}
"""Parts of an account a scan may leave unread, and the paths that read them: its people, its JSON columns,
and the plain fields beside the id, segment and lifecycle stage (which the matcher reads for every account)."""


def unread(sources: Sequence[str | None], fields: Sequence[str] = ()) -> frozenset[str]:
    """The ``PARTS`` no expression of ``sources`` and no trigger field of ``fields`` (``renewal_date``,
    ``fields.NAME``) can read: a scan need not read them from the CRM. An expression that cannot be
    analysed, or that reads the whole ``account``, may read them all."""
    left = set(PARTS)
    if any(f.startswith("fields.") or f == "fields" for f in fields):
        left.discard("fields")
    left -= set(fields)
    for src in sources:
        found = paths(src) if src else ()
        if found is None or ("account",) in found:
            return frozenset()
        left -= {part for part, prefixes in PARTS.items() for p in found for pre in prefixes
                 if p[:len(pre)] == pre}
    return frozenset(left)


def node_path(node: nodes.Node) -> Path | None:
    """The (name, attribute or key, ...) path a Name/Getattr/Getitem node reads; None for a computed key or
    a name of dict's own (``account.items``)."""
    steps: list[str | int] = []
    while isinstance(node, nodes.Getattr | nodes.Getitem):
        if isinstance(node, nodes.Getattr):
            step: Any = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str | int):
            step = node.arg.value
        else:
            return None
        if isinstance(step, str) and hasattr(dict, step):  # account.items is dict.items, not a field
            return None
        steps.append(step)
        node = node.node
    if not isinstance(node, nodes.Name):
        return None
    return (node.name, *reversed(steps))


def value_key(ctx: dict[str, Any], path: Path) -> Hashable | None:
    """What ``path`` reads in ``ctx``, as a key that tells apart every input with a different answer;
    None when the value is not a plain scalar (then the expression is evaluated)."""
    value: Any = ctx.get(path[0], _MISSING) if isinstance(path[0], str) else _MISSING
    depth = 0
    for step in path[1:]:
        if type(value) is dict:
            value = value.get(step, _MISSING)
        elif value is None or value is _MISSING:
            break  # the rest of the path cannot be read: the answer is the same for every such input
        else:
            return None
        depth += 1
    if value is _MISSING:
        return depth, "missing"
    if not isinstance(value, _SCALARS) or isinstance(value, datetime):
        return None
    if isinstance(value, float):
        # -0.0 and 0.0 are equal (and hash alike) but answer differently (1 / x): the sign tells them apart.
        # A NaN is equal to nothing, so it is never found again: evaluated each time, as without a memo.
        return depth, float, value, math.copysign(1.0, value)
    return depth, type(value), value


class Memo:
    """One scan's remembered answers for one playbook (create one per playbook and scan or page)."""

    def __init__(self) -> None:
        self.reads: dict[str, tuple[tuple[Path, ...] | None, bool]] = {}
        self.answers: dict[tuple[str, tuple[Hashable, ...]], Any] = {}
        self.probes: dict[Hashable, Any] = {}
        self.kept: set[int] = set()
        """The ids of the answers ``probes`` holds: alive as long as the memo, so an id names one answer."""
        self.decisions: dict[Hashable, Any] = {}
        """A scan's decisions by what they depend on beside the account's id (engine/triggers/scanmatch.py)."""

    def evaluate(self, src: str, ctx: dict[str, Any] | Callable[[], dict[str, Any]],
                 account: Callable[[], dict[str, Any]] | None = None) -> Any:
        """``engine.language.context.evaluate(src, ctx)``, remembered by the values it reads.

        ``ctx`` may be a function that builds the context (the matcher's, built only when an expression
        must be evaluated); ``account`` one that gives ``{"account": ...}`` exactly as in the context,
        which is all the key of an expression that reads only the account needs.
        """
        full = ctx if callable(ctx) else lambda: ctx
        try:
            reads, of_account = self.reads[src]
        except KeyError:
            found = paths(src)
            reads, of_account = self.reads[src] = found, found is not None and all(p[0] == "account" for p in found)
        if reads is None:
            return evaluate(src, full())
        seen = account() if account is not None and of_account else full()
        key = tuple([value_key(seen, p) for p in reads])
        if None in key:
            return evaluate(src, full())
        try:
            return self.answers[(src, key)]
        except KeyError:
            pass
        answer = evaluate(src, full())  # an error is raised each time, never remembered
        if not isinstance(answer, Undefined):  # it holds the account it was read from: not shared
            self.answers[(src, key)] = answer
        return answer

    def probe(self, key: Hashable, work: Callable[..., Any], *args: Any) -> Any:
        """``work(*args)``, remembered under ``key`` (the caller puts every input of ``work`` in it; the
        arguments are passed, not a closure made, as most calls find the answer)."""
        try:
            return self.probes[key]
        except KeyError:
            pass
        answer = self.probes[key] = work(*args)
        self.kept.add(id(answer))
        return answer



def seen_key(account: Mapping[str, Any], reads: Sequence[Path], dates: bool) -> tuple[Hashable, ...] | None:
    """A key that tells apart every two accounts (as ``Facts`` hold them: dates as ISO text) for which an
    expression reading only ``reads`` (paths from ``account``) can answer differently, read without
    copying and converting the account as ``account_seen`` does: the values as ``value_key`` keys them,
    and, when a path reads a date field (``dates``), whether ``account_seen`` turns the date fields into
    dates (when every one that is text is valid ISO text; else it leaves all of them as text). None when
    a value is not plain (the expression is then evaluated)."""
    if type(account) is not dict:
        return None
    ctx = {"account": account}
    key = [value_key(ctx, p) for p in reads]
    if None in key:
        return None
    if dates:
        key.append(iso_dates(account))
    return tuple(key)


def iso_dates(account: Mapping[str, Any]) -> bool:
    """Whether ``engine.language.context.to_eval`` converts the account's date fields without an error."""
    try:
        for name in DATE_FIELDS:
            value = account.get(name)
            if isinstance(value, str):
                date.fromisoformat(value)
    except ValueError:
        return False
    return True
