"""An event that keeps failing: retried after a back-off while its account's later events wait, set
aside as failed after MAX_ATTEMPTS, listed and queued again; on a real store and the built-in CRM.

The clock is the Ingestor's ``now``: no sleeps. The poison event is a ``billing.poison`` whose
playbook's start fails while ``Poison.broken`` is set (as a Temporal or CRM call that keeps failing).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest

from connectors.base import RetryableError
from connectors.sqlcrm import SQLCRM
from engine.language.model import Playbook
from engine.store.store import MAX_ATTEMPTS, Store, retry_delay
from engine.triggers.ingest import Ingestor
from engine.triggers.signals import Decision
from tests.unit.test_ingest import Rig, ev, playbook, seed


@dataclass
class Poison:
    """Starts runs, except of the ``poison`` playbook while ``broken``."""

    rig: Rig
    broken: bool | str = True
    tries: int = 0
    started: list[str] = field(default_factory=list)

    async def start(self, pb: Playbook, decision: Decision) -> tuple[str, str]:
        if pb.id == "poison":
            self.tries += 1
            if self.broken == "outage":
                raise RetryableError("Temporal is unreachable")
            if self.broken:
                raise RuntimeError("CRM record 42 is corrupt")
        self.started.append(decision.run_id)
        return "started", f"trid-{len(self.started)}"

    def ingestor(self, max_attempts: int = MAX_ATTEMPTS) -> Ingestor:
        return Ingestor(store=self.rig.store, crm=self.rig.crm, playbooks=lambda: self.rig.books, start=self.start,
                        signal_run=self.rig.signal_run, now=lambda: self.rig.clock[0], max_attempts=max_attempts)


@pytest.fixture
async def poison(tmp_path: Path) -> AsyncIterator[Poison]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    seed(crm)
    rig = Rig(store, crm)
    rig.add(playbook("poison", "event: {type: billing.poison}"), playbook("replied", "event: {type: email.replied}"))
    yield Poison(rig)
    store.close()
    crm.close()


async def send(p: Poison, ingest: Ingestor, *events: dict[str, object]) -> None:
    for one in events:
        [res] = await ingest.ingest([one])
        assert res.status == ("unknown_account" if one["account_id"] == "beta" else "accepted")
        p.rig.clock[0] += timedelta(seconds=1)  # received one after another


async def test_a_poison_event_fails_after_max_attempts_holding_back_only_its_account(
        poison: Poison, caplog: pytest.LogCaptureFixture) -> None:
    # The poison event p1 was received first, then acme's a1 and a2, then beta's b1; a3 comes later.
    store, clock = poison.rig.store, poison.rig.clock
    ingest = poison.ingestor()
    await send(poison, ingest, ev("p1", "billing.poison"), ev("a1", "email.replied", {"n": 1}),
               ev("a2", "email.replied", {"n": 2}), ev("b1", "email.replied", {"n": 1}, account="beta"))
    passes: list[list[str]] = []
    for attempt in range(1, MAX_ATTEMPTS + 1):
        if attempt == 3:  # one more of acme's arrives while p1 is being retried: it waits too
            await send(poison, ingest, ev("a3", "email.replied", {"n": 3}))
        done = await ingest.process_pending()
        passes.append([p.id for p in done])
        got = await store.get_event("p1")
        assert got is not None and got.attempts == attempt
        assert got.last_error == "RuntimeError: CRM record 42 is corrupt"
        if attempt < MAX_ATTEMPTS:
            assert got.failed_at is None
            [failed] = [p for p in done if p.id == "p1"]
            wait = retry_delay(attempt)
            assert f"tried again in {int(wait.total_seconds())} s" in failed.error
            # Nothing is claimed before the back-off is over, not even the account's later events.
            clock[0] += wait - timedelta(seconds=1)
            assert await ingest.process_pending() == []
            clock[0] += timedelta(seconds=1)
    assert passes[0] == ["p1", "b1"]  # another account's event is not held back
    assert passes[1:-1] == [["p1"]] * (MAX_ATTEMPTS - 2)
    assert passes[-1] == ["p1", "a1", "a2", "a3"]  # set aside: the account goes on, in order
    assert poison.tries == MAX_ATTEMPTS
    assert poison.started == ["pb:replied:acme:once"]  # beta is not in the CRM: processed, nothing to start
    decided = [(d.signal["id"], d.outcome) for d in reversed(await store.decisions(account_id="acme"))]
    assert decided == [*[("p1", "failed")] * MAX_ATTEMPTS, ("a1", "started"), ("a2", "suppressed"),
                       ("a3", "suppressed")]
    [aside] = await store.failed_events()
    assert (aside.id, aside.attempts, aside.failed_at) == ("p1", MAX_ATTEMPTS, clock[0])
    assert await store.pending_count() == 0
    clock[0] += timedelta(days=1)
    assert await ingest.process_pending() == []  # never claimed again
    assert [r.message for r in caplog.records if r.levelno == logging.ERROR] == [
        f"event p1 (billing.poison, account acme) failed {MAX_ATTEMPTS} times and is set aside; the account's later "
        "events go on. Last error: RuntimeError: CRM record 42 is corrupt. `csops event retry p1` queues it again"]
    # The back-offs: 30 s, 1, 2, 4 min, then the 5 min lease; 22.5 minutes from the first attempt to the last.
    assert sum((retry_delay(n) for n in range(1, MAX_ATTEMPTS)), timedelta()) == timedelta(minutes=22, seconds=30)


async def test_a_retried_event_is_processed_once_the_cause_is_gone(poison: Poison) -> None:
    store, clock = poison.rig.store, poison.rig.clock
    ingest = poison.ingestor(max_attempts=2)
    await send(poison, ingest, ev("p1", "billing.poison"))
    [first] = await ingest.process_pending()
    assert "attempt 1 failed" in first.error
    clock[0] += retry_delay(1)
    [last] = await ingest.process_pending()
    assert "attempt 2, the last: it is set aside as failed" in last.error
    assert "csops event retry p1" in last.error and await store.pending_count() == 0
    await send(poison, ingest, ev("a1", "email.replied", {"n": 1}))
    assert [p.id for p in await ingest.process_pending()] == ["a1"]
    poison.broken = False
    assert await store.requeue(["p1", "a1", "nope", "p1"]) == {"p1": "requeued", "a1": "processed",
                                                                "nope": "unknown"}
    got = await store.get_event("p1")
    assert got is not None and (got.attempts, got.last_error, got.failed_at) == (0, "", None)
    assert await store.pending_count() == 1 and await store.failed_events() == []
    [done] = await ingest.process_pending()
    assert done.id == "p1" and done.error == "" and poison.started == ["pb:replied:acme:once", "pb:poison:acme:once"]
    assert await store.pending_count() == 0


async def test_the_cli_path_says_an_event_waits_behind_a_retrying_one(poison: Poison) -> None:
    ingest = poison.ingestor()
    [res] = await ingest.ingest([ev("p1", "billing.poison")], process=True)
    assert "it stays queued and is tried again in 30 s (attempt 1 failed)" in res.notes[-1]
    poison.rig.clock[0] += timedelta(seconds=10)
    [res] = await ingest.ingest([ev("a1", "email.replied", {"n": 1})], process=True)
    assert res.status == "accepted" and res.decisions == ()
    assert res.notes == ("not processed yet: an earlier event of the account is still queued (being retried, or "
                         "taken by another processor); it stays queued and is processed after that one",)
    assert await poison.rig.store.pending_count() == 2


def test_max_attempts_must_be_at_least_one(poison: Poison) -> None:
    with pytest.raises(ValueError, match="max_attempts must be 1 or more, not 0"):
        poison.ingestor(max_attempts=0)


async def test_an_outage_is_retried_without_limit_and_loses_no_event(poison: Poison) -> None:
    # Temporal down for hours: the event counts its attempts but is never set aside, and the
    # account's later event keeps its place behind it; both go through once Temporal is back.
    store, clock = poison.rig.store, poison.rig.clock
    poison.broken = "outage"
    ingest = poison.ingestor(max_attempts=2)
    await send(poison, ingest, ev("p1", "billing.poison"), ev("a1", "email.replied", {"n": 1}))
    for _ in range(5):
        assert [p.id for p in await ingest.process_pending()] == ["p1"]
        clock[0] += timedelta(hours=1)
    got = await store.get_event("p1")
    assert got is not None and (got.attempts, got.failed_at) == (5, None)
    assert got.last_error == "RetryableError: Temporal is unreachable"
    assert await store.failed_events() == [] and await store.pending_count() == 2
    poison.broken = False
    assert [p.id for p in await ingest.process_pending()] == ["p1", "a1"]
    assert poison.started == ["pb:poison:acme:once", "pb:replied:acme:once"]
