"""``csops forecast`` of the shipped renewal playbook over 1,000 accounts and 90 days of events.

Generation (not timed): the sample team (samples/users.csv), 1,000 strategic and commercial
accounts owned by its CSMs with renewal dates spread over the next 13 months (so the 120- and
90-day milestones of ``renewal-reminders`` fall all through the 90 replayed days), a primary
contact each, and about 3,000 events over the last 90 days: health updates, feature uses, some
renewals closed (``account.updated`` renewal_status renewed) and churns, email replies.

Timed: ``engine.reports.forecast.forecast_replay`` (the sandboxed replay: daily scan and events
through the ingestor, the runs on the time-skipping server, recording connectors), as
``csops forecast renewal-reminders --days 90`` does it. BENCH_ACCOUNTS and BENCH_DAYS change the
sizes. JSON on the last line: ``accounts``, ``events``, ``days``, ``seconds``, ``runs``, the totals.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from connectors.base import Account, Contact, User  # noqa: E402
from engine.config.settings import Settings  # noqa: E402
from engine.language.context import Calendar  # noqa: E402
from engine.reports.forecast import forecast_replay  # noqa: E402
from engine.root import Registry, load_coverage_model  # noqa: E402

COUNT = int(os.environ.get("BENCH_ACCOUNTS", "1000"))
DAYS = int(os.environ.get("BENCH_DAYS", "90"))


def team() -> list[User]:
    with (ROOT / "samples" / "users.csv").open(encoding="utf-8") as f:
        return [User(id=r["id"], email=r["email"], name=r["name"], manager_id=r["manager"] or None,
                     backup_id=r["backup"] or None, roles=tuple(r["roles"].split())) for r in csv.DictReader(f)]


def main() -> None:
    rng = random.Random(14)
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(days=DAYS)
    users = team()
    csms = {"strategic": ["u-daniel", "u-maria"], "commercial": ["u-emma"]}
    accounts, contacts, events = [], [], []
    for i in range(COUNT):
        segment = "strategic" if i % 3 == 0 else "commercial"
        renewal = (start + timedelta(days=rng.randint(30, 420))).date()
        accounts.append(Account(id=f"acc{i:04}", name=f"Account {i}", segment=segment, lifecycle_stage="adopt",
                                owner_id=rng.choice(csms[segment]), arr=float(rng.randint(5, 300) * 1000),
                                renewal_date=renewal, renewal_status="open", health_score=rng.randint(40, 95),
                                health_band="green"))
        contacts.append(Contact(id=f"c{i:04}", account_id=f"acc{i:04}", email=f"champion{i}@example.com",
                                first_name="Alex", role="champion", primary=True))

        def at() -> str:
            return (start + timedelta(days=rng.uniform(0, DAYS))).isoformat()
        events.append({"id": f"h{i}", "type": "health.updated", "account_id": f"acc{i:04}", "occurred_at": at(),
                       "data": {"score": rng.randint(20, 95)}})
        events.append({"id": f"u{i}", "type": "usage.feature_used", "account_id": f"acc{i:04}", "occurred_at": at(),
                       "data": {"feature": rng.choice(["reports", "api", "sso"])}})
        extra = rng.random()
        if extra < 0.15:
            events.append({"id": f"r{i}", "type": "account.updated", "account_id": f"acc{i:04}", "occurred_at": at(),
                           "data": {"fields": {"renewal_status": "renewed"}}})
        elif extra < 0.2:
            events.append({"id": f"x{i}", "type": "account.churned", "account_id": f"acc{i:04}", "occurred_at": at(),
                           "data": {}})
        else:
            events.append({"id": f"e{i}", "type": "email.replied", "account_id": f"acc{i:04}", "occurred_at": at(),
                           "data": {}})
    settings = Settings.from_env({"CSOPS_PLAYBOOKS": str(ROOT / "playbooks")})
    playbook = Registry(settings.playbooks)()["renewal-reminders"]
    coverage = load_coverage_model(settings)
    print(f"{len(accounts)} accounts, {len(events)} events over {DAYS} days", file=sys.stderr)

    def progress(done: int, total: int) -> None:
        if done % 10 == 0 or done == total:
            print(f"day {done}/{total}: {time.monotonic() - began:.0f} s", file=sys.stderr)
    began = time.monotonic()
    out = asyncio.run(forecast_replay(playbook, accounts=accounts, contacts=contacts, users=users, events=events,
                                      start=start, days=DAYS, calendar=Calendar(), coverage=coverage,
                                      progress=progress))
    seconds = time.monotonic() - began
    print(json.dumps({"accounts": len(accounts), "events": len(events), "days": DAYS, "seconds": round(seconds, 1),
                      "runs": out["runs"], **out["totals"]}))


if __name__ == "__main__":
    main()
    sys.stdout.flush()
    os._exit(0)
