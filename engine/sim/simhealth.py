"""``csops health simulate --account FILE --events FILE``: the model over timed events, and the play it starts.

The account (an account file, as ``csops simulate`` reads it) goes into a scratch built-in CRM and
store; the timed events (the ``csops simulate`` format: ``at`` and an event ``type`` with ``data``,
or ``account`` field changes) are fed on a simulated clock through the real event pipeline
(engine.triggers.ingest.Ingestor) with the model in force, and the account is also recomputed at the start
of every simulated day, as the daily scan would. Each computed score that changes is a line of the
health timeline. With ``--playbook``, the first run the pipeline starts from a computed score (a
``health_drop`` trigger firing) is then simulated with ``engine.sim.simulate.simulate`` from that moment,
with the events still to come, and its timeline is printed as ``csops simulate`` prints it.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from connectors.sqlcrm import SQLCRM
from engine.health.recompute import health_event, recompute_account
from engine.language.health_model import HealthModel
from engine.language.model import Playbook
from engine.store.store import Store
from engine.triggers.signals import Decision

__all__ = ["HealthTimeline", "simulate_health"]


@dataclass
class HealthTimeline:
    """What the model did over the simulated period."""

    begin: datetime
    """The simulation's start."""
    lines: list[str] = field(default_factory=list)
    """One line per recorded score (and per run the pipeline started)."""
    started: tuple[datetime, Decision] | None = None
    """When the first run was started from a computed score, and the decision."""
    account: Any = None
    """The account as the CRM had it when that run started (its health score is the computed one)."""
    play: str = ""
    """The started playbook's simulated timeline (``--playbook``), as csops simulate prints it."""


def _day(begin: datetime, at: datetime) -> str:
    return f"day {(at.date() - begin.date()).days:>3} {at.strftime('%H:%M')}"


async def simulate_health(model: HealthModel, account: Mapping[str, Any], *, contacts: Sequence[Any] = (),
                          users: Sequence[Any] = (), events: Sequence[Mapping[str, Any]] = (),
                          playbook: Playbook | None = None, days: int = 30,
                          start: datetime | None = None) -> HealthTimeline:
    """Run the model over ``days`` simulated days of timed events; see the module docstring.

    Raises:
        engine.sim.simulate.SimulationError: bad account data or events.
    """
    from engine.sim.recording import SeedError, seed_records
    from engine.sim.simevents import parse_events
    from engine.sim.simulate import SimulationError
    from engine.triggers.ingest import Ingestor

    begin = (start or datetime.now(UTC) + timedelta(minutes=1)).replace(second=0, microsecond=0)
    try:
        acc, people, staff = seed_records(account, [c for c in contacts if isinstance(c, Mapping)],
                                          [u for u in users if isinstance(u, Mapping)], today=begin.date())
        timed = parse_events(events, begin)
    except (SeedError, ValueError) as exc:
        raise SimulationError(str(exc)) from None
    out = HealthTimeline(begin=begin)
    clock = [begin]
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'sim.db'}"
        store, crm = Store(url), SQLCRM(url)
        try:
            for user in staff:
                crm.add_user(user)
            crm.add_account(acc)
            for contact in people:
                crm.add_contact(contact)

            async def start_run(pb: Playbook, decision: Decision) -> tuple[str, str]:
                if out.started is None:
                    out.started = (clock[0], decision)
                    out.account = await crm.get_account(acc.id)
                out.lines.append(f"{_day(begin, clock[0])}  {pb.id} starts: {decision.message}")
                return "started", "simulated"

            async def delivered(run_id: str, event: Any) -> bool:
                return True

            books = {playbook.id: playbook} if playbook is not None else {}
            ingestor = Ingestor(store=store, crm=crm, playbooks=lambda: books, start=start_run,
                                signal_run=delivered, now=lambda: clock[0])
            stops = sorted({*(e.at for e in timed), *(begin + timedelta(days=d) for d in range(days + 1))})
            seen = 0
            for at in stops:
                clock[0] = at
                batch = [_as_event(e, acc.id, n) for n, e in enumerate(timed) if e.at == at and (e.type or e.account)]
                cause = ""
                if batch:  # the events of one moment are applied together, then the account recomputed once
                    ingestor.health_model = False  # type: ignore[attr-defined]
                    await ingestor.ingest(batch, process=True)
                    ingestor.health_model = model  # type: ignore[attr-defined]
                    cause = f"event:{batch[-1]['id']}"
                elif at > begin and (at - begin) % timedelta(days=1) == timedelta(0):
                    cause = f"scan:{at.date().isoformat()}"  # as the daily scan: windows move, days pass
                if cause:
                    done = await recompute_account(store, crm, model, acc.id, at)
                    if done is not None and done.changed:
                        await ingestor.ingest([health_event(model, acc.id, done.result, cause=cause, at=at)])
                await ingestor.process_pending()
                sent = await store.events_for(acc.id, types=["health.updated"])
                for ev in sent[seen:]:
                    d = ev.data
                    out.lines.append(f"{_day(begin, ev.occurred_at)}  health {d['score']:g} {d['band']:<6} "
                                     f"({d.get('cause', 'sent')})  {d.get('why', '')}".rstrip())
                seen = len(sent)
            if playbook is not None and out.started is not None:
                out.play = await _play(playbook, out.account, people, staff, timed, out.started[0], begin, days)
        finally:
            store.close()
            crm.close()
    return out


def _as_event(e: Any, account_id: str, n: int) -> dict[str, Any]:
    """A timed event as a pipeline event: ``account`` changes become ``account.updated``."""
    kind, data = (e.type, dict(e.data)) if e.type else ("account.updated", {"fields": dict(e.account)})
    return {"id": e.id or f"sim-{n + 1}", "type": kind, "account_id": account_id,
            "occurred_at": e.at.isoformat(), "data": data}


async def _play(playbook: Playbook, account: Any, people: Sequence[Any], staff: Sequence[Any],
                timed: Sequence[Any], at: datetime, begin: datetime, days: int) -> str:
    """The started playbook simulated from ``at`` with the account as it was then and the events still to come."""
    from engine.sim.simulate import format_timeline, simulate
    later = [{"at": e.at.isoformat(), **({"type": e.type, "data": dict(e.data)} if e.type else {}),
              **({"account": dict(e.account)} if e.account else {}),
              **({"complete_task": e.complete_task} if e.complete_task else {})} for e in timed if e.at > at]
    timeline = await simulate(playbook, account, contacts=people, users=staff, events=later, start=at,
                              days=max(days - (at - begin).days, 1))
    return format_timeline(timeline)
