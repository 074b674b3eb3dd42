"""The event pipeline: events in (API, CLI, imports) → store → facts → triggers → runs.

Two halves, joined by the store's events table, which is the queue:

- ``Ingestor.ingest`` validates a batch, stores the valid events (idempotent by id: a duplicate
  stops here, which is why 50 concurrent posts of one event start one run) and wakes the
  processor. That is all the API waits for before it answers 202. Concurrent calls share one
  database transaction (group commit), so many small posts cost few commits.
- ``Ingestor.process_pending`` claims stored events not processed yet and, per event: applies
  its facts (engine/triggers/ingest_facts.py), delivers it to the account's running runs (``deliver_event``
  signal: wait_for, task completion, exit criteria), asks the matcher about every playbook with
  a trigger listening to the type, and enrols (engine/triggers/enrol.py records every decision). Then it
  marks the event processed. ``run`` does that in a loop.

Nothing stored is lost when the process dies: an event is marked processed only after all of
that, and a claim lapses after a lease (5 minutes), so another processor takes it up; a round cut
short by a stop gives its claims back at once (engine/triggers/giveback.py). Events of
one account are processed one after another in the order they were received; accounts in
parallel.

An event whose processing fails is tried again after a back-off (30 s, doubling, at most the
lease; ``Store.record_failures``) while the account's later events wait their turn. After
``max_attempts`` failures it is set aside as failed (``csops event failed`` lists those, ``csops
event retry`` queues them again) and the account's later events go on, so one event that can
never be processed does not hold its account up for ever. Outages (Temporal, the CRM or the
database unreachable) are retried without limit instead: they end by themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.base import CRM, RetryableError
from engine.health.hooks import recompute_processed
from engine.language import model as m
from engine.language.context import Calendar
from engine.payloads.runcontext import read_view, view_data
from engine.payloads.runtypes import run_id_for
from engine.store.store import API_WRITE_WAIT, LEASE, MAX_ATTEMPTS, EventRecord, Store
from engine.triggers.accountcheck import AccountCheck
from engine.triggers.enrol import Start, enrol, facts_for
from engine.triggers.giveback import cut_short
from engine.triggers.ingest_facts import ACCOUNT_FACTS, Change, apply_facts, read_event, validate_event
from engine.triggers.ingest_notes import (
    WAITING,
    IngestResult,
    Processed,
    failure_text,
    is_outage,
    listening_to,
    listens_one,
    notes_of,
    refusal_text,
)
from engine.triggers.matcher import decide
from engine.triggers.matchproc import MatchTimeout, MatchWorker
from engine.triggers.route import SignalRun, deliver
from engine.triggers.signals import Decision, EventSignal, Facts, TriggerRef

__all__ = ["Ingestor", "SignalRun", "validate_event"]

log = logging.getLogger(__name__)

GATHER = 0.25
"""Seconds at least between the starts of two processing rounds the ingestor's wake-ups begin."""
ROUND_MOST = 1000
"""Most events in one processing round of ``run``: its rounds double from ``limit`` up to this while each
comes back full (a backlog), since every round costs two commits (claim, mark) and a few reads."""


