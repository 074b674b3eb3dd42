"""Backtesting a health model: replay a history of inputs and compare the bands with what churned.

The history holds snapshots of the measures' values per account and day; the outcomes say which
accounts churned (and when) or renewed. A snapshot counts as positive when its account churned
within ``within`` days after it. The figures (docs/health.md):

- ``auc``: how well the score ranks positives as riskier than the rest (0.5 is chance, 1 perfect),
  over every scored snapshot before the account's churn;
- ``red_share``: the share of scored snapshots that are red (the average share of the book flagged);
- ``precision``/``recall``: of red snapshots, the share followed by churn within ``within`` days; of
  those followed by churn, the share red;
- ``caught``: of churned accounts, the share red at least once in the ``within`` days before churning;
- ``lead_days``: the median days from that first red to the churn.
"""

from __future__ import annotations

import csv
import json
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import date
from pathlib import Path
from typing import Any

from engine.errors import CsopsError
from engine.health.fast import Scorer
from engine.health.inputs import number
from engine.language.health_model import HealthModel

__all__ = ["BacktestError", "Outcome", "Result", "Snapshot", "auc", "backtest", "read_history", "read_outcomes"]

ACCOUNT_COLUMNS = ("account_id", "date", "segment", "lifecycle_stage")
"""The history's own columns; every other column is a measure's value, by the measure's name."""


class BacktestError(CsopsError):
    """A history or outcomes file that cannot be used; the message says where and what to do."""


@dataclass(frozen=True, kw_only=True)
class Snapshot:
    """The measures' values of an account on a day."""

    account_id: str
    """The account."""
    day: date
    """The day of the snapshot."""
    segment: str = ""
    """The account's segment then (for the weight overrides)."""
    lifecycle_stage: str = ""
    """Its lifecycle stage then."""
    values: Mapping[str, float | None]
    """Each measure's value by name (None: missing)."""


@dataclass(frozen=True, kw_only=True)
class Outcome:
    """What became of an account."""

    account_id: str
    """The account."""
    outcome: str
    """``churned`` or ``renewed``."""
    day: date
    """When."""


@dataclass(frozen=True, kw_only=True)
class Result:
    """A backtest's figures."""

    snapshots: int
    """Scored snapshots before their account's churn."""
    unscored: int
    """Snapshots without a score (no input at all), left out."""
    accounts: int
    """Accounts in the history."""
    churned: int
    """Of them, accounts that churned."""
    within: int
    """The churn horizon in days."""
    auc: float | None
    """Area under the ROC curve of 100 - score for churn within the horizon (None: no positive or no negative)."""
    red_share: float
    """Share of snapshots flagged red."""
    precision: float | None
    """Of red snapshots, the share followed by churn within the horizon."""
    recall: float | None
    """Of snapshots followed by churn within the horizon, the share red."""
    caught: float | None
    """Of churned accounts, the share red at least once within the horizon before churning."""
    lead_days: float | None
    """Median days from the first red within the horizon to the churn, over caught accounts."""

    def as_dict(self) -> dict[str, Any]:
        """As JSON."""
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _day(text: Any, where: str) -> date:
    try:
        return date.fromisoformat(str(text)[:10])
    except ValueError:
        raise BacktestError(f"{where}: date must be YYYY-MM-DD, not {text!r:.40}") from None


