"""The model compiled for many accounts: measure values and scores without building a breakdown.

The daily scan and the bench recompute every account; most scores do not change, so only the
score and band are needed, and the breakdown (engine.health.score.score) is worked out for the
accounts whose score changed. ``Scorer.total`` does the same arithmetic in the same order as
``score``, so both give the same score to the last digit (tests/unit/health/test_fast.py checks it
on every snapshot of the shipped sample).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

from connectors.base import Account
from engine.health.inputs import field_value, number, since
from engine.health.score import points, weights_for
from engine.language.health_model import HealthModel, Measure, Source

__all__ = ["Reader", "Scorer"]

_SKIP, _POINTS, _VALUE = 0, 1, 2
_MODES = {"skip": _SKIP, "points": _POINTS, "value": _VALUE}
Getter = Callable[[Account, Mapping[tuple[str, str, int], Any]], float | None]


def _mapper(measure: Measure) -> Callable[[float], float]:
    if measure.range is not None:
        start, end = measure.range.start, measure.range.end
        span = end - start

        def line(value: float) -> float:
            share = (value - start) / span
            return 100.0 * min(max(share, 0.0), 1.0) + 0.0
        return line
    return lambda value: points(measure, value)


class Scorer:
    """Scores from measure values in model order, with the weights of each (segment, stage) worked out once."""

    def __init__(self, model: HealthModel) -> None:
        self.model = model
        self.names = [m.name for m in model.measures]
        self._buckets = [b.name for b in model.buckets]
        self._maps = [_mapper(m) for m in model.measures]
        self._profiles: dict[tuple[str, str], tuple[list[float], list[tuple[int, int, float, int, float]]]] = {}

    def _profile(self, segment: str, stage: str) -> tuple[list[float], list[tuple[int, int, float, int, float]]]:
        key = (segment.casefold(), stage.casefold())
        found = self._profiles.get(key)
        if found is None:
            bucket_w, measure_w = weights_for(self.model, segment, stage)
            index = {b: i for i, b in enumerate(self._buckets)}
            rows = [(i, index[m.bucket], measure_w[m.name], _MODES[m.missing.mode], m.missing.number)
                    for i, m in enumerate(self.model.measures) if measure_w[m.name] > 0]
            found = self._profiles[key] = ([bucket_w[b] for b in self._buckets], rows)
        return found

    def total(self, values: Sequence[float | None], segment: str = "", stage: str = "") -> float | None:
        """The score (one decimal) of measure values given in model order; None when nothing counts."""
        bucket_w, rows = self._profile(segment, stage)
        acc = [0.0] * len(bucket_w)
        wsum = [0.0] * len(bucket_w)
        maps = self._maps
        for i, b, w, mode, number_ in rows:
            value = values[i]
            if value is None:
                if mode == _SKIP:
                    continue
                got = number_ if mode == _POINTS else maps[i](number_)
            else:
                got = maps[i](value)
            acc[b] += got * w
            wsum[b] += w
        live = [b for b in range(len(bucket_w)) if wsum[b] > 0 and bucket_w[b] > 0]
        total_w = sum(bucket_w[b] for b in live)
        if not live:
            return None
        total = sum(bucket_w[b] / total_w * acc[b] / wsum[b] for b in live)  # as score() associates it
        return round(min(max(total, 0.0), 100.0), 1)

    def band(self, value: float) -> str:
        """The band of a score."""
        return self.model.bands.band(value)


def _getter(src: Source, now: datetime) -> Getter:
    """How one source's value is read from an account and the store's raw answers (as engine.health.inputs)."""
    today = now.date()
    if src.kind == "field":
        name, per = src.name, src.per

        def field(account: Account, raw: Mapping[tuple[str, str, int], Any]) -> float | None:
            value = field_value(account, name, today)
            if not per or value is None:
                return value
            below = field_value(account, per, today)
            return None if not below else value / below
        return field
    count_key, before_key = ("count", src.name, src.days), ("before", src.name, src.days)
    if src.kind == "count":
        return lambda account, raw: float(raw.get(count_key) or 0)
    if src.kind == "trend":
        def trend(account: Account, raw: Mapping[tuple[str, str, int], Any]) -> float | None:
            before = raw.get(before_key) or 0
            return None if not before else float(raw.get(count_key) or 0) / before
        return trend
    if src.kind == "days_since":
        key = ("last", src.name, 0)
        return lambda account, raw: since(raw.get(key), now)
    if src.kind == "latest":
        key, value_key = ("latest", src.name, 0), src.value

        def latest(account: Account, raw: Mapping[tuple[str, str, int], Any]) -> float | None:
            data = raw.get(key)
            found = json.loads(data).get(value_key) if data else None
            return number(found) if isinstance(found, int | float) and not isinstance(found, bool) else None
        return latest
    key, size = ("features", ",".join(src.features), 0), len(src.features)
    return lambda account, raw: (raw.get(key) or 0) / size


class Reader:
    """Measure values in model order from an account and the store's raw answers, the getters built once."""

    def __init__(self, model: HealthModel, now: datetime) -> None:
        self._getters = [_getter(m.source, now) for m in model.measures]

    def values(self, account: Account, raw: Mapping[tuple[str, str, int], Any]) -> list[float | None]:
        """Every measure's value for the account."""
        return [get(account, raw) for get in self._getters]
