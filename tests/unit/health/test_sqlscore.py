"""The one-statement SQL scorer gives the Python scorer's scores to the last digit, on varied random accounts.

400 accounts in one database (the built-in CRM and the store; SQLite, and PostgreSQL): custom fields as numbers, as
text ("12", "12%", "yes", "n/a"), true/false, missing or null; renewal dates; logins over 90 days,
meetings, NPS answers (some not numbers), escalations; first uses; some earlier scores. Two models:
the shipped one, and one with every source kind, thresholds, every missing rule and overrides.
"""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.health import HealthModel, load_health, parse_health
from engine.health.fast import Reader, Scorer
from engine.health.inputs import read_raw
from engine.health.recompute import recompute_crm
from engine.health.sqlscore import scores, usable
from engine.store.store import Store
from engine.triggers.signals import EventSignal

NOW = datetime(2026, 11, 23, 10, 0, 0, 123456, tzinfo=UTC)
ROOT = Path(__file__).resolve().parents[3]
EVERY = """\
missing: { points: 40 }
buckets:
  usage:
    weight: 2
    measures:
      logins: { source: { count: usage.login, within: 7d }, range: { from: 0, to: 9 } }
      trend: { source: { trend: usage.login, within: 14d }, range: { from: 0.3, to: 1.7 }, missing: skip }
      seats: { source: { field: fields.active, per: fields.licensed }, range: { from: 0.1, to: 0.9 }, weight: 3 }
      features: { source: { features_used: [a, b, c] },
                  thresholds: [ { at_least: 0.6, points: 90 }, { at_least: 0.3, at_most: 0.5, points: 55 } ] }
      usage_field: { source: { field: usage.exports }, range: { from: 0, to: 50 }, missing: { value: 5 } }
  relationship:
    weight: 1.5
    measures:
      meeting: { source: { days_since: meeting.held }, range: { from: 60, to: 3 }, missing: { value: 60 } }
      nps: { source: { latest: survey.nps, value: score }, range: { from: 0, to: 10 }, weight: 0.7 }
      champion: { source: { field: fields.champion }, thresholds: [ { at_least: 1, points: 100 }, { points: 10 } ] }
  commercial:
    measures:
      renewal: { source: { field: renewal_date }, range: { from: 10, to: 200 }, missing: skip }
      arr: { source: { field: arr }, thresholds: [ { at_least: 100000, points: 100 }, { at_least: 1, points: 60 } ] }
      escalations: { source: { count: support.escalated, within: 90d },
                     thresholds: [ { at_most: 0, points: 100 }, { at_most: 2, points: 40 } ] }
overrides:
  - segment: SMB
    buckets: { relationship: 0.25 }
    measures: { meeting: 0 }
  - lifecycle_stage: onboard
    measures: { trend: 0, logins: 2.5 }
  - segment: smb
    lifecycle_stage: onboard
    buckets: { commercial: 0 }
bands: { red_below: 33.3, yellow_below: 66.6 }
"""


def _field(rng: random.Random) -> object:
    return rng.choice([None, "absent", rng.randint(0, 300), rng.random() * 10, f"{rng.randint(0, 99)}", "12%",
                       "yes", "No", "n/a", True, False, "", " 7.5 "])


async def _seed(url: str, rng: random.Random) -> None:
    store, crm = Store(url), SQLCRM(url)
    events = []
    for i in range(400):
        ident = f"a{i:03d}"
        fields = {k: v for k in ("active", "licensed", "champion") if (v := _field(rng)) != "absent"}
        usage = {"exports": _field(rng)} if rng.random() < 0.5 else {}
        crm.add_account(Account(id=ident, name=ident, segment=rng.choice(["smb", "SMB", "commercial", ""]),
                                lifecycle_stage=rng.choice(["onboard", "Onboard", "adopt", ""]),
                                arr=rng.choice([0.0, 5000.0, 250000.0]), fields=fields, usage=usage,
                                renewal_date=rng.choice([None, date(2027, 3, 1), date(2026, 12, 1)])))
        kinds = ["usage.login"] * rng.randint(0, 12) + ["meeting.held"] * rng.randint(0, 2) + \
            ["survey.nps"] * rng.randint(0, 2) + ["support.escalated"] * rng.randint(0, 3) + \
            ["health.updated"] * rng.randint(0, 2)
        for k, kind in enumerate(kinds):
            at = NOW - timedelta(seconds=rng.randint(-3600, 100 * 86400))
            data: dict[str, object] = {}
            if kind == "survey.nps":
                data = {"score": rng.choice([rng.randint(0, 10), 7.5, "8", None, True])}
            if kind == "health.updated":
                data = {"score": float(rng.randint(0, 100)), "band": rng.choice(["red", "green"])}
            events.append(EventSignal(id=f"{ident}-{k}", type=kind, account_id=ident, occurred_at=at, data=data))
        for feature in rng.sample(["a", "b", "c", "d"], rng.randint(0, 4)):
            await store.record_use(ident, "feature", feature, NOW - timedelta(days=rng.randint(-2, 50)))
    await store.add_events(events)
    store.close()
    crm.close()


@pytest.mark.parametrize("which", ["shipped", "every"])
async def test_sql_scores_equal_python_scores_to_the_last_digit(db_url: str, which: str) -> None:
    url = db_url  # SQLite, and a fresh PostgreSQL schema
    await _seed(url, random.Random(13))
    found, problems = (load_health(ROOT / "playbooks" / "health.yaml") if which == "shipped" else parse_health(EVERY))
    assert problems == [] and found is not None
    model: HealthModel = found
    store, crm = Store(url), SQLCRM(url)
    try:
        assert usable(crm, store)
        sql = {ident: total for ident, total, _, _ in await scores(store, model, NOW)}
        raw = await read_raw(store, model, NOW)
        reader, scorer = Reader(model, NOW), Scorer(model)
        accounts = await crm.list_accounts(None, 1000)
        python = {}
        for a in accounts:
            values = reader.values(a, raw.get(a.id, {}))
            python[a.id] = scorer.total(values, a.segment, a.lifecycle_stage)
        rounded = {k: None if v is None else round(min(max(v, 0.0), 100.0), 1) for k, v in sql.items()}
        assert rounded == python
        assert len({v for v in python.values()}) > 100  # the data really varies
        done = {r.account_id: r for r in await recompute_crm(crm, store, model, NOW)}
        assert {k: r.result.score for k, r in done.items()} == python
        changed = [r for r in done.values() if r.changed]
        assert changed and all(r.result.lines for r in changed)  # changed scores carry their breakdown
    finally:
        store.close()
        crm.close()
