"""The comparisons of ``audience.when`` a CRM can check in its own query, so the scan reads fewer accounts.

A day's scan of the shipped renewal playbook (``audience.when: account.arr > 0``) read, decided and
recorded a third of its candidates only for them to fail ``arr > 0``. ``numbers`` finds, in a ``when``
that is a comparison or comparisons joined by ``and``, the ones between a numeric field of the account
(``account.arr``, ``account.health.score``, ``account.health.previous_score``) and a number written
in the expression; the scan hands them to ``AccountLister.list_accounts`` (``numbers``), and the
built-in CRM adds them to its SQL. Anything else (``or``, ``not``, a filter, a call, text, another
field, a chained comparison) is left to the matcher alone, which still evaluates the whole ``when``
for every account the CRM returns: the SQL only ever leaves out accounts for which ``when`` is false.

Why a left-out account surely fails: every conjunct of an ``and`` must hold for it to hold, and the
SQL comparison keeps every account the Python one passes. The field is a float (``arr``) or an integer
column compared with a literal the column type holds exactly (integers up to 2**53; a float literal only
against ``arr``), so SQL and Python compare the same numbers; NaN compares true in PostgreSQL's
``>``, ``>=`` and ``!=`` and false in Python's, so it is only ever kept more; a null field is kept by
the SQL (the matcher reports its comparison as an error, or passes it for ``!=``). What changes is
what is recorded: an account the SQL leaves out gets no ``audience_when`` suppression for the day,
as an account outside the audience segments gets no ``audience_segment`` one; ``csops explain``
evaluates the account live and still says why it is out of the audience.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping
from typing import Any

from jinja2 import nodes
from jinja2.parser import Parser

from connectors.base import NUMBER_OPERATORS
from engine.language.expressions import ENV
from engine.triggers.evalmemo import node_path

__all__ = ["COLUMNS", "Number", "holds", "numbers"]

Number = tuple[str, str, int | float]
"""(column of ``accounts``, operator: ``>``, ``>=``, ``<``, ``<=``, ``==`` or ``!=``, a number)."""
COLUMNS: dict[tuple[str | int, ...], str] = {("account", "arr"): "arr", ("account", "health", "score"): "health_score",
           ("account", "health", "previous_score"): "previous_health_score"}
"""The account's numeric fields as expressions read them, and their columns (engine/payloads/runcontext.py)."""
FLOATS = frozenset({"arr"})
"""The float columns; the others hold integers."""
OPS = {"gt": ">", "gteq": ">=", "lt": "<", "lteq": "<=", "eq": "==", "ne": "!="}
"""Jinja's comparison operators as ``AccountLister``'s ``numbers`` writes them."""
COMPARE: dict[str, Callable[[Any, Any], bool]] = {op: NUMBER_OPERATORS[symbol] for op, symbol in OPS.items()}
FLIPPED = {"gt": "lt", "gteq": "lteq", "lt": "gt", "lteq": "gteq", "eq": "eq", "ne": "ne"}
EXACT = 2**53
"""The largest integer a float holds exactly: beyond it PostgreSQL's float and Python's int comparisons differ."""


@functools.lru_cache(maxsize=256)
def numbers(src: str | None) -> tuple[Number, ...]:
    """The comparisons of ``src`` that every account passing it passes too, as SQL can check them; () for none."""
    found = [part for part in _parts(src) or () if part is not None]
    return tuple((column, OPS[op], float(value) if column in FLOATS else value) for _path, column, op, value in found)


def holds(src: str | None, account: Mapping[str, Any]) -> bool | None:
    """``bool(evaluate(src, ...))`` for the account (``Facts.account``) when ``src`` is nothing but such
    comparisons and the fields it reads hold numbers; None when the matcher must evaluate it.

    The same answer as Jinja's, which compares with Python's operators in the same order and stops at
    the first false one; reading each field beforehand, a value that is not a number (a null score:
    an error or, for ``!=``, true) is left to Jinja. A production scan's ``arr`` differs from account
    to account, so the ``Memo`` rarely finds an answer for ``account.arr > 0``: this is a comparison,
    where Jinja's evaluation of the expression cost about 50 µs."""
    plan = _plan(src)
    if plan is None:
        return None
    for path, op, value in plan:
        seen: Any = account
        for step in path[1:]:
            seen = seen.get(step) if type(seen) is dict else None
        if type(seen) not in (int, float):  # not bool, not None, not text
            return None
        if not op(seen, value):
            return False
    return True


@functools.lru_cache(maxsize=256)
def _plan(src: str | None) -> tuple[tuple[tuple[str | int, ...], Callable[[Any, Any], bool], int | float], ...] | None:
    parts = _parts(src)
    found = [part for part in parts or () if part is not None]
    if not parts or len(found) < len(parts):
        return None
    return tuple((path, COMPARE[op], value) for path, _column, op, value in found)


def _parts(src: str | None) -> list[tuple[tuple[str | int, ...], str, str, int | float] | None] | None:
    """Each conjunct of ``src`` as (path, column, Jinja operator, number), or None where it is anything
    else; None when ``src`` is empty or does not parse."""
    if not src:
        return None
    try:
        parser = Parser(ENV, src, state="variable")
        tree = parser.parse_expression()
        if parser.stream.current.type != "eof":  # trailing text: it does not compile, the matcher reports it
            return None
    except Exception:  # noqa: BLE001 - not ours to report: the matcher says what is wrong, every time
        return None
    return [_compare(part) for part in _conjuncts(tree)]


def _conjuncts(node: nodes.Node) -> list[nodes.Node]:
    if isinstance(node, nodes.And):
        return [*_conjuncts(node.left), *_conjuncts(node.right)]
    return [node]


def _compare(node: nodes.Node) -> tuple[tuple[str | int, ...], str, str, int | float] | None:
    if not isinstance(node, nodes.Compare) or len(node.ops) != 1 or node.ops[0].op not in OPS:
        return None
    op, left, right = node.ops[0].op, node.expr, node.ops[0].expr
    path, value = _field(left), _literal(right)
    if path is None or value is None:
        op, path, value = FLIPPED[op], _field(right), _literal(left)  # 0 < account.arr
    if path is None or value is None or (isinstance(value, float) and COLUMNS[path] not in FLOATS):
        return None
    return path, COLUMNS[path], op, value


def _field(node: nodes.Node) -> tuple[str | int, ...] | None:
    path = node_path(node) if isinstance(node, nodes.Getattr | nodes.Getitem) else None
    return path if path is not None and path in COLUMNS else None


def _literal(node: nodes.Node) -> int | float | None:
    sign = 1
    while isinstance(node, nodes.Neg | nodes.Pos):
        sign, node = (-sign if isinstance(node, nodes.Neg) else sign), node.node
    if not isinstance(node, nodes.Const) or type(node.value) not in (int, float):  # not bool, not text
        return None
    value = sign * node.value
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value if abs(value) <= EXACT else None
