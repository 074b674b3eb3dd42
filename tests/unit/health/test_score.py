"""The scorer, with figures worked out by hand: thresholds, ranges, weights, overrides, missing data, bands, trend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from engine.health import HealthModel, parse_health, points, score, trend, weights_for

MODEL = """\
missing: skip
buckets:
  usage:
    weight: 3
    measures:
      logins:
        source: { count: usage.login }
        weight: 2
        thresholds:
          - { at_least: 20, points: 100 }
          - { at_least: 5, points: 60 }
          - { at_most: 4, at_least: 1, points: 30 }
      seats:
        source: { field: fields.active_seats, per: fields.licensed_seats }
        range: { from: 0.2, to: 0.8 }
  relationship:
    weight: 1
    measures:
      meeting:
        source: { days_since: meeting.held }
        range: { from: 90, to: 10 }
        missing: { value: 90 }
      nps:
        source: { latest: survey.nps, value: score }
        range: { from: 0, to: 10 }
        missing: { points: 50 }
overrides:
  - segment: SMB
    buckets: { relationship: 0 }
  - lifecycle_stage: onboard
    measures: { logins: 0 }
  - segment: smb
    lifecycle_stage: onboard
    buckets: { relationship: 1 }
bands: { red_below: 40, yellow_below: 70 }
"""


@pytest.fixture(scope="module")
def model() -> HealthModel:
    found, problems = parse_health(MODEL)
    assert problems == [] and found is not None
    return found


@pytest.mark.parametrize(("value", "expected"), [
    (25, 100.0), (20, 100.0), (19.9, 60.0), (5, 60.0), (4, 30.0), (1, 30.0), (0, 0.0), (-3, 0.0)])
def test_thresholds_take_the_first_step_that_holds_and_none_is_zero(model: HealthModel, value: float,
                                                                      expected: float) -> None:
    logins = model.measure("logins")
    assert logins is not None and points(logins, value) == expected


@pytest.mark.parametrize(("measure", "value", "expected"), [
    ("seats", 0.2, 0.0), ("seats", 0.5, 50.0), ("seats", 0.8, 100.0), ("seats", 0.95, 100.0), ("seats", 0.0, 0.0),
    ("meeting", 90, 0.0), ("meeting", 50, 50.0), ("meeting", 30, 75.0), ("meeting", 10, 100.0), ("meeting", 3, 100.0),
    ("meeting", 200, 0.0)])
def test_ranges_are_linear_and_clamped_both_ways(model: HealthModel, measure: str, value: float,
                                                 expected: float) -> None:
    found = model.measure(measure)
    assert found is not None and points(found, value) == pytest.approx(expected, abs=1e-9)


def test_weights_average_measures_in_a_bucket_then_buckets(model: HealthModel) -> None:
    # usage: logins 60 pts x2, seats 50 pts x1 → 56.67; relationship: meeting 75, nps 80 → 77.5.
    # Score: (3 x 56.67 + 1 x 77.5) / 4 = 61.875 → 61.9, yellow.
    result = score(model, {"logins": 10, "seats": 0.5, "meeting": 30, "nps": 8})
    assert (result.score, result.band) == (61.9, "yellow")
    assert [(b, s) for b, s, _ in result.buckets] == [("usage", 56.7), ("relationship", 77.5)]
    shares = {line.measure: round(line.weight, 4) for line in result.lines}
    assert shares == {"logins": 0.5, "seats": 0.25, "meeting": 0.125, "nps": 0.125}
    assert sum(line.weight for line in result.lines) == pytest.approx(1.0)


def test_segment_override_zeroes_a_bucket_and_is_case_blind(model: HealthModel) -> None:
    result = score(model, {"logins": 10, "seats": 0.5, "meeting": 30, "nps": 8}, segment="smb")
    assert result.score == 56.7  # usage alone
    assert weights_for(model, "Smb", "adopt") == ({"usage": 3.0, "relationship": 0.0},
                                                  {"logins": 2.0, "seats": 1.0, "meeting": 1.0, "nps": 1.0})


def test_overrides_apply_in_order_the_later_winning(model: HealthModel) -> None:
    buckets, measures = weights_for(model, "smb", "onboard")
    assert buckets == {"usage": 3.0, "relationship": 1.0} and measures["logins"] == 0.0
    # logins weigh 0: usage is seats alone (50); relationship 77.5 → (3 x 50 + 77.5) / 4 = 56.875 → 56.9.
    result = score(model, {"logins": 10, "seats": 0.5, "meeting": 30, "nps": 8}, segment="smb",
                   lifecycle_stage="onboard")
    assert result.score == 56.9
    assert next(line for line in result.lines if line.measure == "logins").note == "weight 0 for this account"


def test_missing_skipped_reweights_the_rest(model: HealthModel) -> None:
    # seats missing (skip): usage is logins alone, 100; relationship: meeting missing counts as the value 90
    # (0 pts), nps missing counts 50 pts → 25. Score (3 x 100 + 25) / 4 = 81.25 → 81.2 (round half even).
    result = score(model, {"logins": 30})
    assert result.score == 81.2 and result.band == "green"
    notes = {line.measure: line.note for line in result.lines}
    assert notes == {"logins": "", "seats": "missing: skipped, the other measures weigh more",
                     "meeting": "missing: counted as the value 90", "nps": "missing: counted as 50 points"}


def test_missing_counted_as_points_or_value_holds_up_a_score_without_inputs(model: HealthModel) -> None:
    # Nothing given: usage has nothing counted and is left out; relationship 0 and 50 → 25, red.
    result = score(model, {})
    assert (result.score, result.band) == (25.0, "red")
    assert result.buckets[0] == ("usage", None, 0.0)


def test_no_score_at_all_when_nothing_counts(model: HealthModel) -> None:
    found, _ = parse_health(MODEL.replace("missing: { value: 90 }", "missing: skip")
                            .replace("missing: { points: 50 }", "missing: skip"))
    assert found is not None
    result = score(found, {"logins": None, "seats": "n/a", "meeting": float("nan")})
    assert (result.score, result.band) == (None, "")
    assert all(line.weight == 0 and line.points is None for line in result.lines)


def test_true_and_false_count_as_one_and_zero(model: HealthModel) -> None:
    assert score(model, {"seats": True}, segment="smb").score == 100.0


@pytest.mark.parametrize(("value", "band"), [(0, "red"), (39.9, "red"), (40, "yellow"), (69.9, "yellow"),
                                              (70, "green"), (100, "green")])
def test_bands_cut_offs_are_below_is_lower_band(model: HealthModel, value: float, band: str) -> None:
    assert model.bands.band(value) == band


def test_the_model_default_for_missing_applies_unless_a_measure_says_otherwise() -> None:
    found, _ = parse_health(MODEL.replace("missing: skip", "missing: { points: 10 }"))
    assert found is not None
    result = score(found, {"logins": 30})
    # seats missing now counts 10 points: usage (2 x 100 + 10) / 3 = 70; relationship still 25.
    assert result.score == pytest.approx(58.8)


T0 = datetime(2026, 11, 1, tzinfo=UTC)


def test_trend_is_now_minus_the_score_in_force_n_days_before() -> None:
    history = [(T0, 80.0), (T0 + timedelta(days=10), 70.0), (T0 + timedelta(days=25), 55.0),
               (T0 + timedelta(days=31), 50.0)]
    now = T0 + timedelta(days=31)
    assert trend(history, now, 7) == -20.0  # 70 was in force on day 24
    assert trend(history, now, 30) == -30.0  # 80 on day 1
    assert trend(history, now, 40) is None  # no score that long ago
    assert trend([], now, 7) is None
