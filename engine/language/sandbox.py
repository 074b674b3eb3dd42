"""The bounded sandbox: every render and evaluation stops at documented limits of size and work.

Jinja2's SandboxedEnvironment keeps templates away from Python internals but not from CPU and
memory: ``'A' * 4000000000`` or ``score ** (9 ** 9)`` would run for minutes and take gigabytes.
Here every operator, call, filter, test, comparison, loop iteration and printed value goes through a
check:

- sizes are checked *before* anything big is built (engine.language.sizes: a repeat, a width, a join, a power);
- each of those steps is charged to a work budget per evaluation, so loops cannot go on forever.

Both are counts, not clocks, so the same expression stops at the same point on every replay of a
Temporal workflow. Activities and the API may add a wall-clock guard (``seconds``) on top.
The limits are documented in docs/playbook-reference.md (section 10, Limits).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from jinja2 import nodes
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg, pass_context
from jinja2.visitor import NodeTransformer

from engine.language.sizes import (
    FILTER_CHECKS,
    MAX_BUSINESS_DAYS,
    MAX_INT_BITS,
    MAX_PRINTED,
    MAX_RANGE,
    MAX_WORK,
    LimitExceeded,
    check_binop,
    check_brace_format,
    check_method,
    check_weight,
    materialize,
    weight,
)

T = TypeVar("T")


@dataclass
class Budget:
    """The work left to one evaluation, and its wall-clock deadline where one is allowed."""

    left: int = MAX_WORK
    printed: int = 0
    deadline: float | None = None


_BUDGET: ContextVar[Budget | None] = ContextVar("csops_expression_budget", default=None)


def bounded(fn: Callable[[], T], seconds: float | None = None) -> T:
    """Run ``fn`` (an evaluation or a render) with a fresh work budget.

    ``seconds`` adds a wall-clock guard; never pass it inside a workflow (not deterministic).
    """
    budget = Budget(deadline=time.monotonic() + seconds if seconds is not None else None)
    token = _BUDGET.set(budget)
    try:
        return fn()
    except RecursionError:
        raise LimitExceeded("macros or loops nested too deeply") from None
    finally:
        _BUDGET.reset(token)


def charge(units: int) -> None:
    """Spend work units of the current evaluation (none outside one: compile-time folding)."""
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.left -= units
    if budget.left < 0:
        raise LimitExceeded(f"more than {MAX_WORK:,} steps of work in one evaluation (a loop too long?)")
    if budget.deadline is not None and time.monotonic() > budget.deadline:
        raise LimitExceeded("the evaluation took too long")


def guard_filter(name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its input read, weighed and charged, its arguments checked and its result weighed."""
    skip = 1 if _PassArg.from_obj(fn) is not None else 0
    check = FILTER_CHECKS.get(name)

    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        if len(args) > skip:
            args = (*args[:skip], materialize(args[skip]), *args[skip + 1 :])
        own = args[skip:]
        charge(1 + check_weight(own, "the input of a filter") // 100)
        if check is not None and own:
            check(own, kwargs)
        result = fn(*args, **kwargs)
        if not isinstance(result, Iterator):
            check_weight(result, f"the result of the {name} filter")
        return result

    return run


# --- loops, printing, concatenation --------------------------------------------------------------

LOOP, OUT, TEXT, COMPARED = "_csops_loop", "_csops_out", "_csops_text", "_csops_compared"


@pass_context
def loop_guard(_: Context, iterable: Any) -> Iterator[Any]:
    """What a ``{% for %}`` walks: each iteration costs one unit of work."""
    for item in iterable:
        charge(1)
        yield item


@pass_context
def out_guard(_: Context, value: Any) -> str:
    """Every printed value (into the output, a block or a macro) counts against MAX_PRINTED."""
    if not isinstance(value, str):
        check_weight(value, "a printed value")
        value = str(value)
    assert isinstance(value, str)
    budget = _BUDGET.get()
    if budget is not None:
        budget.printed += len(value)
        if budget.printed > MAX_PRINTED:
            raise LimitExceeded(f"more than {MAX_PRINTED:,} characters printed while rendering one text")
        charge(1 + len(value) // 100)
    return value


@pass_context
def text_guard(_: Context, value: Any) -> str:
    """A ``~`` operand, as text, once its size is known to be bounded."""
    if not isinstance(value, str):
        check_weight(value, "a joined value")
        value = str(value)
    assert isinstance(value, str)
    charge(1 + len(value) // 100)
    return value


def _length(value: Any) -> int:
    return len(value) if isinstance(value, (str, bytes, list, tuple, dict, set, frozenset, range)) else 1


@pass_context
def compared_guard(_: Context, value: Any) -> Any:
    """A side of a comparison (``==``, ``<``, ``in``...): comparing long values costs work too."""
    charge(1 + _length(value) // 100)
    return value


def guard_test(fn: Callable[..., Any]) -> Callable[..., Any]:
    """A test (``is in``, ``is divisibleby``...) charged by the size of what it looks at."""
    @wraps(fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        charge(1 + sum(_length(a) for a in args) // 100)
        return fn(*args, **kwargs)

    return run


def _wrap(node: nodes.Node, name: str) -> nodes.Expr:
    if isinstance(node, nodes.TemplateData):
        node = nodes.Const(node.data, lineno=node.lineno)
    return nodes.Filter(node, name, [], [], None, None, lineno=node.lineno)


class Guards(NodeTransformer):
    """Routes loops, printed values, compared values and ``~`` operands through the guard filters."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = _wrap(node.iter, LOOP)
        return node

    def visit_Output(self, node: nodes.Output) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(child, OUT) for child in node.nodes]
        return node

    def visit_Compare(self, node: nodes.Compare) -> nodes.Node:
        self.generic_visit(node)
        node.expr = _wrap(node.expr, COMPARED)
        for operand in node.ops:
            operand.expr = _wrap(operand.expr, COMPARED)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        node.nodes = [_wrap(child, TEXT) for child in node.nodes]
        return node


class BoundedEnvironment(ImmutableSandboxedEnvironment):
    """The sandbox with size checks and the work budget on every operator, call and filter."""

    intercepted_binops = frozenset({"*", "**", "%", "+", "-", "/", "//"})
    day_types: tuple[type, ...] = ()
    """Result types of ``business_days(n)``, whose ``n`` is bounded by MAX_BUSINESS_DAYS."""

    def _generate(self, source: nodes.Template, name: str | None, filename: str | None,
                  defer_init: bool = False) -> str:
        Guards().visit(source)
        return super()._generate(source, name, filename, defer_init)

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > MAX_INT_BITS:  # a power near the limit
            raise LimitExceeded(f"a number of more than {MAX_INT_BITS:,} bits")
        charge(1 + weight(result) // 100)
        return result

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        charge(1 + check_weight((args, kwargs), "the arguments of a call") // 100)
        args = check_method(__obj, args, kwargs)
        result = super().call(__context, __obj, *args, **kwargs)
        if isinstance(result, __self.day_types) and abs(int(getattr(result, "n", 0))) > MAX_BUSINESS_DAYS:
            raise LimitExceeded(f"business_days({getattr(result, 'n', 0):,}) is over the limit of "
                                f"{MAX_BUSINESS_DAYS:,}")
        if not isinstance(result, Iterator):
            check_weight(result, "the result of a call")
        return result

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        fmt = super().wrap_str_format(value)
        if fmt is None:
            return None
        text, inner = value.__self__, fmt

        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if value.__name__ == "format_map" and args and isinstance(args[0], dict) else {}
            check_brace_format(text, args, {**kwargs, **mapping})
            return inner(*args, **kwargs)

        return checked


def bounded_range(*args: int) -> range:
    """``range()`` of at most MAX_RANGE items."""
    rng = range(*args)
    if len(rng) > MAX_RANGE:
        raise LimitExceeded(f"range() of {len(rng):,} items; the limit is {MAX_RANGE:,}")
    return rng


def no_lipsum(*_: Any, **__: Any) -> str:
    """``lipsum()`` is not available: it makes text of any length."""
    raise LimitExceeded("lipsum() is not available: it makes text of any length")


def bound(env: BoundedEnvironment) -> BoundedEnvironment:
    """Finish the bounded sandbox once its own filters are in: guard every filter, bound range,
    drop lipsum, add the guard filters."""
    env.globals["range"] = bounded_range
    env.globals["lipsum"] = no_lipsum  # lorem ipsum of any length: no use in a playbook
    env.filters = {name: guard_filter(name, fn) for name, fn in env.filters.items()}
    env.filters.update({LOOP: loop_guard, OUT: out_guard, TEXT: text_guard, COMPARED: compared_guard})
    env.tests = {name: guard_test(fn) for name, fn in env.tests.items()}  # type: ignore[arg-type]
    return env