def _rows(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    """(where, row) of a CSV (header first) or JSON-lines file."""
    try:
        with path.open(encoding="utf-8", newline="") as fh:
            if path.suffix in (".jsonl", ".ndjson", ".json"):
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        obj = json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise BacktestError(f"{path}:{n}: not JSON: {exc.msg}") from None
                    if not isinstance(obj, dict):
                        raise BacktestError(f"{path}:{n}: each line must be a JSON object")
                    yield f"{path}:{n}", obj
                return
            for n, row in enumerate(csv.DictReader(fh), 2):
                yield f"{path}:{n}", row
    except OSError as exc:
        raise BacktestError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_history(path: str | Path, model: HealthModel) -> list[Snapshot]:
    """The snapshots of a history file (CSV or JSON lines; docs/health.md has the format)."""
    names = {m.name for m in model.measures}
    out = []
    for where, row in _rows(Path(path)):
        inner = row.get("values")
        values: dict[str, Any] = inner if isinstance(inner, dict) else row
        if not row.get("account_id"):
            raise BacktestError(f"{where}: account_id is empty; every row names its account")
        found = {k: (v if isinstance(v, int | float) and not isinstance(v, bool) else number(v) if v not in ("", None)
                     else None) for k, v in values.items() if k in names}
        out.append(Snapshot(account_id=str(row["account_id"]), day=_day(row.get("date"), where),
                            segment=str(row.get("segment") or ""),
                            lifecycle_stage=str(row.get("lifecycle_stage") or ""), values=found))
    if out and not any(k in names for s in out[:100] for k in s.values):
        raise BacktestError(f"{path}: no column is a measure of the model ({', '.join(sorted(names))})")
    return out


def read_outcomes(path: str | Path) -> dict[str, Outcome]:
    """The outcomes file (CSV or JSON lines: account_id, outcome churned/renewed, date)."""
    out = {}
    for where, row in _rows(Path(path)):
        kind = str(row.get("outcome") or "").strip().lower()
        if kind not in ("churned", "renewed"):
            raise BacktestError(f"{where}: outcome must be churned or renewed, not {kind!r:.40}")
        account = str(row.get("account_id") or "")
        if not account:
            raise BacktestError(f"{where}: account_id is empty")
        out[account] = Outcome(account_id=account, outcome=kind, day=_day(row.get("date"), where))
    return out


def auc(scored: Sequence[tuple[float, bool]]) -> float | None:
    """The area under the ROC curve of (risk, positive) pairs: Mann-Whitney, ties counted half."""
    ordered = sorted(scored, key=lambda pair: pair[0])
    positives = sum(1 for _, p in ordered if p)
    negatives = len(ordered) - positives
    if not positives or not negatives:
        return None
    rank_sum, i = 0.0, 0
    while i < len(ordered):
        j = i
        while j < len(ordered) and ordered[j][0] == ordered[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # the average of ranks i+1 .. j
        rank_sum += mid * sum(1 for _, p in ordered[i:j] if p)
        i = j
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def backtest(model: HealthModel, history: Sequence[Snapshot], outcomes: Mapping[str, Outcome],
             within: int = 90) -> Result:
    """Score every snapshot and compare with the outcomes (accounts without one count as still customers)."""
    scored: list[tuple[float, bool]] = []
    red = red_hits = unscored = 0
    scorer = Scorer(model)
    first_red: dict[str, date] = {}
    for snap in sorted(history, key=lambda s: (s.account_id, s.day)):
        end = outcomes.get(snap.account_id)
        churn = end.day if end is not None and end.outcome == "churned" else None
        if churn is not None and snap.day >= churn:
            continue
        total = scorer.total([snap.values.get(name) for name in scorer.names], snap.segment, snap.lifecycle_stage)
        if total is None:
            unscored += 1
            continue
        positive = churn is not None and (churn - snap.day).days <= within
        scored.append((100.0 - total, positive))
        if scorer.band(total) == "red":
            red += 1
            red_hits += positive
            if positive:
                first_red.setdefault(snap.account_id, snap.day)
    churned = {a for a, o in outcomes.items() if o.outcome == "churned"} & {s.account_id for s in history}
    positives = sum(1 for _, p in scored if p)
    leads = [(outcomes[a].day - d).days for a, d in first_red.items()]
    return Result(snapshots=len(scored), unscored=unscored, accounts=len({s.account_id for s in history}),
                  churned=len(churned), within=within, auc=auc(scored), red_share=red / len(scored) if scored else 0.0,
                  precision=red_hits / red if red else None, recall=red_hits / positives if positives else None,
                  caught=len(first_red) / len(churned) if churned else None,
                  lead_days=float(statistics.median(leads)) if leads else None)
