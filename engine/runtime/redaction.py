"""The activity boundary's redaction: failures leave an activity with no configured secret in them.

Temporal records an activity's failure in the run's history (message, details, the cause chain and
a stack trace of frames) and the worker logs it; a server's answer quoted in any of these may hold
a secret (connectors/redact.py). ``redacting`` wraps an activity so that what leaves it is redacted.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from temporalio.exceptions import ApplicationError, FailureError

from connectors import redact

__all__ = ["redacting"]

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def redacting(fn: F) -> F:
    """The activity ``fn``, with every configured secret (connectors.redact) taken out of its
    failures: message, details and the whole cause chain, all of which Temporal records in the
    run's history and the worker logs. A failure without a secret is raised untouched."""
    @functools.wraps(fn)
    async def run(*args: Any, **kwargs: Any) -> Any:
        clean: BaseException | None = None
        try:
            return await fn(*args, **kwargs)
        except Exception as exc:  # re-raised as it is, or redacted
            clean = _redacted(exc)
            if clean is None:
                raise
        raise clean  # outside the except block: the original is not kept as __context__
    return run  # type: ignore[return-value]


def _redacted(exc: BaseException) -> BaseException | None:
    if not redact.registered() or (isinstance(exc, FailureError) and not isinstance(exc, ApplicationError)):
        return None  # nothing to redact; Temporal's own errors (cancellation) keep their meaning
    chain: list[BaseException] = []
    e: BaseException | None = exc
    while e is not None and len(chain) < 20:  # the chain Temporal's failure converter follows
        chain.append(e)
        e = e.__cause__ or (None if e.__suppress_context__ else e.__context__)
    texts = [t for x in chain for t in (x.message if isinstance(x, ApplicationError) else str(x),
                                        repr(x.details) if isinstance(x, ApplicationError) else "")]
    if all(redact.redact(t) == t for t in texts):
        return None
    cause: BaseException | None = None
    for x in reversed(chain):
        if isinstance(x, ApplicationError):
            new = ApplicationError(redact.redact(x.message), *redact.redact_value(tuple(x.details)), type=x.type,
                                   non_retryable=x.non_retryable, next_retry_delay=x.next_retry_delay,
                                   category=x.category)
        else:  # as Temporal would convert it: the class name as type, retryable
            new = ApplicationError(redact.redact(str(x)), type=type(x).__name__)
        new.__cause__ = cause
        cause = new.with_traceback(x.__traceback__)
    return cause
