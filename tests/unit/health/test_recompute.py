"""Recompute on the event pipeline: a computed drop goes in as health.updated and starts the health-drop play.

Real store and built-in CRM (SQLite), a recording ``start``; it is Monday 2026-11-23, 10:00 UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.health import HealthModel, parse_health
from engine.health.hooks import recompute_in_scan
from engine.health.recompute import health_event, recompute_account, recompute_all
from engine.language.model import Playbook
from engine.language.validate import validate_paths
from engine.payloads.runtypes import Event
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from engine.triggers.signals import Decision

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]
MODEL = """\
model: test
buckets:
  usage:
    measures:
      logins_30d:
        source: { count: usage.login, within: 30d }
        thresholds: [ { at_least: 10, points: 100 }, { at_least: 3, points: 50 }, { points: 10 } ]
  relationship:
    measures:
      champion:
        source: { field: fields.champion_present }
        thresholds: [ { at_least: 1, points: 100 }, { points: 0 } ]
bands: { red_below: 40, yellow_below: 70 }
"""


def model(text: str = MODEL) -> HealthModel:
    found, problems = parse_health(text)
    assert problems == [] and found is not None
    return found


def ev(event_id: str, type_: str, data: dict[str, object] | None = None, at: datetime = NOW) -> dict[str, object]:
    return {"id": event_id, "type": type_, "account_id": "acme", "occurred_at": at.isoformat(), "data": data or {}}


@dataclass
class Rig:
    store: Store
    crm: SQLCRM
    books: dict[str, Playbook]
    starts: list[Decision] = field(default_factory=list)

    async def start(self, pb: Playbook, decision: Decision) -> tuple[str, str]:
        self.starts.append(decision)
        return "started", f"trid-{len(self.starts)}"

    async def signal_run(self, run_id: str, event: Event) -> bool | str:
        return True

    def ingestor(self, health: HealthModel | None) -> Ingestor:
        ingestor = Ingestor(store=self.store, crm=self.crm, playbooks=lambda: self.books, start=self.start,
                            signal_run=self.signal_run, now=lambda: NOW)
        ingestor.health_model = health  # type: ignore[attr-defined]
        return ingestor


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM"))
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", lifecycle_stage="renew", owner_id="u-csm",
                            arr=120000.0, renewal_date=date(2027, 3, 1), health_score=80, health_band="green",
                            fields={"champion_present": True}))
    books = validate_paths([str(ROOT / "playbooks" / "health-drop-risk.yaml")]).playbooks
    yield Rig(store, crm, books)
    store.close()
    crm.close()


async def test_a_computed_drop_goes_in_as_health_updated_and_starts_the_health_drop_play(rig: Rig) -> None:
    clock = [NOW]
    ingestor = rig.ingestor(model())
    ingestor.now = lambda: clock[0]
    logins = [ev(f"l{i}", "usage.login", at=NOW - timedelta(days=i + 1)) for i in range(12)]
    await ingestor.ingest(logins, process=True)  # the computed score is processed right after the batch
    # 12 logins and a champion: 100 points each, green; recomputed once for the batch.
    assert await rig.store.last_health("acme") == (100.0, "green")
    assert rig.starts == []
    clock[0] += timedelta(minutes=5)
    # The champion leaves: usage 100, relationship 0 → 50, yellow: no drop below 50.
    await ingestor.ingest([ev("c1", "account.updated", {"fields": {"fields.champion_present": False}})], process=True)
    assert await rig.store.last_health("acme") == (50.0, "yellow")
    assert rig.starts == []
    # 30 days on every login is older than 30 days: 10 points, 5 overall, red: the play starts from the computed score.
    clock[0] = NOW + timedelta(days=30)
    results = await ingestor.ingest([ev("l-old", "usage.login", at=NOW - timedelta(days=60))], process=True)
    assert await rig.store.pending_count() == 0
    # What csops event send prints under the event: the computed score and what its triggers decided.
    assert results[0].notes[0].startswith("health recomputed by model test: 5 (red), was 50; health-drop-risk: "
                                          "started (started)")
    assert await rig.store.last_health("acme") == (5.0, "red")
    assert [d.playbook for d in rig.starts] == ["health-drop-risk"]
    account = await rig.crm.get_account("acme")
    assert account is not None and (account.health_score, account.health_band) == (5, "red")
    sent = await rig.store.events_for("acme", types=["health.updated"])
    assert [e.data["score"] for e in sent] == [100.0, 50.0, 5.0]
    assert sent[-1].data["source"] == "model" and sent[-1].data["cause"] == "event:l-old"
    assert sent[-1].data["why"].startswith("champion 0 → 0 pts; logins_30d 0 → 10 pts")


async def test_the_same_cause_gives_the_same_event_id_so_a_retry_sends_nothing_twice(rig: Rig) -> None:
    found = model()
    done = await recompute_account(rig.store, rig.crm, found, "acme", NOW)
    assert done is not None and done.result.score == 55.0
    first = health_event(found, "acme", done.result, cause="event:e1", at=NOW)
    again = health_event(found, "acme", done.result, cause="event:e1", at=NOW + timedelta(seconds=5))
    assert first["id"] == again["id"] != health_event(found, "acme", done.result, cause="event:e2", at=NOW)["id"]


async def test_events_the_model_does_not_read_do_not_recompute(rig: Rig) -> None:
    ingestor = rig.ingestor(model())
    await ingestor.ingest([ev("t1", "email.bounced")], process=True)
    assert await rig.store.events_for("acme", types=["health.updated"]) == []


async def test_an_account_missing_every_input_never_crashes_and_sends_nothing(rig: Rig) -> None:
    only_fields = MODEL.replace("count: usage.login, within: 30d", "field: fields.logins")
    rig.crm.add_account(Account(id="bare", name="Bare"))
    done = await recompute_account(rig.store, rig.crm, model(only_fields), "bare", NOW)
    assert done is not None and done.result.score is None and not done.changed
    ingestor = rig.ingestor(model(only_fields))
    bare = {**ev("b1", "account.updated", {"fields": {"name": "Bare Inc"}}), "account_id": "bare"}
    results = await ingestor.ingest([bare], process=True)
    assert results[0].status == "accepted" and results[0].notes == ()
    assert await rig.store.events_for("bare", types=["health.updated"]) == []
    assert await recompute_account(rig.store, rig.crm, model(), "nobody", NOW) is None


async def test_the_daily_scan_stores_changed_scores_once_per_day(rig: Rig) -> None:
    books = rig.books  # their source is in playbooks/, beside the shipped health.yaml
    assert await recompute_in_scan(rig.crm, rig.store, books, NOW) == 1
    assert await recompute_in_scan(rig.crm, rig.store, books, NOW) == 0  # the queued score counts as the last
    sent = await rig.store.events_for("acme", types=["health.updated"])
    assert len(sent) == 1 and sent[0].data["model"] == "default-health"
    done = await recompute_all(rig.store, [Account(id="acme", name="Acme")], model(), NOW)
    assert done[0].result.score == 10.0  # no logins: 10 points; no champion field: skipped, usage alone counts


async def test_the_daily_scan_activity_recomputes_with_the_model_beside_the_playbooks(rig: Rig) -> None:
    from engine.runtime.scanflow import ScanActivities, ScanInput

    acts = ScanActivities(crm=rig.crm, store=rig.store, playbooks=lambda: rig.books, task_queue="unused")
    await acts.daily_scan(ScanInput(now=NOW.isoformat()))
    sent = await rig.store.events_for("acme", types=["health.updated"])
    assert [(e.data["model"], e.data["cause"]) for e in sent] == [("default-health", "scan:2026-11-23")]
