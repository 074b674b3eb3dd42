"""``health_drop`` against a new score: the probe the matcher and ``csops explain`` share."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from engine.language.context import Calendar
from engine.language.durations import Duration
from engine.language.model import HealthDrop
from engine.triggers.signals import Facts, Probe, fmt

BANDS = {"green": 0, "yellow": 1, "red": 2}


def health(trig: HealthDrop, score: float | None, band: Any, facts: Facts, at: datetime) -> Probe:
    """``health_drop`` for a new score (and band) seen at ``at``, after ``facts.previous_score``."""
    prev = facts.previous_score
    if prev is None:
        earlier = [(t, s) for t, s in facts.health_history if t < at]
        prev = max(earlier, key=lambda e: e[0])[1] if earlier else None
    seen: dict[str, Any] = {"score": score, "previous_score": prev}
    if score is None and trig.to_band is None:
        return Probe(False, "the update has no score", seen)
    if trig.below is not None and score is not None:
        n = trig.below
        seen["below"] = n
        if prev is not None and prev >= n > score:
            return Probe(True, f"score fell from {fmt(prev)} to {fmt(score)}, below {n}", seen)
        if score >= n:
            return Probe(False, f"score is {fmt(score)} (>= {n})", seen)
        before = f"previous {fmt(prev)}" if prev is not None else "no earlier score"
        return Probe(False, f"score is {fmt(score)}, not a crossing of {n} ({before})", seen)
    if trig.by is not None and trig.within is not None and score is not None:
        start = back(at, trig.within, facts.calendar)
        peak = peak_score(facts.health_history, prev, start, at)
        drop = peak - score if peak is not None else 0
        seen.update(by=trig.by, within=trig.within.text, window_start=start.isoformat(), peak=peak, drop=drop)
        text = f"score is {fmt(score)}, the highest within {trig.within.text} was {fmt(peak)}: a fall of {fmt(drop)}"
        if prev is None or peak is None or drop < trig.by:
            return Probe(False, f"{text} (fires at {trig.by})", seen)
        if peak - prev >= trig.by:
            return Probe(False, f"{text}, but it was already {trig.by} down before (previous {fmt(prev)})", seen)
        return Probe(True, text, seen)
    new_band, old_band = str(band or "").lower(), str(facts.previous_band or "").lower()
    seen.update(band=new_band or None, previous_band=old_band or None, to_band=trig.to_band)
    fires = new_band == trig.to_band and old_band in BANDS and BANDS[old_band] < BANDS[new_band]
    return Probe(fires, f"band is {new_band or 'unknown'} (previous {old_band or 'unknown'})", seen)


def peak_score(history: tuple[tuple[datetime, float], ...], prev: float | None, start: datetime,
               end: datetime) -> float | None:
    """The highest score in force during [start, end]: scores set inside, the one in force at the start,
    and ``prev`` (in force until ``end``)."""
    inside = [s for t, s in history if start <= t <= end]
    before = [(t, s) for t, s in history if t < start]
    if before:
        inside.append(max(before, key=lambda e: e[0])[1])
    if prev is not None:
        inside.append(prev)
    return max(inside) if inside else None


def back(at: datetime, duration: Duration, calendar: Calendar) -> datetime:
    """``at`` minus ``duration`` (``Calendar.sub``); the earliest time when that is before the year 1."""
    try:
        return calendar.sub(at, duration)
    except OverflowError:
        return datetime.min.replace(tzinfo=at.tzinfo)
