"""The event pipeline on a real store and the built-in CRM: validation, idempotency, facts, decisions, routing.

Runs are started through a recording ``start`` (the workflow side is in
tests/workflows/test_event_routing.py). The account is acme (strategic, renew stage, health 80
green, renewing 2027-03-01); it is Monday 2026-11-23, 10:00 UTC.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.payloads.runtypes import Event
from engine.store.claims import release_claims
from engine.store.store import EventRecord, Store
from engine.triggers.ingest import Ingestor, validate_event
from engine.triggers.signals import Decision

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "schemas" / "event.schema.json").read_text())


def playbook(pid: str, triggers: str, extra: str = "") -> Playbook:
    text = f"playbook: {pid}\ntitle: T\ntriggers:\n  - {triggers}\n{extra}steps:\n  - id: t\n    task: {{title: T}}\n"
    result = check_text(text)
    assert [p.message for p in result.problems if p.severity == "error"] == []
    assert result.playbook is not None
    return result.playbook


def ev(event_id: str, type_: str, data: Mapping[str, Any] | None = None, *, account: str = "acme",
       at: datetime = NOW) -> dict[str, Any]:
    return {"id": event_id, "type": type_, "account_id": account, "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "data": dict(data or {})}


@dataclass
class Rig:
    store: Store
    crm: SQLCRM
    books: dict[str, Playbook] = field(default_factory=dict)
    starts: list[Decision] = field(default_factory=list)
    signals: list[tuple[str, Event]] = field(default_factory=list)
    gone: dict[str, str] = field(default_factory=dict)
    """run id → what signal_run answers for it (a run Temporal no longer has)."""
    clock: list[datetime] = field(default_factory=lambda: [NOW])
    fail_starts: int = 0

    async def start(self, pb: Playbook, decision: Decision) -> tuple[str, str]:
        if self.fail_starts:
            self.fail_starts -= 1
            raise RuntimeError("Temporal is unreachable")
        self.starts.append(decision)
        return "started", f"trid-{len(self.starts)}"

    async def signal_run(self, run_id: str, event: Event) -> bool | str:
        if run_id in self.gone:
            return self.gone[run_id]
        self.signals.append((run_id, event))
        return True

    def ingestor(self, store: Store | None = None) -> Ingestor:
        return Ingestor(store=store or self.store, crm=self.crm, playbooks=lambda: self.books, start=self.start,
                        signal_run=self.signal_run, now=lambda: self.clock[0])

    def add(self, *books: Playbook) -> None:
        self.books.update({b.id: b for b in books})


def seed(crm: SQLCRM) -> None:
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM"))
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", lifecycle_stage="renew", owner_id="u-csm",
                            arr=120000.0, renewal_date=date(2027, 3, 1), health_score=80, health_band="green"))


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    seed(crm)
    yield Rig(store, crm)
    store.close()
    crm.close()


# --- validation ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("obj", "messages"), [
    (ev("e1", "health.updated", {"score": 140}), ["data.score: must be a number 0-100, not 140"]),
    (ev("e1", "health.updated", {"score": True}), ["data.score: must be a number 0-100, not True"]),
    (ev("e1", "health.updated", {"band": "red"}), ["data.score: is required for health.updated"]),
    (ev("e1", "health.updated", {"score": 5, "band": "blue"}), ["data.band: must be green, yellow or red, not 'blue'"]),
    (ev("e1", "usage.feature_used", {}), ["data.feature: is required for usage.feature_used"]),
    (ev("e1", "task.completed", {"task_id": ""}),
     ["data.task_id: is required for task.completed: the id of the completed task"]),
    (ev("e1", "account.updated", {"fields": {}}),
     ["data.fields: is required for account.updated: an object of changed fields and their new values"]),
    (ev("e1", "account.updated", {"fields": {"renewal_date": "next year", "tier": 1, "fields.tier": 1}}),
     ["data.fields.renewal_date: must be a date YYYY-MM-DD (or null to clear it), not 'next year'",
      "data.fields.tier: is not an account field; the fields are name, segment, lifecycle_stage, owner, arr, "
      "renewal_date, contract_start, renewal_status, health_band, health_score or fields.NAME"]),
    ({"id": "", "type": "Health", "account_id": "acme", "occurred_at": "2026-11-23 10:00", "data": [], "x": 1},
     ["x: is not a field of an event; the fields are id, type, account_id, occurred_at, data",
      "id: must be text of 1 to 255 characters",
      "type: must be a dotted lower-case name like health.updated or billing.invoice_overdue, not 'Health'",
      "occurred_at: must be an RFC 3339 date-time with a time zone, like 2025-03-01T09:30:00Z, not '2026-11-23 10:00'",
      "data: must be a JSON object, not a list"]),
    ({}, ["id: is required", "account_id: is required", "type: is required", "occurred_at: is required"]),
    ([1], ["(event): must be a JSON object, not a list"]),
])
def test_validation_says_what_is_wrong_with_its_path(obj: Any, messages: list[str]) -> None:
    assert validate_event(obj) == messages


VALID = [ev("e1", "health.updated", {"score": 42.5, "band": "red"}), ev("e2", "usage.feature_used", {"feature": "sso"}),
         ev("e3", "account.updated", {"fields": {"renewal_date": "2027-01-01", "fields.tier": "gold"}}),
         ev("e4", "task.completed", {"task_id": "t-1"}), ev("e5", "billing.invoice_overdue", {"n": [1]}),
         {"id": "e6", "type": "email.replied", "account_id": "a", "occurred_at": "2026-11-23T10:00:00.5+05:30"}]


def test_the_validator_agrees_with_the_published_schema() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    schema = Draft202012Validator(SCHEMA)
    invalid = [ev("x", "health.updated", {"score": 101}), ev("x", "health.updated", {}),
               ev("x", "usage.feature_used", {"feature": ""}), ev("x", "account.updated", {"fields": {"tier": 1}}),
               ev("x", "task.completed", {}), ev("x", "Custom", {}), {**ev("x", "a.b"), "extra": 1},
               {**ev("x", "a.b"), "occurred_at": "2026-11-23T10:00:00"}, {**ev("x", "a.b"), "data": 3}]
    for obj in VALID:
        assert validate_event(obj) == [] and list(schema.iter_errors(obj)) == [], obj
    for obj in invalid:
        assert validate_event(obj) != [] and list(schema.iter_errors(obj)) != [], obj


@pytest.mark.parametrize("kind", [["a.b"], {"a": "b"}, 3, None, "A.b", "a" * 99 + "." + "b" * 101])
def test_a_type_seen_valid_before_does_not_let_another_through(kind: Any) -> None:
    """The validator remembers types that passed (the API's fast path): a valid type passes again, and
    one that is not text (not even hashable), or not a dotted name, is refused each time."""
    for _ in range(2):
        assert validate_event(ev("ok", "a.b", {})) == []
        problems = validate_event({**ev("x", "a.b", {}), "type": kind})
        assert len(problems) == 1 and problems[0].startswith("type: must be a dotted lower-case name"), problems


# --- storing: idempotent by id ---------------------------------------------------------------------

async def test_a_duplicate_is_answered_and_a_rejected_event_is_never_stored(rig: Rig) -> None:
    ingest = rig.ingestor()
    first = await ingest.ingest([ev("e1", "email.replied"), ev("e1", "email.replied"),
                                 ev("bad", "health.updated", {"score": -1})])
    assert [(r.id, r.status) for r in first] == [("e1", "accepted"), ("e1", "duplicate"), ("bad", "rejected")]
    assert first[2].errors == ("data.score: must be a number 0-100, not -1",)
    again = await ingest.ingest([ev("e1", "email.replied", {"changed": True})])
    assert [(r.id, r.status) for r in again] == [("e1", "duplicate")]
    assert await rig.store.get_event("bad") is None
    assert (await rig.store.get_event("e1")).data == {}  # type: ignore[union-attr]
    assert await rig.store.pending_count() == 1


async def test_fifty_concurrent_posts_of_one_event_start_exactly_one_run(db_url: str) -> None:
    # Two ingestors on two stores: two API servers sharing the database.
    stores = [Store(db_url), Store(db_url)]
    crm = SQLCRM(db_url)
    try:
        seed(crm)
        rig = Rig(stores[0], crm)
        rig.add(playbook("risk", "health_drop: {below: 50}"))
        ingestors = [rig.ingestor(stores[0]), rig.ingestor(stores[1])]
        event = ev("drop-1", "health.updated", {"score": 30})
        results = await asyncio.gather(*(ingestors[i % 2].ingest([event]) for i in range(50)))
        assert sorted(r[0].status for r in results) == ["accepted"] + ["duplicate"] * 49
        processed = await asyncio.gather(*(ingestors[i % 2].process_pending() for i in range(4)))
        assert [p.id for batch in processed for p in batch] == ["drop-1"]
        assert [d.run_id for d in rig.starts] == ["pb:risk:acme:once"]
        decisions = await stores[0].decisions(account_id="acme")
        assert [(d.outcome, d.reason) for d in decisions] == [("started", "started")]
        assert await stores[1].pending_count() == 0
    finally:
        for s in stores:
            s.close()
        crm.close()


# --- facts and decisions ---------------------------------------------------------------------------

async def test_a_health_drop_below_the_threshold_starts_one_run_and_updates_the_crm(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"), playbook("other", "event: {type: email.replied}"))
    ingest = rig.ingestor()
    [res] = await ingest.ingest([ev("h1", "health.updated", {"score": 42, "band": "red"})], process=True)
    assert res.status == "accepted"
    assert res.decisions == ("risk: started (started): started pb:risk:acme:once",)
    [decision] = rig.starts
    assert decision.trigger_data["score"] == 42 and decision.trigger_data["previous_score"] == 80.0
    account = await rig.crm.get_account("acme")
    assert account is not None
    assert (account.health_score, account.health_band, account.previous_health_score) == (42, "red", 80)
    assert await rig.store.last_health("acme") == (42.0, "red")
    # Still below: no crossing, no decision; the run is recorded as running.
    [res] = await ingest.ingest([ev("h2", "health.updated", {"score": 30}, at=NOW + timedelta(hours=1))],
                                process=True)
    assert res.decisions == () and len(rig.starts) == 1
    assert (await rig.store.active_run("risk", "acme")) == "pb:risk:acme:once"


async def test_suppressed_decisions_are_recorded_with_their_reason_and_values(rig: Rig) -> None:
    rig.add(playbook("smb-only", "health_drop: {below: 50}", "audience: {segments: [smb]}\n"),
            playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()
    await ingest.ingest([ev("h1", "health.updated", {"score": 40})], process=True)
    await ingest.ingest([ev("h2", "health.updated", {"score": 70}, at=NOW + timedelta(hours=1))], process=True)
    [res] = await ingest.ingest([ev("h3", "health.updated", {"score": 20}, at=NOW + timedelta(hours=2))],
                                process=True)
    assert sorted(res.decisions) == [
        "risk: suppressed (already_active): suppressed: a run is already active (pb:risk:acme:once)",
        "smb-only: suppressed (audience_segment): suppressed: segment is 'strategic', not one of the audience "
        "segments (smb)"]
    records = await rig.store.decisions(account_id="acme")
    got = [(d.playbook, d.outcome, d.reason, d.signal["id"], d.seen.get("score"), d.seen.get("previous_score"))
           for d in reversed(records)]
    assert got == [("smb-only", "suppressed", "audience_segment", "h1", 40.0, 80.0),
                   ("risk", "started", "started", "h1", 40.0, 80.0),
                   ("smb-only", "suppressed", "audience_segment", "h3", 20.0, 70.0),
                   ("risk", "suppressed", "already_active", "h3", 20.0, 70.0)]
    assert records[0].seen["active_run"] == "pb:risk:acme:once" and records[0].seen["segment"] == "strategic"


async def test_a_cooldown_suppresses_a_new_run(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}", "entry: {cooldown: 30d}\n"))
    await rig.store.add_run(run_id="pb:risk:acme:once", playbook="risk", version="v", account_id="acme",
                            started_at=NOW - timedelta(days=20))
    await rig.store.end_run("pb:risk:acme:once", status="completed", at=NOW - timedelta(days=10))
    [res] = await rig.ingestor().ingest([ev("h1", "health.updated", {"score": 40})], process=True)
    assert len(res.decisions) == 1 and res.decisions[0].startswith("risk: suppressed (cooldown): suppressed: "
                                                                   "cooldown 30d after the last run")
    [record] = await rig.store.decisions(account_id="acme")
    assert record.seen["cooldown_until"] == (NOW + timedelta(days=20)).isoformat() and rig.starts == []


async def test_a_first_use_sent_twice_starts_one_run(rig: Rig) -> None:
    rig.add(playbook("expand", "new_usage: {feature: reports}"))
    ingest = rig.ingestor()
    one = await ingest.ingest([ev("u1", "usage.feature_used", {"feature": "reports", "product": "bi"})], process=True)
    two = await ingest.ingest([ev("u2", "usage.feature_used", {"feature": "reports"}, at=NOW + timedelta(days=1))],
                              process=True)
    assert one[0].decisions == ("expand: started (started): started pb:expand:acme:reports",)
    assert two[0].status == "accepted" and two[0].decisions == ()
    assert [d.occurrence for d in rig.starts] == ["reports"]
    account = await rig.crm.get_account("acme")
    assert account is not None and account.usage == {"reports": "2026-11-23", "bi": "2026-11-23"}


async def test_a_renewal_date_edit_evaluates_the_milestone_at_once(rig: Rig) -> None:
    rig.add(playbook("renewal", "contract_milestone: {field: renewal_date, days_before: 90}"))
    # 30 days out: the 90-day milestone has passed but the date has not, so the edit makes it due now.
    [res] = await rig.ingestor().ingest([ev("a1", "account.updated", {"fields": {"renewal_date": "2026-12-23"}})],
                                        process=True)
    assert res.decisions == ("renewal: started (started): started pb:renewal:acme:2026-12-23",)
    [record] = await rig.store.decisions(account_id="acme")
    assert record.seen["milestone_day"] == "2026-09-24" and record.seen["date"] == "2026-12-23"
    account = await rig.crm.get_account("acme")
    assert account is not None and account.renewal_date == date(2026, 12, 23)


async def test_a_lifecycle_change_sees_the_stage_before_the_edit(rig: Rig) -> None:
    rig.add(playbook("onboard", "lifecycle_change: {to: onboard, from: renew}"))
    [res] = await rig.ingestor().ingest([ev("a1", "account.updated", {"fields": {"lifecycle_stage": "onboard"}})],
                                        process=True)
    assert res.decisions == ("onboard: started (started): started pb:onboard:acme:once",)
    assert rig.starts[0].trigger_data["previous_stage"] == "renew"


async def test_an_unknown_account_keeps_the_facts_and_says_so(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    [res] = await rig.ingestor().ingest([ev("h1", "health.updated", {"score": 10}, account="nobody")], process=True)
    assert res.status == "unknown_account" and res.decisions == () and rig.starts == []
    assert res.errors == ("account_id: the CRM has no account 'nobody'; the event is stored and its facts kept, but "
                          "it starts nothing until the account exists (check the id, or import the account first)",)
    assert res.notes[0].startswith("account nobody is not in the CRM")
    assert await rig.store.last_health("nobody") == (10.0, "")


# --- the queue: nothing stored is lost -------------------------------------------------------------

async def test_a_failed_start_keeps_the_event_queued_and_a_retry_still_sees_the_crossing(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()
    rig.fail_starts = 1
    [res] = await ingest.ingest([ev("h1", "health.updated", {"score": 40})])
    assert res.status == "accepted" and res.decisions == ()
    [done] = await ingest.process_pending()
    assert "Temporal is unreachable" in done.error and await rig.store.pending_count() == 1
    assert await ingest.process_pending() == []  # claimed: nobody takes it before the lease lapses
    rig.clock[0] = NOW + timedelta(minutes=6)
    [done] = await ingest.process_pending()
    assert done.error == "" and done.decisions == ("risk: started (started): started pb:risk:acme:once",)
    outcomes = [(d.outcome, d.seen["previous_score"]) for d in reversed(await rig.store.decisions())]
    assert outcomes == [("failed", 80.0), ("started", 80.0)]
    assert len(await rig.store.health_since("acme", NOW)) == 1  # the retry did not record the score twice
    assert await rig.store.pending_count() == 0


async def test_a_processor_that_died_leaves_its_events_to_the_next_after_the_lease(rig: Rig) -> None:
    ingest = rig.ingestor()
    await ingest.ingest([ev("e1", "email.replied"), ev("e2", "email.replied")])
    claimed = await rig.store.unprocessed(10, now=NOW)  # a processor claims both, then dies
    assert [e.id for e in claimed] == ["e1", "e2"]
    assert await ingest.process_pending() == []
    rig.clock[0] = NOW + timedelta(minutes=5, seconds=1)
    assert [p.id for p in await ingest.process_pending()] == ["e1", "e2"]


async def test_the_run_loop_processes_what_ingest_accepts(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()
    loop = asyncio.create_task(ingest.run(poll=60))
    try:
        await ingest.ingest([ev("h1", "health.updated", {"score": 40})])
        async with asyncio.timeout(10):
            while await rig.store.pending_count():
                await asyncio.sleep(0.01)
    finally:
        loop.cancel()
    assert [d.run_id for d in rig.starts] == ["pb:risk:acme:once"]


async def test_a_backlog_is_processed_in_growing_rounds_each_event_once(rig: Rig) -> None:
    ingest = rig.ingestor()
    claims: list[int] = []
    marked: list[str] = []
    claim, mark = rig.store.unprocessed, rig.store.mark_processed

    async def claiming(limit: int = 100, **kw: Any) -> list[EventRecord]:
        claims.append(limit)
        return await claim(limit, **kw)

    async def marking(ids: Sequence[str], **kw: Any) -> None:
        marked.extend(ids)
        await mark(ids, **kw)

    rig.store.unprocessed, rig.store.mark_processed = claiming, marking  # type: ignore[method-assign]
    await ingest.ingest([ev(f"e{n}", "email.replied", account=f"a{n % 7}") for n in range(75)])
    loop = asyncio.create_task(ingest.run(poll=60, limit=5))
    async with asyncio.timeout(10):
        while await rig.store.pending_count():
            await asyncio.sleep(0.01)
    ingest.stop()
    async with asyncio.timeout(10):
        await loop
    # A full round means a backlog: the next one takes twice as many (two commits per round, whatever its size);
    # a round that finds the queue empty (if it came before the stop) is the last before the loop waits.
    assert claims[:4] == [5, 10, 20, 40]
    assert claims[4:] in ([], [80])
    assert sorted(marked) == sorted(f"e{n}" for n in range(75))


async def test_stop_ends_the_run_loop_after_its_round_with_nothing_left_claimed(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()

    async def start_then_stop(pb: Playbook, decision: Decision) -> tuple[str, str]:
        ingest.stop()  # SIGTERM in the middle of a round: the round goes to its end, its events marked
        return await rig.start(pb, decision)

    ingest.start = start_then_stop
    loop = asyncio.create_task(ingest.run(poll=60))
    await ingest.ingest([ev("h1", "health.updated", {"score": 40}), ev("u1", "email.replied")])
    async with asyncio.timeout(10):
        await loop
    assert [d.run_id for d in rig.starts] == ["pb:risk:acme:once"]
    assert await rig.store.pending_count() == 0  # nothing left claimed to wait out a lease
    await ingest.ingest([ev("u2", "email.replied")])
    assert await rig.store.pending_count() == 1  # and nothing processes after the stop


async def test_a_round_cut_short_gives_its_claims_back_at_once(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()
    starting, never = asyncio.Event(), asyncio.Event()

    async def hang(pb: Playbook, decision: Decision) -> tuple[str, str]:
        starting.set()  # Temporal never answers: the round cannot end by itself
        await never.wait()
        raise AssertionError("unreachable")

    ingest.start = hang
    await ingest.ingest([ev("h1", "health.updated", {"score": 40}), ev("u1", "email.replied"),
                         ev("o1", "email.replied", account="other")])
    cut = asyncio.create_task(ingest.process_pending())
    async with asyncio.timeout(10):
        await starting.wait()
    assert await rig.store.unprocessed(10, now=NOW) == []  # all three are the round's
    cut.cancel()
    with pytest.raises(asyncio.CancelledError):
        await cut
    # Back in the queue at the same moment, not after the lease, and no attempt counted.
    again = await rig.store.unprocessed(10, now=NOW)
    assert sorted((e.id, e.attempts) for e in again) == [("h1", 0), ("o1", 0), ("u1", 0)]
    assert await release_claims(rig.store, ["h1", "u1", "o1"], at=NOW - timedelta(seconds=1)) == 0  # not ours
    assert await rig.store.unprocessed(10, now=NOW) == []  # so they stay with whoever took them
    assert await release_claims(rig.store, ["h1", "u1", "o1"], at=NOW) == 3


async def test_data_that_is_not_json_or_a_time_past_year_9999_is_refused_alone(rig: Rig) -> None:
    bad = [ev("n1", "email.replied", {"x": {1, 2}}),
           {**ev("y1", "email.replied"), "occurred_at": "9999-12-31T23:00:00-05:00"}]
    answers = await rig.ingestor().ingest([ev("ok1", "email.replied"), *bad, ev("ok2", "email.replied")])
    assert [(a.id, a.status) for a in answers] == [("ok1", "accepted"), ("n1", "rejected"), ("y1", "rejected"),
                                                   ("ok2", "accepted")]
    assert "must be JSON" in answers[1].errors[0]
    assert answers[2].errors == ("occurred_at: is outside the years 1 to 9999 once converted to UTC "
                                 "('9999-12-31T23:00:00-05:00'); send a real date-time",)
    assert await rig.store.pending_count() == 2


# --- routing to running runs -----------------------------------------------------------------------

async def test_an_event_reaches_the_accounts_running_runs_and_a_gone_run_is_marked_ended(rig: Rig) -> None:
    for run_id, account in (("pb:a:acme:once", "acme"), ("pb:b:acme:once", "acme"), ("pb:a:beta:once", "beta")):
        await rig.store.add_run(run_id=run_id, temporal_run_id="t", playbook=run_id.split(":")[1], version="v",
                                account_id=account, started_at=NOW - timedelta(days=1))
    rig.gone["pb:b:acme:once"] = "failed"
    [res] = await rig.ingestor().ingest([ev("t1", "task.completed", {"task_id": "task-9"})], process=True)
    assert res.notes == ("delivered to pb:a:acme:once",)
    assert [(r, e.type, e.data, e.occurred_at) for r, e in rig.signals] == [
        ("pb:a:acme:once", "task.completed", {"task_id": "task-9"}, "2026-11-23T10:00:00+00:00")]
    gone = await rig.store.get_run("pb:b:acme:once")
    assert gone is not None and gone.status == "failed" and "event t1" in gone.reason


async def test_a_run_the_store_has_as_active_is_checked_only_when_it_would_suppress(rig: Rig) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    asked: list[str] = []

    async def still_running(run_id: str) -> bool:
        # As engine.runtime.runrecord.is_running does: Temporal says the run ended, so its record is ended.
        asked.append(run_id)
        await rig.store.end_run(run_id, status="completed", at=rig.clock[0])
        return False

    ingest = Ingestor(store=rig.store, crm=rig.crm, playbooks=lambda: rig.books, start=rig.start,
                      signal_run=rig.signal_run, now=lambda: rig.clock[0], still_running=still_running)
    await ingest.ingest([ev("h1", "health.updated", {"score": 40})], process=True)
    # Still below 50: no trigger fires, so nothing asks Temporal about the active run.
    await ingest.ingest([ev("h2", "health.updated", {"score": 35}, at=NOW + timedelta(hours=1))], process=True)
    assert asked == [] and len(rig.starts) == 1
    await ingest.ingest([ev("h3", "health.updated", {"score": 70}, at=NOW + timedelta(hours=2))], process=True)
    [res] = await ingest.ingest([ev("h4", "health.updated", {"score": 20}, at=NOW + timedelta(hours=3))],
                                process=True)
    # The run the store had as active had ended: a new run starts instead of a suppression.
    assert asked == ["pb:risk:acme:once"]
    assert res.decisions == ("risk: started (started): started pb:risk:acme:once",) and len(rig.starts) == 2


async def test_a_run_started_by_an_event_gets_the_accounts_next_event_in_the_same_batch(rig: Rig) -> None:
    rig.add(playbook("risk", "event: {type: billing.invoice_overdue}"))
    done = await rig.ingestor().ingest([ev("o1", "billing.invoice_overdue"),
                                        ev("t1", "task.completed", {"task_id": "task-9"})], process=True)
    assert [d.run_id for d in rig.starts] == ["pb:risk:acme:once"]
    assert [(r, e.id) for r, e in rig.signals] == [("pb:risk:acme:once", "t1")]
    assert done[1].notes == ("delivered to pb:risk:acme:once",)


async def test_a_run_another_process_starts_during_a_round_still_gets_the_rounds_events(rig: Rig) -> None:
    # The round asks the store once which accounts have running runs; a run another process (the scan,
    # csops start) records after that question is asked again at the end of the round, not missed.
    async def another_process_starts_a_run(event: Any) -> None:
        if not await rig.store.get_run("pb:other:acme:once"):
            await rig.store.add_run(run_id="pb:other:acme:once", temporal_run_id="t", playbook="other", version="v",
                                    account_id="acme", started_at=NOW)

    ingest = Ingestor(store=rig.store, crm=rig.crm, playbooks=lambda: rig.books, start=rig.start,
                      signal_run=rig.signal_run, now=lambda: rig.clock[0], suppress=another_process_starts_a_run)
    done = await ingest.ingest([ev("c1", "account.churned"), ev("b1", "nps.submitted", {"score": 3}, account="beta")],
                               process=True)
    assert [(r, e.id) for r, e in rig.signals] == [("pb:other:acme:once", "c1")]
    assert done[0].notes == ("delivered to pb:other:acme:once",) and done[1].notes == ()


async def test_the_crm_is_read_only_for_events_something_uses_the_account_of(rig: Rig,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    rig.add(playbook("risk", "health_drop: {below: 50}"))
    ingest = rig.ingestor()
    await ingest.ingest([ev("n1", "nps.submitted", {"score": 3}), ev("h1", "health.updated", {"score": 40}),
                         ev("n2", "nps.submitted", {"score": 4})])
    asked: list[str] = []
    plain = rig.crm.get_account

    async def get_account(account_id: str) -> Account | None:
        asked.append(account_id)
        return await plain(account_id)

    monkeypatch.setattr(rig.crm, "get_account", get_account)
    done = await ingest.process_pending()
    assert sorted((p.id, p.error) for p in done) == [("h1", ""), ("n1", ""), ("n2", "")]
    assert asked == ["acme"] and [d.run_id for d in rig.starts] == ["pb:risk:acme:once"]  # for h1 alone
    monkeypatch.setattr(rig.crm, "get_account", None)  # an event nothing listens to must not need the CRM
    await ingest.ingest([ev("n3", "nps.submitted", {"score": 5})])
    assert [(p.id, p.error) for p in await ingest.process_pending()] == [("n3", "")]
