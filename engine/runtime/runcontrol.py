"""Runs as people look at and steer them, shared by the API, ``csops runs`` and the console: a run with its
step timeline and live state (``run_detail``), a page of runs brought up to date (``refreshed``), cancel
(``cancel_run``). They raise the engine's errors (engine.errors: ``NotFound``, ``Conflict``,
``Unavailable``) and give the engine's records; the API turns both into HTTP at its boundary
(engine/api/api_errors.py, engine/api/runmodels.py), the CLI into exit codes and lines.

Live status and cancel go to Temporal through :class:`Workflows`; :class:`TemporalWorkflows` is
the real one (over a client connected on first use), tests pass a stand-in with the same methods.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any, Literal, Protocol

from engine.errors import Conflict, NotFound, Unavailable
from engine.store.runstore import ENDED_STATUSES
from engine.store.store import Store
from engine.store.store_models import AuditRow, RunRecord

__all__ = ["STATUS_TIMEOUT", "CancelSent", "Live", "RunDetail", "TemporalWorkflows", "Workflows", "cancel_run",
           "live_of", "refreshed", "run_detail"]

STATUS_TIMEOUT = 3.0
"""Seconds a live status query may take before the run is shown without it."""


class Workflows(Protocol):
    """Temporal, as far as runs need it."""

    async def status(self, run_id: str) -> dict[str, Any] | None:
        """The run's ``status`` query answer; None when Temporal does not know the run.

        Raises:
            Unavailable: Temporal cannot be reached (code ``temporal_unavailable``).
        """

    async def cancel(self, run_id: str, reason: str) -> Literal["cancelling", "not_found", "ended"]:
        """Signal ``cancel`` to the run, unless it is unknown or has ended.

        Raises:
            Unavailable: Temporal cannot be reached (code ``temporal_unavailable``).
        """


class TemporalWorkflows:
    """:class:`Workflows` over a Temporal client, connected on first use."""

    def __init__(self, client: Callable[[], Awaitable[Any]]) -> None:
        self._get = client
        self._client: Any = None

    async def _handle(self, run_id: str) -> Any:
        if self._client is None:
            try:
                self._client = await self._get()
            except (RuntimeError, OSError) as exc:
                raise Unavailable("temporal_unavailable", f"cannot reach Temporal: {str(exc).splitlines()[0][:200]} "
                                  "(is csops up running?)") from None
        return self._client.get_workflow_handle(run_id)

    async def status(self, run_id: str) -> dict[str, Any] | None:
        from temporalio.service import RPCError, RPCStatusCode

        handle = await self._handle(run_id)
        try:
            answer = await handle.query("status", rpc_timeout=timedelta(seconds=STATUS_TIMEOUT))
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                return None
            raise Unavailable("temporal_unavailable", f"Temporal did not answer the status query: {exc.message}") \
                from None
        return dict(answer) if isinstance(answer, Mapping) else asdict(answer)

    async def refresh(self, store: Store, run_id: str) -> RunRecord | None:
        """Bring the store's record of the run up to date from Temporal (engine/runtime/runrecord.py)."""
        from temporalio.service import RPCError

        from engine.runtime.runrecord import refresh

        await self._handle(run_id)  # connects, or raises Unavailable
        try:
            return await refresh(store, self._client, run_id)
        except RPCError as exc:
            raise Unavailable("temporal_unavailable", f"Temporal did not answer: {exc.message}") from None

    async def cancel(self, run_id: str, reason: str) -> Literal["cancelling", "not_found", "ended"]:
        from temporalio.client import WorkflowExecutionStatus
        from temporalio.service import RPCError, RPCStatusCode

        handle = await self._handle(run_id)
        try:
            desc = await handle.describe()
            if desc.status != WorkflowExecutionStatus.RUNNING:
                return "ended"
            await handle.signal("cancel", reason)
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                # A signal to a run that just ended says NOT_FOUND too: it is gone either way.
                return "not_found"
            raise Unavailable("temporal_unavailable", f"Temporal refused the cancel signal: {exc.message}") from None
        return "cancelling"


