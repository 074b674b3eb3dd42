"""The health model as typed, frozen values (what ``health.yaml`` says once it has been checked)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["BUCKETS", "Bands", "Bucket", "HealthModel", "Measure", "Missing", "Override", "Range", "Source",
           "Threshold"]

BUCKETS = ("usage", "relationship", "commercial")
"""The three buckets, in the order they are shown."""

SOURCE_KINDS = ("field", "count", "days_since", "latest", "trend", "features_used")
"""The kinds of source a measure can read (exactly one per measure)."""


@dataclass(frozen=True, kw_only=True)
class Source:
    """Where a measure's value comes from."""

    kind: str
    """One of ``SOURCE_KINDS``."""
    name: str = ""
    """The account field (field) or the event type (count, days_since, latest, trend)."""
    per: str = ""
    """With field: the account field it is divided by ("" = none)."""
    value: str = ""
    """With latest: the data key holding the number."""
    days: int = 30
    """With count and trend: the window in days."""
    features: tuple[str, ...] = ()
    """With features_used: the key features."""

    def describe(self) -> str:
        """The source in the words of health.yaml, e.g. ``count usage.login in 30d``."""
        if self.kind == "field":
            return f"field {self.name}" + (f" per {self.per}" if self.per else "")
        if self.kind in ("count", "trend"):
            return f"{self.kind} {self.name} in {self.days}d"
        if self.kind == "latest":
            return f"latest {self.name}.{self.value}"
        if self.kind == "days_since":
            return f"days since {self.name}"
        return f"features used of {', '.join(self.features)}"


@dataclass(frozen=True, kw_only=True)
class Threshold:
    """One step of a thresholds mapping."""

    points: float
    """The points when the step holds."""
    at_least: float | None = None
    """It holds for values at or above this (None: no lower bound)."""
    at_most: float | None = None
    """It holds for values at or below this (None: no upper bound)."""

    def holds(self, value: float) -> bool:
        """Whether the value is within this step."""
        return (self.at_least is None or value >= self.at_least) and (self.at_most is None or value <= self.at_most)


@dataclass(frozen=True, kw_only=True)
class Range:
    """A linear mapping: ``start`` gives 0 points, ``end`` 100."""

    start: float
    """``from``: the value of 0 points."""
    end: float
    """``to``: the value of 100 points."""


@dataclass(frozen=True, kw_only=True)
class Missing:
    """What a measure counts as when its input is missing."""

    mode: str = "skip"
    """``skip`` (left out, the others re-weighted), ``points`` or ``value``."""
    number: float = 0.0
    """The points or the value (not used with skip)."""


@dataclass(frozen=True, kw_only=True)
class Measure:
    """One measure of a bucket."""

    name: str
    """Its name (unique across the model)."""
    bucket: str
    """The bucket it belongs to."""
    source: Source
    """Where its value comes from."""
    weight: float = 1.0
    """Its weight within the bucket."""
    thresholds: tuple[Threshold, ...] = ()
    """Steps (when the mapping is by thresholds)."""
    range: Range | None = None
    """The line (when the mapping is a range)."""
    missing: Missing = field(default_factory=Missing)
    """What a missing input counts as."""
    description: str = ""
    """What it says about the account."""


@dataclass(frozen=True, kw_only=True)
class Bucket:
    """A bucket and its measures."""

    name: str
    """usage, relationship or commercial."""
    weight: float
    """Its weight among the buckets."""
    measures: tuple[Measure, ...]
    """Its measures, in file order."""


@dataclass(frozen=True, kw_only=True)
class Override:
    """Weights for the accounts of a segment and/or lifecycle stage."""

    segment: str = ""
    """Lower-cased; "" matches any segment."""
    lifecycle_stage: str = ""
    """Lower-cased; "" matches any stage."""
    buckets: tuple[tuple[str, float], ...] = ()
    """Bucket weights it sets."""
    measures: tuple[tuple[str, float], ...] = ()
    """Measure weights it sets."""

    def matches(self, segment: str, stage: str) -> bool:
        """Whether it applies to an account of this segment and stage (any case)."""
        return ((not self.segment or self.segment == segment.casefold())
                and (not self.lifecycle_stage or self.lifecycle_stage == stage.casefold()))


@dataclass(frozen=True, kw_only=True)
class Bands:
    """The band cut-offs."""

    red_below: float
    """Below this: red."""
    yellow_below: float
    """Below this (and not red): yellow; else green."""

    def band(self, score: float) -> str:
        """The band of a score."""
        return "red" if score < self.red_below else "yellow" if score < self.yellow_below else "green"


@dataclass(frozen=True, kw_only=True)
class HealthModel:
    """A checked health model."""

    name: str
    """``model:`` of the file (default ``health``)."""
    buckets: tuple[Bucket, ...]
    """The buckets it has, in the order of ``BUCKETS``."""
    bands: Bands
    """The cut-offs."""
    overrides: tuple[Override, ...] = ()
    """Weight overrides, in file order."""
    source: str = ""
    """The file it was read from."""
    version: str = ""
    """A hash of the file's text: ids of computed health events change with it."""

    @property
    def measures(self) -> tuple[Measure, ...]:
        """Every measure, bucket by bucket."""
        return tuple(m for b in self.buckets for m in b.measures)

    def measure(self, name: str) -> Measure | None:
        """The measure of that name, if any."""
        return next((m for m in self.measures if m.name == name), None)
