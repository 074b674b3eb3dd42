"""The engine's store, on SQLite and on PostgreSQL (``db_url`` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, date, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import pytest

from connectors.ledger import Ledger
from connectors.sqlcrm import SQLCRM
from engine.store.claims import QueueScan
from engine.store.runstore import MAX_DETAIL
from engine.store.store import AuditRow, DecisionRecord, EventRecord, Store
from engine.triggers.signals import EventSignal

T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
IST = timezone(timedelta(hours=5, minutes=30))
NY = timezone(timedelta(hours=-5))


def event(event_id: str, *, account: str = "acme", type_: str = "usage.feature_used", at: datetime = T0,
          data: dict[str, Any] | None = None) -> EventRecord:
    return EventRecord(id=event_id, type=type_, account_id=account, occurred_at=at, received_at=at,
                       data=data or {"feature": "sso"})


@pytest.fixture
def store(db_url: str) -> Iterator[Store]:
    store = Store(db_url)
    yield store
    store.close()


@pytest.fixture
async def stores(db_url: str) -> AsyncIterator[list[Store]]:
    """Two stores on one database (as two API servers would be) and 50 threads to run their work on."""
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=50))
    pair = [Store(db_url), Store(db_url)]
    yield pair
    for one in pair:
        one.close()


# --- events ----------------------------------------------------------------------------------------

async def test_an_event_is_stored_once(store: Store) -> None:
    sent = event("ev-1", data={"feature": "sso", "n": [1, 2.5, None, True]})
    assert await store.add_event(sent, received_at=T0 + timedelta(seconds=3)) is True
    assert await store.add_event(sent) is False
    assert await store.add_event(event("ev-1", type_="other", data={"x": 1})) is False
    got = await store.get_event("ev-1")
    assert got == EventRecord(id="ev-1", type="usage.feature_used", account_id="acme", occurred_at=T0,
                              received_at=T0 + timedelta(seconds=3), data={"feature": "sso", "n": [1, 2.5, None, True]})
    assert store.counts()["events"] == 1


async def test_the_matchers_event_signal_is_accepted(store: Store) -> None:
    signal = EventSignal(id="sig-1", type="health.updated", account_id="acme", occurred_at=T0.astimezone(NY),
                         data=MappingProxyType({"score": 41}), previous={"score": 70})
    assert await store.add_events([signal, signal]) == [True, False]
    got = await store.get_event("sig-1")
    assert got is not None and got.data == {"score": 41} and got.occurred_at == T0


async def test_fifty_concurrent_adds_of_one_id_store_it_once(stores: list[Store]) -> None:
    results = await asyncio.gather(*(stores[i % 2].add_event(event("ev-race")) for i in range(50)))
    assert results.count(True) == 1 and results.count(False) == 49
    assert stores[0].counts()["events"] == 1


async def test_a_batch_reports_which_events_were_new(store: Store) -> None:
    await store.add_event(event("b-2"))
    batch = [event("b-1"), event("b-2"), event("b-3"), event("b-1"), event("b-4")]
    assert await store.add_events(batch) == [True, False, True, False, True]
    assert await store.add_events(batch) == [False] * 5
    assert await store.add_events([]) == []
    assert store.counts()["events"] == 4


async def test_big_batches(store: Store) -> None:
    first = [event(f"big-{i:05d}", account=f"acc-{i % 100}", at=T0 + timedelta(seconds=i)) for i in range(5000)]
    assert sum(await store.add_events(first)) == 5000
    # Half of the second batch was stored by the first.
    second = [event(f"big-{i:05d}", account=f"acc-{i % 100}", at=T0 + timedelta(seconds=i)) for i in range(2500, 7500)]
    answer = await store.add_events(second)
    assert answer == [False] * 2500 + [True] * 2500
    assert store.counts()["events"] == 7500
    assert len(await store.events_for("acc-7", limit=10_000)) == 75


async def test_concurrent_overlapping_batches_store_each_event_once(stores: list[Store]) -> None:
    # Shared ids in opposite orders (the store inserts in id order, so PostgreSQL's row locks are
    # always taken in one order).
    ids = [f"ov-{i:04d}" for i in range(1500)]
    batches = [ids[:1000], ids[500:][::-1], ids[250:1250], ids[::-1]]
    answers = await asyncio.gather(*(stores[n % 2].add_events([event(i) for i in b]) for n, b in enumerate(batches)))
    stored = Counter(i for b, a in zip(batches, answers, strict=True) for i, new in zip(b, a, strict=True) if new)
    assert set(stored) == set(ids) and set(stored.values()) == {1}
    assert stores[0].counts()["events"] == 1500


async def test_events_for_an_account(store: Store) -> None:
    await store.add_events([
        event("e1", at=T0, type_="health.updated"),
        event("e2", at=T0 + timedelta(hours=1)),
        event("e3", at=T0 + timedelta(hours=2), type_="email.replied"),
        event("e4", at=T0 + timedelta(hours=3)),
        event("x1", at=T0 + timedelta(hours=1), account="other"),
    ])

    def ids(records: list[EventRecord]) -> list[str]:
        return [r.id for r in records]
    assert ids(await store.events_for("acme")) == ["e1", "e2", "e3", "e4"]
    assert ids(await store.events_for("acme", since=T0 + timedelta(hours=1))) == ["e2", "e3", "e4"]
    assert ids(await store.events_for("acme", types=["usage.feature_used", "health.updated"])) == ["e1", "e2", "e4"]
    assert ids(await store.events_for("acme", limit=2)) == ["e1", "e2"]
    assert ids(await store.events_for("acme", limit=2, newest_first=True)) == ["e4", "e3"]
    assert ids(await store.events_for("acme", types=[])) == []
    assert await store.events_for("nobody") == []


async def queue(store: Store, *specs: tuple[str, str]) -> None:
    """Store (id, account) events received a second apart, in the order given."""
    for n, (event_id, account) in enumerate(specs):
        await store.add_event(event(event_id, account=account), received_at=T0 + timedelta(seconds=n))


def ids_of(records: list[EventRecord]) -> list[str]:
    return [r.id for r in records]


async def test_a_failed_attempt_backs_off_and_the_last_one_sets_the_event_aside(store: Store) -> None:
    await queue(store, ("e1", "acme"), ("e2", "acme"), ("o1", "other"))
    assert ids_of(await store.unprocessed(10, now=T0)) == ["e1", "e2", "o1"]
    await store.mark_processed(["o1"], at=T0)
    at = T0
    for attempt, wait in ((1, timedelta(seconds=30)), (2, timedelta(minutes=1))):
        # e2 was claimed with e1 but not tried: its claim is released, it keeps its turn behind e1.
        assert await store.record_failures([("e1", f"boom {attempt}")], at=at, max_attempts=3, held=["e2"]) == []
        got = await store.get_event("e1")
        assert got is not None and (got.attempts, got.last_error) == (attempt, f"boom {attempt}")
        assert got.failed_at is None
        assert await store.unprocessed(10, now=at + wait - timedelta(seconds=1)) == []
        at += wait
        assert ids_of(await store.unprocessed(10, now=at)) == ["e1", "e2"]
    [gone] = await store.record_failures([("e1", "x" * 5000)], at=at, max_attempts=3, held=["e2"])
    assert (gone.id, gone.attempts, gone.failed_at) == ("e1", 3, at)
    assert len(gone.last_error) == 2000 and gone.last_error.endswith("…")
    assert await store.pending_count() == 1  # e2; the failed e1 is not counted
    assert ids_of(await store.failed_events()) == ["e1"]
    assert ids_of(await store.unprocessed(10, now=at)) == ["e2"]  # a failed event holds nothing back
    # A failed event is not counted again, nor claimed ever again.
    assert await store.record_failures([("e1", "again")], at=at, max_attempts=3) == []
    assert (await store.get_event("e1")).attempts == 3  # type: ignore[union-attr]
    assert ids_of(await store.unprocessed(10, now=at + timedelta(days=9))) == ["e2"]  # its lease lapsed; not e1


async def test_an_accounts_later_events_wait_for_an_earlier_one_that_is_taken(store: Store) -> None:
    await queue(store, ("e1", "acme"), ("e2", "acme"), ("o1", "other"))
    assert ids_of(await store.unprocessed(10, ids=["e2", "o1"], now=T0)) == ["o1"]  # e1 not among the ids
    assert ids_of(await store.unprocessed(1, now=T0)) == ["e1"]
    assert await store.unprocessed(10, now=T0) == []  # e2 waits while e1 is taken
    await store.mark_processed(["e1"], at=T0)
    assert ids_of(await store.unprocessed(10, now=T0)) == ["e2"]


async def test_a_claim_reads_past_a_queue_head_held_behind_a_taken_event(store: Store,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    # The claim scans the queue a page at a time (the first page twice the limit): here every row of the
    # first pages is acme's, held behind the taken e0, so the events it claims are on later pages.
    monkeypatch.setattr(QueueScan, "PAGE", 3)
    await queue(store, *[(f"e{n}", "acme") for n in range(9)], ("o1", "other"), ("e9", "acme"), ("p1", "third"))
    assert ids_of(await store.unprocessed(1, now=T0)) == ["e0"]
    assert ids_of(await store.unprocessed(2, now=T0)) == ["o1", "p1"]
    assert await store.unprocessed(5, now=T0) == []  # the rest wait for e0
    await store.mark_processed(["e0"], at=T0)
    assert ids_of(await store.unprocessed(20, now=T0)) == [f"e{n}" for n in range(1, 10)]


async def test_failed_events_are_listed_latest_first_and_can_be_queued_again(store: Store) -> None:
    await queue(store, ("f1", "acme"), ("f2", "beta"), ("q1", "gamma"), ("p1", "delta"))
    await store.unprocessed(10, now=T0)
    await store.mark_processed(["p1"], at=T0)
    await store.record_failures([("f1", "one")], at=T0, max_attempts=1)
    await store.record_failures([("f2", "two")], at=T0 + timedelta(minutes=1), max_attempts=1)
    assert [(e.id, e.attempts, e.last_error) for e in await store.failed_events()] == [("f2", 1, "two"),
                                                                                       ("f1", 1, "one")]
    assert ids_of(await store.failed_events(limit=1)) == ["f2"]
    assert await store.pending_count() == 1  # q1, claimed but still queued
    outcomes = await store.requeue(["f1", "q1", "p1", "zz", "f1"])
    assert outcomes == {"f1": "requeued", "q1": "queued", "p1": "processed", "zz": "unknown"}
    assert await store.requeue(["f1"]) == {"f1": "queued"} and await store.requeue([]) == {}
    assert ids_of(await store.failed_events()) == ["f2"] and await store.pending_count() == 2
    got = await store.get_event("f1")
    assert got is not None and (got.attempts, got.last_error, got.failed_at) == (0, "", None)
    assert ids_of(await store.unprocessed(10, now=T0)) == ["f1"]  # its claim was reset too


async def test_an_events_table_from_before_retries_gets_the_new_columns(db_url: str) -> None:
    from sqlalchemy import Column, MetaData, String, Table, Text, create_engine

    from engine.store.store_models import UtcDateTime

    old = MetaData()
    table = Table("events", old, Column("id", String(255), primary_key=True), Column("type", String(200)),
                  Column("account_id", String(255)), Column("occurred_at", UtcDateTime),
                  Column("received_at", UtcDateTime), Column("data", Text), Column("processed_at", UtcDateTime),
                  Column("claimed_at", UtcDateTime))
    engine = create_engine(db_url)
    try:
        old.create_all(engine)
        with engine.begin() as conn:
            conn.execute(table.insert().values(id="old-1", type="email.replied", account_id="acme", occurred_at=T0,
                                               received_at=T0, data="{}"))
    finally:
        engine.dispose()
    for _ in range(2):  # opening it again finds the columns there
        store = Store(db_url)
        try:
            [got] = await store.unprocessed(10, now=T0 + timedelta(hours=1))
            assert (got.id, got.attempts, got.last_error, got.failed_at) == ("old-1", 0, "", None)
            [gone] = await store.record_failures([("old-1", "boom")], at=T0 + timedelta(hours=1), max_attempts=1)
            assert gone.attempts == 1 and await store.requeue(["old-1"]) == {"old-1": "requeued"}
        finally:
            store.close()


async def test_bad_events_are_refused_and_nothing_of_their_batch_is_stored(store: Store) -> None:
    with pytest.raises(ValueError, match="no time zone"):
        await store.add_events([event("ok-1"), event("naive", at=datetime(2025, 3, 1, 9, 0))])
    with pytest.raises(ValueError, match="id must be 1 to 255"):
        await store.add_event(event(""))
    with pytest.raises(ValueError, match="account_id"):
        await store.add_event(event("e", account="a" * 256))
    with pytest.raises(TypeError, match="must be JSON"):
        await store.add_event(event("e", data={"x": {1, 2}}))
    # NUL: PostgreSQL refuses it in text, and SQLite stored it where no claim (JSON ids) could ever find it.
    with pytest.raises(ValueError, match="id must not hold NUL"):
        await store.add_events([event("ok-2"), event("nul-\x00")])
    with pytest.raises(ValueError, match="account_id must not hold NUL"):
        await store.add_event(event("e", account="ac\x00me"))
    assert store.counts()["events"] == 0


async def test_times_come_back_in_utc_and_compare_across_zones(store: Store) -> None:
    # 10:00 in India is 04:30 UTC, before 05:00 UTC; compared as local text it would sort after it.
    india = datetime(2025, 3, 1, 10, 0, tzinfo=IST)
    await store.add_events([event("india", at=india), event("utc", at=datetime(2025, 3, 1, 5, 0, tzinfo=UTC)),
                            event("ny", at=datetime(2025, 2, 28, 23, 45, tzinfo=NY))])
    got = await store.get_event("india")
    assert got is not None and got.occurred_at == india and got.occurred_at.tzinfo == UTC
    assert got.occurred_at.hour == 4 and got.occurred_at.minute == 30
    assert [r.id for r in await store.events_for("acme")] == ["india", "ny", "utc"]
    since = datetime(2025, 3, 1, 0, 0, tzinfo=NY)  # 05:00 UTC
    assert [r.id for r in await store.events_for("acme", since=since)] == ["utc"]
    await store.add_health("acme", india, 40, "red")
    assert await store.health_since("acme", datetime(2025, 3, 1, 4, 30, tzinfo=UTC)) == [
        (datetime(2025, 3, 1, 4, 30, tzinfo=UTC), 40.0, "red")]
    assert await store.health_since("acme", datetime(2025, 3, 1, 4, 31, tzinfo=UTC)) == []


async def test_event_times_compare_to_the_microsecond_with_times_bound_elsewhere(store: Store) -> None:
    # Events are inserted by SQL of their own (engine/store/eventinsert.py); every other query binds its times
    # through SQLAlchemy. The two must agree to the microsecond, also before the year 1000, and so must the time
    # received.
    moments = [T0, T0 + timedelta(microseconds=1), datetime(999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),
               datetime(2025, 3, 1, 10, 0, 0, 500_000, tzinfo=IST)]
    received = datetime(2025, 3, 2, 8, 0, 0, 123_456, tzinfo=NY)
    await store.add_events([event(f"t{i}", at=m) for i, m in enumerate(moments)], received_at=received)
    for i, moment in enumerate(moments):
        got = await store.get_event(f"t{i}")
        assert got is not None and got.occurred_at == moment and got.received_at == received
        later = [f"t{j}" for j, m in enumerate(moments) if m >= moment]
        assert sorted(r.id for r in await store.events_for("acme", since=moment)) == sorted(later)
        assert f"t{i}" not in [r.id for r in await store.events_for("acme", since=moment + timedelta(microseconds=1))]
    assert (await store.queue()) == (len(moments), received)


# --- health history ----------------------------------------------------------------------------

async def test_health_history_windows(store: Store) -> None:
    for days, score, band in [(0, 82, "green"), (10, 75, "green"), (20, 61, "yellow"), (25, 38, "red")]:
        await store.add_health("acme", T0 + timedelta(days=days), score, band)
    await store.add_health("other", T0 + timedelta(days=30), 99, "green")
    assert await store.last_health("acme") == (38.0, "red")
    assert await store.last_health("acme", before=T0 + timedelta(days=25)) == (61.0, "yellow")
    assert await store.last_health("acme", before=T0) is None
    since = T0 + timedelta(days=14)
    assert await store.health_since("acme", since) == [
        (T0 + timedelta(days=20), 61.0, "yellow"), (T0 + timedelta(days=25), 38.0, "red")]
    assert [p[1] for p in await store.health_since("acme", since, prior=True)] == [75.0, 61.0, 38.0]
    assert [p[1] for p in await store.health_since("acme", T0, prior=True)] == [82.0, 75.0, 61.0, 38.0]
    assert await store.health_since("acme", T0 + timedelta(days=26)) == []
    assert await store.health_since("acme", T0 + timedelta(days=26), prior=True) == [
        (T0 + timedelta(days=25), 38.0, "red")]
    assert await store.last_health("nobody") is None


# --- first use ---------------------------------------------------------------------------------

async def test_first_use_is_true_only_once(store: Store) -> None:
    assert await store.record_use("acme", "feature", "sso", T0, "ev-1") is True
    assert await store.record_use("acme", "feature", "sso", T0 + timedelta(days=1), "ev-2") is False
    assert await store.record_use("acme", "product", "sso", T0, "ev-1") is True
    assert await store.record_use("globex", "feature", "sso", T0, "ev-3") is True
    with pytest.raises(ValueError, match="feature or a product"):
        await store.record_use("acme", "module", "sso", T0)
    assert store.counts()["first_uses"] == 3


async def test_first_use_is_atomic_under_concurrency(stores: list[Store]) -> None:
    results = await asyncio.gather(*(stores[i % 2].record_use("acme", "feature", "api", T0, f"ev-{i}")
                                     for i in range(50)))
    assert results.count(True) == 1


# --- trigger decisions -------------------------------------------------------------------------

async def test_decisions_newest_first_and_filtered(store: Store) -> None:
    signal = {"kind": "event", "type": "health.updated", "event_id": "ev-9"}
    first = await store.add_decision(at=T0, playbook="risk", account_id="acme", signal=signal, outcome="start",
                                     reason="started", message="Starting.", run_id="pb:risk:acme:once",
                                     seen={"score": 38, "previous": 61})
    ids = await store.add_decisions([
        DecisionRecord(at=T0 + timedelta(minutes=1), playbook="risk", account_id="acme", signal=signal,
                       outcome="suppressed", reason="already_active", message="A run is going."),
        DecisionRecord(at=T0 + timedelta(minutes=2), playbook="renewal", account_id="acme", signal={"kind": "scan"},
                       outcome="started", occurrence="2025-06-01"),
        DecisionRecord(at=T0 + timedelta(minutes=3), playbook="risk", account_id="globex", signal=signal,
                       outcome="failed", id=999),
    ])
    assert len(set(ids)) == 3 and first < min(ids) and ids == sorted(ids) and 999 not in ids
    everything = await store.decisions()
    assert [d.id for d in everything] == [*reversed(ids), first]
    assert everything[-1] == DecisionRecord(id=first, at=T0, playbook="risk", account_id="acme", signal=signal,
                                            outcome="start", reason="started", message="Starting.", occurrence="",
                                            run_id="pb:risk:acme:once", seen={"score": 38, "previous": 61})
    assert [d.outcome for d in await store.decisions(account_id="acme")] == ["started", "suppressed", "start"]
    assert [d.account_id for d in await store.decisions(playbook="risk")] == ["globex", "acme", "acme"]
    assert [d.outcome for d in await store.decisions(account_id="acme", playbook="risk", limit=1)] == ["suppressed"]
    assert await store.decisions(account_id="nobody") == []
    with pytest.raises(ValueError, match="outcome"):
        await store.add_decision(at=T0, playbook="risk", account_id="acme", signal={}, outcome="maybe")
    assert store.counts()["trigger_decisions"] == 4


# --- runs --------------------------------------------------------------------------------------

async def test_run_lifecycle(store: Store) -> None:
    run = "pb:risk:acme:once"
    assert await store.active_run("risk", "acme") is None and await store.last_ended("risk", "acme") is None
    assert await store.add_run(run_id=run, temporal_run_id="t-1", playbook="risk", version="v1", account_id="acme",
                               trigger={"type": "health_drop", "score": 38}, started_at=T0) is True
    assert await store.add_run(run_id=run, temporal_run_id="t-1", playbook="risk", version="v1", account_id="acme",
                               started_at=T0 + timedelta(seconds=5)) is False
    assert await store.active_run("risk", "acme") == run
    assert await store.active_run("risk", "globex") is None and await store.active_run("renewal", "acme") is None
    assert await store.end_run(run, status="completed", reason="all steps done", at=T0 + timedelta(days=2)) is True
    assert await store.end_run(run, status="failed", at=T0 + timedelta(days=3)) is False
    got = await store.get_run(run)
    assert got is not None and (got.status, got.reason, got.ended_at) == ("completed", "all steps done",
                                                                          T0 + timedelta(days=2))
    assert got.trigger == {"type": "health_drop", "score": 38} and got.started_at == T0 and got.version == "v1"
    assert await store.active_run("risk", "acme") is None
    assert await store.last_ended("risk", "acme") == T0 + timedelta(days=2)
    # After the cooldown the same workflow id runs again, as a new Temporal execution.
    assert await store.add_run(run_id=run, temporal_run_id="t-2", playbook="risk", version="v2", account_id="acme",
                               started_at=T0 + timedelta(days=40)) is True
    assert await store.active_run("risk", "acme") == run
    latest = await store.get_run(run)
    assert latest is not None and (latest.temporal_run_id, latest.status, latest.ended_at) == ("t-2", "running", None)
    # A late second ending of the first execution does not end the second.
    assert await store.end_run(run, status="failed", at=T0 + timedelta(days=41), temporal_run_id="t-1") is False
    assert await store.active_run("risk", "acme") == run
    assert await store.end_run(run, status="exited", reason="renewed", at=T0 + timedelta(days=42),
                               temporal_run_id="t-2") is True
    assert await store.last_ended("risk", "acme") == T0 + timedelta(days=42)
    with pytest.raises(ValueError, match="completed, failed, exited or cancelled"):
        await store.end_run(run, status="running", at=T0)


async def test_occurrences_are_the_entry_keys_started(store: Store) -> None:
    for occurrence in ["2025-06-01", "2026-06-01", ""]:
        await store.add_run(run_id=f"pb:renewal:acme:{occurrence or 'once'}", temporal_run_id="t", playbook="renewal",
                            version="v1", account_id="acme", occurrence=occurrence, started_at=T0)
    await store.add_run(run_id="pb:renewal:globex:2027-01-01", temporal_run_id="t", playbook="renewal", version="v1",
                        account_id="globex", occurrence="2027-01-01", started_at=T0)
    assert await store.occurrences("renewal", "acme") == {"2025-06-01", "2026-06-01"}
    assert await store.occurrences("risk", "acme") == set()


async def test_runs_are_listed_newest_first_in_pages(store: Store) -> None:
    for i in range(25):
        account = "acme" if i % 2 else "globex"
        await store.add_run(run_id=f"pb:p{i % 3}:{account}:{i}", temporal_run_id=f"t{i}", playbook=f"p{i % 3}",
                            version="v", account_id=account, occurrence=str(i),
                            started_at=T0 + timedelta(minutes=i // 2))  # pairs share a start time
        if i % 4 == 0:
            await store.end_run(f"pb:p{i % 3}:{account}:{i}", status="completed", at=T0 + timedelta(hours=1))
    seen: list[str] = []
    page = await store.runs(limit=10)
    pages = 1
    while page.next_cursor:
        seen += [r.occurrence for r in page.runs]
        page = await store.runs(limit=10, cursor=page.next_cursor)
        pages += 1
    seen += [r.occurrence for r in page.runs]
    assert pages == 3 and seen == [str(i) for i in reversed(range(25))]
    acme = await store.runs(account_id="acme", limit=100)
    assert [r.occurrence for r in acme.runs] == [str(i) for i in reversed(range(1, 25, 2))] and acme.next_cursor is None
    ended = await store.runs(status="completed")
    assert {r.occurrence for r in ended.runs} == {"0", "4", "8", "12", "16", "20", "24"}
    both = await store.runs(playbook="p1", account_id="acme", status="running")
    assert [r.occurrence for r in both.runs] == ["19", "13", "7", "1"]
    with pytest.raises(ValueError, match="cursor"):
        await store.runs(cursor="not-a-cursor")


# --- step audit --------------------------------------------------------------------------------

async def test_audit_is_idempotent_and_in_time_order(store: Store) -> None:
    run = "pb:risk:acme:once"
    rows = [AuditRow(run_id=run, step="alert", status="done", at=T0 + timedelta(seconds=30), detail="posted"),
            AuditRow(run_id=run, step="task", status="started", at=T0),
            AuditRow(run_id=run, step="task", status="done", at=T0 + timedelta(seconds=10), detail="task t-9"),
            AuditRow(run_id="pb:other:acme:once", step="task", status="done", at=T0)]
    assert await store.add_audit(rows) == 4
    assert await store.add_audit(rows) == 0
    # The same transition given in another zone is the same instant, so it is the same row.
    again = AuditRow(run_id=run, step="task", status="started", at=T0.astimezone(IST), detail="retried write")
    assert await store.add_audit([again, again]) == 0
    long = AuditRow(run_id=run, step="wait", status="timed_out", at=T0 + timedelta(seconds=20), detail="x" * 10_000)
    assert await store.add_audit([long]) == 1
    timeline = await store.timeline(run)
    assert [(r.step, r.status) for r in timeline] == [("task", "started"), ("task", "done"), ("wait", "timed_out"),
                                                       ("alert", "done")]
    assert timeline[1].detail == "task t-9" and timeline[0].at.tzinfo == UTC
    assert len(timeline[2].detail) == MAX_DETAIL and timeline[2].detail.endswith("…")
    assert await store.add_audit([]) == 0
    assert await store.timeline("pb:nothing:here:once") == []


# --- scan state and pools ----------------------------------------------------------------------

async def test_scan_state(store: Store) -> None:
    assert await store.last_scan("date-triggers") is None
    await store.set_last_scan("date-triggers", date(2025, 3, 1))
    await store.set_last_scan("date-triggers", date(2025, 3, 4))
    await store.set_last_scan("other", date(2024, 1, 1))
    assert await store.last_scan("date-triggers") == date(2025, 3, 4)
    assert await store.last_scan("other") == date(2024, 1, 1)


async def test_round_robin_in_order(store: Store) -> None:
    assert [await store.next_in_pool("am-team", 3) for _ in range(7)] == [0, 1, 2, 0, 1, 2, 0]
    assert await store.next_in_pool("se-team", 2) == 0
    with pytest.raises(ValueError, match="no one in its pool"):
        await store.next_in_pool("empty", 0)


async def test_round_robin_gives_concurrent_callers_distinct_turns(stores: list[Store]) -> None:
    turns = await asyncio.gather(*(stores[i % 2].next_in_pool("csm", 50) for i in range(50)))
    assert sorted(turns) == list(range(50))
    spread = Counter(await asyncio.gather(*(stores[i % 2].next_in_pool("ae", 7) for i in range(50))))
    assert set(spread) == set(range(7)) and set(spread.values()) == {7, 8}


# --- the rest ----------------------------------------------------------------------------------

async def test_unknown_ids_are_none(store: Store) -> None:
    assert await store.get_event("nope") is None
    assert await store.get_run("pb:nope:acme:once") is None
    assert await store.end_run("pb:nope:acme:once", status="completed", at=T0) is False
    assert await store.occurrences("nope", "acme") == set()
    assert (await store.runs(account_id="nope")).runs == []


async def test_shares_a_database_with_the_crm_and_the_ledger(db_url: str) -> None:
    crm, ledger, store = SQLCRM(db_url), Ledger(db_url), Store(db_url)
    try:
        await ledger.record("wf/a", 1)
        assert await store.add_event(event("shared")) is True
        assert crm.count_tasks() == 0 and ledger.count() == 1 and store.counts()["events"] == 1
    finally:
        crm.close()
        ledger.close()
        store.close()


def test_repr_hides_the_url(tmp_path: Any) -> None:
    store = Store(f"sqlite:///{tmp_path / 'secret-name.db'}")
    try:
        assert repr(store) == "Store(sqlite)"
    finally:
        store.close()
    with pytest.raises(ValueError, match="SQLite or PostgreSQL"):
        Store("mysql+pymysql://u:hunter2@localhost/x")