class Ingestor:
    """Takes events in and processes them; one per process, shared by the API and the CLI.

    Args:
        store: The engine's store (events, facts, decisions, runs).
        crm: The CRM whose accounts the events are about.
        playbooks: The playbooks now in force by id (called once per processing round, so reloads are seen).
        start: Starts a decision's run (see engine.triggers.enrol.Start).
        signal_run: Delivers an event to a running run (see ``SignalRun``; engine.runtime.temporal.temporal_signaller).
        calendar: Workdays, holidays and zone for cooldowns and date triggers.
        now: The clock.
        lease: How long a claimed event stays with its processor before another may take it.
        parallel: How many accounts are processed at once.
        max_attempts: Failed attempts after which an event is set aside as failed (at least 1).
        still_running: Checks a run the store has as active against Temporal (engine/runrecord.is_running).
        suppress: Puts the address of a hard bounce, unsubscribe or complaint on the suppression list
            (engine/triggers/suppress.py).
    """

    def __init__(self, *, store: Store, crm: CRM, playbooks: Callable[[], Mapping[str, m.Playbook]], start: Start,
                 signal_run: SignalRun, calendar: Calendar | None = None,
                 now: Callable[[], datetime] = lambda: datetime.now(UTC), lease: timedelta = LEASE,
                 parallel: int = 8, still_running: Callable[[str], Awaitable[bool]] | None = None,
                 max_attempts: int = MAX_ATTEMPTS,
                 suppress: Callable[[EventSignal], Awaitable[str | None]] | None = None) -> None:
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be 1 or more, not {max_attempts}")
        self.max_attempts = max_attempts
        self.store, self.crm, self.playbooks, self.start = store, crm, playbooks, start
        self.still_running, self.suppress, self.parallel = still_running, suppress, parallel
        self.signal_run, self.calendar, self.now, self.lease = signal_run, calendar or Calendar(), now, lease
        self.wake = asyncio.Event()
        self._waiting: list[tuple[list[EventSignal], asyncio.Future[list[bool | str]]]] = []
        self._flusher: asyncio.Task[None] | None = None
        self._accounts = AccountCheck(crm, lambda: monotonic())  # looked up per call: tests move the clock
        self._matcher: MatchWorker | None = None  # while ``run`` goes: the child process that evaluates conditions
        self.stopping = False
        """Set by ``stop``: ``run`` returns after the round in hand (its events marked, no claim left to lapse)."""

    # --- in --------------------------------------------------------------------------------------

    async def ingest(self, events: Sequence[Mapping[str, Any]], *, process: bool = False) -> list[IngestResult]:
        """Validate and store a batch; one result per event, in order.

        With ``process`` the accepted events are processed before this returns (the CLI does
        that, to print the decisions); the API leaves it to ``run``.

        Raises:
            sqlalchemy.exc.SQLAlchemyError: the store could not be written (nothing was accepted).
        """
        valid: list[EventSignal] = []
        problems: list[list[str]] = []
        for obj in events:
            event = read_event(obj)
            problems.append([] if isinstance(event, EventSignal) else event)
            if isinstance(event, EventSignal):
                valid.append(event)
        stored = iter(await self._store(valid) if valid else [])
        results = []
        for obj, errors in zip(events, problems, strict=True):
            ident = obj.get("id") if type(obj) is dict or isinstance(obj, Mapping) else None  # fast: a dict
            ident = ident if isinstance(ident, str) else ""
            outcome = None if errors else next(stored)
            if isinstance(outcome, str):  # the store refused this one event; its neighbours went in
                errors = [outcome]
            if errors:
                results.append(IngestResult(id=ident, status="rejected", errors=tuple(errors)))
            else:
                results.append(IngestResult(id=ident, status="accepted" if outcome else "duplicate"))
        results = await self._accounts.unknown(results, {e.id: e.account_id for e in valid})
        accepted = [r.id for r in results if r.status in ("accepted", "unknown_account")]
        if accepted and process:
            done = {p.id: p for p in await self._round(len(accepted), ids=accepted)}
            results = [replace(r, decisions=done[r.id].decisions, notes=notes_of(done[r.id])) if r.id in done
                       else replace(r, notes=(WAITING,)) if r.id in accepted else r for r in results]
        elif accepted:
            self.wake.set()
        return results

    async def _store(self, events: list[EventSignal]) -> list[bool | str]:
        """Store through the shared transaction: callers arriving while one commits go in the next.

        One result per event: True stored, False a duplicate, or why the store refused that event
        (the others of the group are stored all the same: see ``_write``).

        Raises:
            RetryableError: the store is locked or unreachable (for this caller nothing may have gone in).
        """
        future: asyncio.Future[list[bool | str]] = asyncio.get_running_loop().create_future()
        self._waiting.append((events, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                outcomes = await self._write([e for events, _ in batch for e in events])
            except BaseException as exc:  # cancelled: no caller may wait for ever
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc if isinstance(exc, Exception) else RuntimeError("cancelled"))
                raise
            at = 0
            for events, future in batch:
                mine, at = outcomes[at:at + len(events)], at + len(events)
                outage = next((o for o in mine if isinstance(o, RetryableError)), None)
                if future.done():
                    continue
                if outage is not None:
                    future.set_exception(outage)
                else:
                    future.set_result([o if isinstance(o, bool) else refusal_text(o) for o in mine])

    async def _write(self, events: list[EventSignal]) -> list[bool | Exception]:
        """Store events in one transaction; when the store refuses it, each half again, down to the event at fault.

        So one bad event costs a few more transactions, never its neighbours' place: for each event,
        True (stored), False (duplicate) or the exception that refused it alone. An outage (locked or
        unreachable store) is not any event's fault: it ends the write, given to all not yet written.
        """
        try:
            return list(await self.store.add_events(events, received_at=self.now(), wait=API_WRITE_WAIT))
        except RetryableError as exc:
            return [exc] * len(events)
        except Exception as exc:  # noqa: BLE001 - find the event at fault
            if len(events) == 1:
                return [exc]
        half = len(events) // 2
        first = await self._write(events[:half])
        outage = next((o for o in first if isinstance(o, RetryableError)), None)
        if outage is not None:
            return first + [outage] * (len(events) - half)
        return first + await self._write(events[half:])

    # --- processing ------------------------------------------------------------------------------
    async def process_pending(self, limit: int = 200) -> list[Processed]:
        """Claim and process up to ``limit`` queued events; what each did."""
        return await self._round(limit)

    async def _round(self, limit: int, ids: Sequence[str] | None = None) -> list[Processed]:
        at = self.now()
        records = await self.store.unprocessed(limit, ids=ids, now=at, lease=self.lease)
        async with cut_short(self.store, records, at=at):  # cancelled midway: its events go back to the queue now
            return await self._process(records)

    async def run(self, *, poll: float = 1.0, limit: int = 200) -> None:
        """Process queued events until cancelled: at once when ``ingest`` wakes it, else every ``poll`` seconds
        (events another process stored, and retries after a lease).

        Meanwhile trigger conditions are evaluated in a child process with a time bound
        (engine/triggers/matchproc.py), so a slow one never blocks this event loop (the API's)."""
        self._matcher = MatchWorker()
        try:
            await self._loop(poll=poll, limit=limit)
        finally:
            matcher, self._matcher = self._matcher, None
            await asyncio.to_thread(matcher.close)

    def stop(self) -> None:
        """Make ``run`` return once the round in hand is done (SIGTERM to ``csops process``)."""
        self.stopping = True
        self.wake.set()

    async def _loop(self, *, poll: float, limit: int) -> None:
        clock = asyncio.get_running_loop().time
        size = limit
        while not self.stopping:
            self.wake.clear()
            began = clock()
            try:
                done = await self.process_pending(size)
            except Exception:  # the store may be back in a moment; the loop must go on
                log.exception("processing queued events failed; trying again in %s s", poll)
                done = []
            full, size = len(done) >= size, limit
            if full:  # a backlog: bigger rounds, each of one claim and one mark, cost fewer commits per event
                size = max(limit, min(2 * len(done), ROUND_MOST))
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wake.wait(), poll)
                # Events posted one at a time wake the loop for each: gathering them for a moment makes one
                # claim and one mark per many events, not per few (the first after an empty round goes at once).
                if done and not self.stopping and (rest := GATHER - (clock() - began)) > 0:
                    await asyncio.sleep(rest)

    async def _process(self, records: Sequence[EventRecord]) -> list[Processed]:
        by_account: dict[str, list[EventRecord]] = {}
        for rec in records:
            by_account.setdefault(rec.account_id, []).append(rec)
        held: list[str] = []
        # One query for the batch, not one per event: most accounts have no running run to deliver to.
        running = await self.store.accounts_running(list(by_account))
        unrouted: dict[str, EventSignal] = {}
        listeners = listening_to(self.playbooks())  # the round's playbooks: a reload swaps them between rounds

        async def account(recs: list[EventRecord]) -> list[Processed]:
            out = []
            for at, rec in enumerate(recs):
                out.append(await self._one(rec, running, unrouted, listeners(rec.type)))
                if out[-1].error and (out[-1].transient or rec.attempts + 1 < self.max_attempts):
                    # Later events of the account wait for this one's retry, keeping their order.
                    held.extend(r.id for r in recs[at + 1:])
                    break
                # Succeeded, or failed for the last time (set aside below): the account goes on.
            return out

        groups = list(by_account.values())
        results: list[list[Processed]] = [[] for _ in groups]
        turns = iter(range(len(groups)))

        async def worker() -> None:  # ``parallel`` of these take the accounts in turn: not a task per account
            for i in turns:
                results[i] = await account(groups[i])

        await asyncio.gather(*(worker() for _ in range(min(self.parallel, len(groups)))))
        done = [p for group in results for p in group]
        if unrouted:  # a run another process started during the round gets this round's events of its account
            late = await self.store.accounts_running(sorted({p.account_id for p in done if p.id in unrouted} - running))
            done = [replace(p, delivered=p.delivered + tuple(await self._route(unrouted[p.id])))
                    if p.account_id in late and p.id in unrouted else p for p in done]
        now = self.now()
        await self.store.mark_processed([p.id for p in done if not p.error], at=now)
        gave_up = {r.id: r for r in await self.store.record_failures(
            [(p.id, p.cause) for p in done if p.error], at=now, max_attempts=self.max_attempts, lease=self.lease,
            held=held, transient=[p.id for p in done if p.error and p.transient])}
        attempts = {r.id: r.attempts + 1 for r in records}
        for p in done:
            if p.id in gave_up:
                log.error("event %s (%s, account %s) failed %d times and is set aside; the account's later events "
                          "go on. Last error: %s. `csops event retry %s` queues it again", p.id, p.type,
                          p.account_id, gave_up[p.id].attempts, p.cause, p.id)
        done = await recompute_processed(self, done)  # engine/health: changed computed scores go in as health.updated
        return [replace(p, error=failure_text(p, attempts[p.id], gave_up=p.id in gave_up, lease=self.lease))
                if p.error else p for p in done]

    async def _one(self, rec: EventRecord, running: set[str], unrouted: dict[str, EventSignal],
                   listening: list[m.Playbook]) -> Processed:
        """Process one event; ``running``: the accounts with running runs (this adds those it starts runs for);
        an event not delivered because its account had none goes in ``unrouted``, checked again after the round;
        ``listening``: the playbooks with a trigger listening to its type."""
        ev = EventSignal(id=rec.id, type=rec.type, account_id=rec.account_id, occurred_at=rec.occurred_at,
                         data=rec.data)
        try:
            # The CRM is read only when something uses the account: its facts, or a trigger listening.
            account = await self.crm.get_account(ev.account_id) if listening or ev.type in ACCOUNT_FACTS else None
            change = await apply_facts(self.store, self.crm, ev, account)
            if self.suppress is not None and (said := await self.suppress(ev)):
                change.notes.append(said)
            if change.previous:
                ev = replace(ev, previous=change.previous)
            delivered = await self._route(ev) if ev.account_id in running else []
            if ev.account_id not in running:
                unrouted[ev.id] = ev
            decisions = await self._decide(ev, change, listening) if account is not None else []
            if decisions:  # a run it started gets the account's next events
                running.add(ev.account_id)
        except Exception as exc:  # noqa: BLE001 - one event's failure must not stop the others
            # Kept as the event's last_error and shown by the CLI and API: the exception's own
            # words only (connectors keep secrets out of them), no request headers or URLs.
            cause = f"{type(exc).__name__}: {exc}"
            log.warning("event %s could not be processed (attempt %d of %d): %s", rec.id, rec.attempts + 1,
                        self.max_attempts, cause)
            return Processed(id=rec.id, type=rec.type, account_id=rec.account_id, error=cause, cause=cause,
                             transient=is_outage(exc))
        return Processed(id=rec.id, type=rec.type, account_id=rec.account_id, decisions=tuple(decisions),
                         delivered=tuple(delivered), notes=tuple(change.notes))

    async def _route(self, ev: EventSignal) -> list[str]:
        return await deliver(self.store, self.signal_run, self.now, ev)

    async def _decide(self, ev: EventSignal, change: Change, listening: list[m.Playbook]) -> list[str]:
        if not listening:
            return []
        view = await read_view(self.crm, ev.account_id)
        if view is None:
            return []
        data = view_data(view)
        account, contacts = data["account"], tuple(data["contacts"])
        signal = {"kind": "event", "type": ev.type, "id": ev.id, "occurred_at": ev.occurred_at.isoformat()}
        lines = []
        for pb in listening:
            now = self.now()
            facts = functools.partial(facts_for, self.store, pb, account, now=now, calendar=self.calendar,
                                      contacts=contacts, previous_score=change.previous_score,
                                      previous_band=change.previous_band, first_feature_use=change.first_feature_use,
                                      first_product_use=change.first_product_use)
            seen = await facts()
            decision = await self._match(pb, ev, seen)
            if (decision is not None and decision.reason == "already_active" and seen.active_run
                    and self.still_running is not None and not await self.still_running(seen.active_run)):
                # The store had a run as active that Temporal says has ended (its record is now up to
                # date): decide again. Asked only here, so an event costs no Temporal call otherwise.
                decision = await self._match(pb, ev, await facts())
            if decision is None:
                continue
            done = await enrol(decision, pb, store=self.store, start=self.start, signal=signal, now=now)
            # enrol records a start Temporal refused as already running as already_active; so does this line.
            refused = (decision.outcome, done.outcome) == ("start", "suppressed")
            reason = "already_active" if refused else decision.reason
            lines.append(f"{pb.id}: {done.outcome} ({reason}): {done.message}")
        return lines

    async def _match(self, pb: m.Playbook, ev: EventSignal, seen: Facts) -> Decision | None:
        """``decide``: in the child process while ``run`` goes (a time-out is a suppressed decision), else here."""
        if self._matcher is None:
            return decide(pb, ev, seen)
        try:
            return await self._matcher.decide(pb, ev, seen)
        except MatchTimeout as exc:
            index = next((i for i, t in enumerate(pb.triggers) if listens_one(t, ev.type)), 0)
            return Decision(outcome="suppressed", reason="expression_error", message=f"suppressed: {exc}",
                            playbook=pb.id, account_id=ev.account_id, occurrence="",
                            trigger=TriggerRef(index=index, kind=pb.triggers[index].kind), trigger_data={},
                            run_id=run_id_for(pb.id, ev.account_id, ""), seen={"timeout_s": self._matcher.timeout})


monotonic = time.monotonic
"""The clock of the account answers' memory (tests move it)."""


