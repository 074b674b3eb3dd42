"""Generate the health sample: monthly input snapshots of 3,000 accounts over 12 months, and who churned.

Writes ``samples/health/history.csv`` and ``samples/health/outcomes.csv`` (formats in docs/health.md),
the same bytes on every run (fixed seed). Usage::

    .venv/bin/python scripts/gen_health_sample.py [--out samples/health] [--accounts 3000] [--seed 13]

How the world works here: each account has a hidden health that starts from its own level and
drifts month to month; one in five goes through a decline (a reorg, a lost champion) that lowers
it over three months. At its renewal an account churns with a probability that falls steeply with
its hidden health then (and 3% churn whatever their health: budget cuts, acquisitions). The inputs
are noisy views of the hidden health: logins, seats, key features, meetings, a champion, sparse
NPS answers, ARR change, overdue invoices, escalations; some are missing (no NPS answer, no
meeting for tech-touch accounts). So no input predicts churn alone, and the model is tested on
what it would have seen, not on the answer.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from datetime import date, timedelta
from pathlib import Path

START = date(2025, 12, 1)
MONTHS = 12
COLUMNS = ("account_id", "date", "segment", "lifecycle_stage", "logins_30d", "seat_utilisation", "key_features",
           "usage_trend", "days_since_meeting", "champion", "nps", "arr_change", "overdue_invoices",
           "escalations_90d")


def sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def poisson(rng: random.Random, mean: float) -> int:
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


def month(i: int) -> date:
    y, m = divmod(START.month - 1 + i, 12)
    return date(START.year + y, m + 1, 1)


def account(rng: random.Random, n: int, rows: list[list[object]], outcomes: list[list[object]]) -> None:
    ident = f"acct-{n:05d}"
    segment = rng.choices(("strategic", "commercial", "smb"), (15, 35, 50))[0]
    stage = rng.choices(("onboard", "adopt", "expand", "renew"), (10, 40, 25, 25))[0]
    level = rng.gauss(0.3, 0.9)
    drift = 0.0
    decline_at = rng.randrange(MONTHS + 3) if rng.random() < 0.2 else None
    renewal = START + timedelta(days=rng.randrange(45, 400))
    features = [False] * 4
    champion = rng.random() < sigmoid(0.8 + 1.2 * level)
    prev_logins: int | None = None
    for i in range(MONTHS):
        day = month(i)
        if day >= renewal and outcomes and outcomes[-1][0] == ident and outcomes[-1][1] == "churned":
            break
        drift = 0.8 * drift + rng.gauss(0, 0.35)
        fall = 0.0 if decline_at is None or i < decline_at else min(i - decline_at + 1, 3) * 0.55
        h = level + drift - fall
        logins = poisson(rng, 28 * math.exp(0.55 * h + rng.gauss(0, 0.35)))
        seats = round(min(1.0, sigmoid(0.4 + 0.8 * h + rng.gauss(0, 0.55))), 2)
        for f in range(4):
            features[f] = features[f] or rng.random() < sigmoid(-1.2 + 0.8 * h + rng.gauss(0, 0.5))
        trend = "" if not prev_logins else round(logins / prev_logins, 2)
        prev_logins = logins
        meeting = "" if (segment == "smb" and rng.random() < 0.85) or rng.random() < 0.1 else \
            min(200, round(rng.expovariate(1 / (25 * math.exp(-0.45 * h)))))
        if rng.random() < 0.06:  # champions come and go
            champion = rng.random() < sigmoid(0.8 + 1.2 * h)
        nps = round(min(10.0, max(0.0, rng.gauss(7 + 1.3 * h, 2.0)))) if rng.random() < 0.35 else ""
        arr = round(rng.gauss(4 + 7 * h, 9)) if rng.random() < 0.9 else ""
        overdue = poisson(rng, 0.3 * math.exp(-0.7 * h))
        escalations = poisson(rng, 0.5 * math.exp(-0.8 * h))
        rows.append([ident, day.isoformat(), segment, stage, logins, seats, sum(features) / 4, trend, meeting,
                     "" if rng.random() < 0.15 else int(champion), nps, arr, overdue, escalations])
        nxt = month(i + 1)
        if day <= renewal < nxt and renewal <= month(MONTHS - 1) + timedelta(days=30):
            churns = rng.random() < 0.03 or rng.random() < sigmoid(-2.8 - 2.2 * h)
            outcomes.append([ident, "churned" if churns else "renewed", renewal.isoformat()])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="samples/health")
    parser.add_argument("--accounts", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=13)
    args = parser.parse_args()
    rng = random.Random(args.seed)
    rows: list[list[object]] = []
    outcomes: list[list[object]] = []
    for n in range(1, args.accounts + 1):
        account(rng, n, rows, outcomes)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with (out / "history.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    with (out / "outcomes.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(("account_id", "outcome", "date"))
        writer.writerows(outcomes)
    churned = sum(1 for o in outcomes if o[1] == "churned")
    print(f"{len(rows)} snapshots of {args.accounts} accounts, {len(outcomes)} outcomes ({churned} churned) in {out}")


if __name__ == "__main__":
    main()