@dataclass(frozen=True, kw_only=True)
class Live:
    """What Temporal says of a run now (its ``status`` query)."""

    current_step: str
    outcome: str
    open_tasks: list[str]
    steps_done: list[str]
    held: str = ""
    """While an email waits for its send window: step, window, until when."""


def live_of(status: Mapping[str, Any]) -> Live:
    """The status query's answer, as ``Live``."""
    return Live(current_step=str(status.get("current_step", "")), outcome=str(status.get("outcome", "")),
                open_tasks=[str(t) for t in status.get("open_tasks", [])],
                steps_done=[str(s) for s in status.get("steps", {})], held=str(status.get("held") or ""))


@dataclass(frozen=True, kw_only=True)
class RunDetail:
    """A run with its step timeline and, when Temporal answers, its live state."""

    run: RunRecord
    timeline: list[AuditRow]
    live: Live | None
    """None when Temporal did not answer (see ``live_error``) or the run ended."""
    live_error: str | None


@dataclass(frozen=True, kw_only=True)
class CancelSent:
    """The cancel signal was sent; the run stops at once, whatever it waits on."""

    run_id: str
    status: Literal["cancelling"] = "cancelling"


async def run_detail(store: Store, workflows: Workflows | None, run_id: str) -> RunDetail | None:
    """The run, its timeline and its live state; None for an unknown run."""
    run = await store.get_run(run_id)
    if run is None:
        return None
    refresh = getattr(workflows, "refresh", None)
    if refresh is not None and run.ended_at is None:
        # The store's copy follows Temporal when looked at (engine/runtime/runrecord.py): the ending and
        # the step audit are brought up to date first. Temporal down: show what is recorded.
        with contextlib.suppress(Unavailable, TimeoutError):
            run = await asyncio.wait_for(refresh(store, run_id), STATUS_TIMEOUT) or run
    timeline = await store.timeline(run_id)
    live, live_error = None, None
    if workflows is None:
        live_error = "Temporal is not configured here"
    elif run.ended_at is None:
        try:
            answer = await asyncio.wait_for(workflows.status(run_id), STATUS_TIMEOUT)
        except (Unavailable, TimeoutError) as exc:
            live_error = str(exc) or f"Temporal did not answer within {STATUS_TIMEOUT:g} s"
        else:
            live = live_of(answer) if answer is not None else None
            live_error = None if answer is not None else "Temporal has no such run (its history may be gone)"
    return RunDetail(run=run, timeline=timeline, live=live, live_error=live_error)


async def refreshed(store: Store, workflows: Workflows | None, runs: list[RunRecord]) -> list[RunRecord]:
    """The runs, those recorded as running brought up to date from Temporal first (best effort:
    with Temporal unreachable or slow, as recorded)."""
    refresh = getattr(workflows, "refresh", None)
    if refresh is None or all(r.ended_at is not None for r in runs):
        return runs

    async def one(r: RunRecord) -> RunRecord:
        if r.ended_at is not None:
            return r
        with contextlib.suppress(Unavailable, TimeoutError):
            return await asyncio.wait_for(refresh(store, r.run_id), STATUS_TIMEOUT) or r
        return r
    return list(await asyncio.gather(*(one(r) for r in runs)))


async def cancel_run(store: Store, workflows: Workflows | None, run_id: str, reason: str) -> CancelSent:
    """Send ``cancel`` to a running run.

    Raises:
        NotFound: ``unknown_run``.
        Conflict: ``run_ended``, in the store or in Temporal.
        Unavailable: ``temporal_unavailable``, Temporal not reachable or not configured.
    """
    run = await store.get_run(run_id)
    if run is None:
        raise NotFound("unknown_run", f"there is no run {run_id!r}; csops runs lists them")
    if run.ended_at is not None or run.status in ENDED_STATUSES:
        raise Conflict("run_ended", f"run {run_id!r} already ended ({run.status}); there is nothing to cancel")
    if workflows is None:
        raise Unavailable("temporal_unavailable", "Temporal is not configured here, so runs cannot be cancelled")
    said = await workflows.cancel(run_id, reason)
    if said != "cancelling":
        raise Conflict("run_ended", f"run {run_id!r} is no longer running in Temporal ({said.replace('_', ' ')})")
    return CancelSent(run_id=run_id)
