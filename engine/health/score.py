"""The scorer: measure values in, score, band and the breakdown out. Pure: no I/O, no clock.

Each measure's value maps to 0-100 points (thresholds or a range); a bucket's score is its
measures' points averaged by measure weight, the score the buckets' scores averaged by bucket
weight, with the weights of the account's segment and lifecycle stage. A measure without a value
is left out and the others weigh more (``skip``, the default), or counts as given points or as a
given value. A bucket with no measure counted is left out the same way; with nothing counted at
all there is no score (None), never an error.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from engine.language.health_model import HealthModel, Measure

__all__ = ["Line", "Score", "points", "score", "trend", "weights_for"]


@dataclass(frozen=True, kw_only=True)
class Line:
    """One measure's part in a score."""

    measure: str
    """The measure's name."""
    bucket: str
    """Its bucket."""
    value: float | None
    """Its input (None: missing)."""
    points: float | None
    """Its points 0-100 (None: skipped)."""
    weight: float
    """Its share of the score, 0 to 1 (0 when skipped); the shares of a score add up to 1."""
    note: str = ""
    """How a missing input was counted ("" when the input was there)."""

    def as_dict(self) -> dict[str, object]:
        """As JSON."""
        shown = None if self.points is None else round(self.points, 2)
        return {"measure": self.measure, "bucket": self.bucket, "value": self.value, "points": shown,
                "weight": round(self.weight, 4), "note": self.note}


@dataclass(frozen=True, kw_only=True)
class Score:
    """An account's score with its breakdown."""

    score: float | None
    """0-100, one decimal; None when no measure had an input and none counts a missing one."""
    band: str
    """red, yellow or green ("" without a score)."""
    lines: tuple[Line, ...]
    """Every measure, in model order."""
    buckets: tuple[tuple[str, float | None, float], ...]
    """Per bucket: its score (None: nothing counted) and its share of the score."""

    def as_dict(self) -> dict[str, object]:
        """As JSON."""
        return {"score": self.score, "band": self.band,
                "buckets": [{"bucket": b, "score": s, "weight": round(w, 4)} for b, s, w in self.buckets],
                "measures": [line.as_dict() for line in self.lines]}


def points(measure: Measure, value: float) -> float:
    """The points (0-100) of a value by the measure's thresholds or range."""
    if measure.range is not None:
        start, end = measure.range.start, measure.range.end
        share = (value - start) / (end - start)
        # Not rounded: the SQL scorer (engine.health.sqlscore) does the same arithmetic to the last bit.
        return 100.0 * min(max(share, 0.0), 1.0) + 0.0  # never -0.0
    for step in measure.thresholds:
        if step.holds(value):
            return step.points
    return 0.0


def weights_for(model: HealthModel, segment: str = "", lifecycle_stage: str = "") -> tuple[
        dict[str, float], dict[str, float]]:
    """The bucket and measure weights for an account of this segment and stage (overrides applied in order)."""
    buckets = {b.name: b.weight for b in model.buckets}
    measures = {m.name: m.weight for m in model.measures}
    for override in model.overrides:
        if override.matches(segment, lifecycle_stage):
            buckets.update((k, v) for k, v in override.buckets if k in buckets)
            measures.update((k, v) for k, v in override.measures if k in measures)
    return buckets, measures


def _counted(measure: Measure, value: float | None) -> tuple[float | None, str]:
    if value is not None:
        return points(measure, value), ""
    missing = measure.missing
    if missing.mode == "points":
        return missing.number, f"missing: counted as {missing.number:g} points"
    if missing.mode == "value":
        return points(measure, missing.number), f"missing: counted as the value {missing.number:g}"
    return None, "missing: skipped, the other measures weigh more"


def _number(value: object) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return None


def score(model: HealthModel, facts: Mapping[str, object], *, segment: str = "", lifecycle_stage: str = "") -> Score:
    """Score an account from its measure values (by measure name; absent, None or not a number: missing)."""
    bucket_w, measure_w = weights_for(model, segment, lifecycle_stage)
    raw: list[tuple[Measure, float | None, float | None, str]] = []
    for m in model.measures:
        value = _number(facts.get(m.name))
        got, note = _counted(m, value)
        raw.append((m, value, got, note))
    per_bucket: dict[str, tuple[float, float]] = {}
    for m, _, got, _ in raw:
        if got is not None and measure_w[m.name] > 0:
            acc, wsum = per_bucket.get(m.bucket, (0.0, 0.0))
            per_bucket[m.bucket] = (acc + got * measure_w[m.name], wsum + measure_w[m.name])
    live = {b: bucket_w[b] for b, (_, w) in per_bucket.items() if w > 0 and bucket_w[b] > 0}
    total_w = sum(live.values())
    shares = {b: (w / total_w if total_w else 0.0) for b, w in live.items()}
    lines = []
    for m, value, got, note in raw:
        share = 0.0
        if got is not None and m.bucket in shares and measure_w[m.name] > 0:
            share = shares[m.bucket] * measure_w[m.name] / per_bucket[m.bucket][1]
        if got is not None and not share:
            note = "weight 0 for this account"
        lines.append(Line(measure=m.name, bucket=m.bucket, value=value, points=got, weight=share, note=note))
    bucket_scores = tuple((b.name, round(per_bucket[b.name][0] / per_bucket[b.name][1], 1)
                           if b.name in live else None, shares.get(b.name, 0.0)) for b in model.buckets)
    if not live:
        return Score(score=None, band="", lines=tuple(lines), buckets=bucket_scores)
    total = sum(shares[b] * per_bucket[b][0] / per_bucket[b][1] for b in live)
    value = round(min(max(total, 0.0), 100.0), 1)
    return Score(score=value, band=model.bands.band(value), lines=tuple(lines), buckets=bucket_scores)


def trend(history: Sequence[tuple[datetime, float]], now: datetime, days: int) -> float | None:
    """The change of the score over ``days``: the latest score minus the one in force ``days`` before ``now``.

    ``history`` is (at, score) in time order. None when there is no score then or now.
    """
    current = [s for at, s in history if at <= now]
    then = [s for at, s in history if at <= now - timedelta(days=days)]
    if not current or not then:
        return None
    return round(current[-1] - then[-1], 1)
