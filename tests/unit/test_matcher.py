"""The trigger matcher at its boundaries: every trigger form, audience, entry keys, cooldown, explain.

Playbooks are real ones, compiled from YAML text by the validator. The account is acme, in the
strategic segment and the adopt stage, renewing on 2027-03-01; it is Monday 2026-11-23, 10:00 UTC.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.triggers.explain import explain
from engine.triggers.matcher import decide
from engine.triggers.signals import Decision, EventSignal, Facts, ManualStart, Scan, Signal, Tick

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)  # a Monday
TODAY = NOW.date()
RENEWAL = "2027-03-01"


def playbook(triggers: str, extra: str = "") -> Playbook:
    """A compiled playbook with these triggers (YAML flow items, one per line) and extra top-level keys."""
    lines = "".join(f"  - {t}\n" for t in triggers.strip().splitlines())
    text = f"playbook: p\ntitle: P\ntriggers:\n{lines}{extra}steps:\n  - id: t\n    task: {{title: T}}\n"
    result = check_text(text)
    assert [p.message for p in result.problems if p.severity == "error"] == []
    assert result.playbook is not None
    return result.playbook


def account(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "id": "acme", "name": "Acme", "segment": "strategic", "lifecycle_stage": "adopt", "owner": None,
        "arr": 50000.0, "renewal_date": RENEWAL, "contract_start": "2024-03-01", "renewal_status": "open",
        "health": {"score": 72, "band": "green", "previous_score": 80}, "usage": {}, "fields": {},
    }
    return {**base, **changes}


def facts(**kw: Any) -> Facts:
    kw.setdefault("account", account())
    kw.setdefault("now", NOW)
    return Facts(**kw)


def event(type_: str, data: Mapping[str, Any], *, at: datetime = NOW,
          previous: Mapping[str, Any] | None = None) -> EventSignal:
    return EventSignal(id="ev-1", type=type_, account_id="acme", occurred_at=at, data=data, previous=previous or {})


def health(score: Any, band: str | None = None, at: datetime = NOW) -> EventSignal:
    data: dict[str, Any] = {"score": score}
    if band is not None:
        data["band"] = band
    return event("health.updated", data, at=at)


def scan(since: str, today: str) -> Scan:
    return Scan(account_id="acme", since=date.fromisoformat(since), today=date.fromisoformat(today))


def edit(fields: Mapping[str, Any], previous: Mapping[str, Any] | None = None) -> EventSignal:
    return event("account.updated", {"fields": dict(fields)}, previous=previous)


def started(pb: Playbook, signal: Signal, f: Facts) -> Decision:
    d = decide(pb, signal, f)
    assert d is not None
    assert (d.outcome, d.reason) == ("start", "started"), d.message
    return d


def suppressed(pb: Playbook, signal: Signal, f: Facts, reason: str) -> Decision:
    d = decide(pb, signal, f)
    assert d is not None
    assert (d.outcome, d.reason) == ("suppressed", reason), d.message
    return d


# health_drop below


@pytest.mark.parametrize(("previous", "new", "fires"), [
    (55, 42, True), (50, 49, True), (55, 50, False), (45, 40, False), (None, 30, False), (49, 60, False),
])
def test_below_fires_only_on_the_crossing(previous: int | None, new: int, fires: bool) -> None:
    pb = playbook("health_drop: {below: 50}")
    d = decide(pb, health(new), facts(previous_score=previous))
    assert (d is not None) is fires
    if d is not None:
        assert d.seen["score"] == new and d.seen["previous_score"] == previous
        assert d.occurrence == "" and d.run_id == "pb:p:acme:once"
        assert d.message == f"start pb:p:acme:once: health_drop below 50: score fell from {previous} to {new}, below 50"


def test_health_update_without_a_score_matches_nothing() -> None:
    assert decide(playbook("health_drop: {below: 50}"), health("n/a"), facts(previous_score=80)) is None


# health_drop by within


def history(*points: tuple[int, int]) -> tuple[tuple[datetime, float], ...]:
    """(days before NOW, score) pairs."""
    return tuple((NOW - timedelta(days=d), float(s)) for d, s in points)


def test_by_within_fires_for_a_drop_inside_the_window() -> None:
    pb = playbook("health_drop: {by: 20, within: 14d}")
    d = started(pb, health(60), facts(previous_score=80, health_history=history((10, 80))))
    assert (d.seen["peak"], d.seen["drop"], d.seen["window_start"]) == (80, 20, "2026-11-09T10:00:00+00:00")


def test_by_within_ignores_the_same_drop_spread_over_longer_than_the_window() -> None:
    pb = playbook("health_drop: {by: 20, within: 14d}")
    # 80 until day -15, then 70: at the window's start (day -14) the score was already 70
    assert decide(pb, health(60), facts(previous_score=70, health_history=history((30, 80), (15, 70)))) is None
    assert decide(pb, health(61), facts(previous_score=80, health_history=history((10, 80)))) is None


def test_by_within_counts_the_score_in_force_when_the_window_opens() -> None:
    pb = playbook("health_drop: {by: 20, within: 14d}")
    # 80 was set on day -20 and held until day -10: it was the score on day -14
    d = started(pb, health(60), facts(previous_score=70, health_history=history((20, 80), (10, 70))))
    assert d.seen["peak"] == 80


def test_by_within_does_not_fire_again_while_the_score_stays_down() -> None:
    pb = playbook("health_drop: {by: 20, within: 14d}")
    assert decide(pb, health(55), facts(previous_score=58, health_history=history((5, 80), (2, 58)))) is None
    # once the high score has left the window, a new sharp fall fires again
    started(pb, health(30), facts(previous_score=55, health_history=history((20, 80), (16, 58), (15, 55))))


def test_by_within_business_days_counts_back_over_workdays() -> None:
    # 80 from Fri 11-13, 75 from Tue 11-17; 5 calendar days back is Wed 11-18 (75 in force),
    # 5 business days back is Mon 11-16 (80 in force)
    points = (NOW - timedelta(days=10), 80.0), (NOW - timedelta(days=6), 75.0)
    f = facts(previous_score=75, health_history=points)
    assert decide(playbook("health_drop: {by: 20, within: 5d}"), health(58), f) is None
    d = started(playbook("health_drop: {by: 20, within: 5 business days}"), health(58), f)
    assert d.seen["window_start"] == "2026-11-16T10:00:00+00:00" and d.seen["drop"] == 22


# health_drop to_band


@pytest.mark.parametrize(("to_band", "before", "after", "fires"), [
    ("red", "green", "red", True), ("red", "yellow", "red", True), ("red", "red", "red", False),
    ("yellow", "red", "yellow", False), ("yellow", "green", "red", False), ("yellow", "green", "Yellow", True),
    ("red", None, "red", False),
])
def test_to_band_fires_when_the_band_worsens_to_it(to_band: str, before: str | None, after: str, fires: bool) -> None:
    pb = playbook(f"health_drop: {{to_band: {to_band}}}")
    d = decide(pb, health(40, after), facts(previous_band=before, previous_score=70))
    assert (d is not None) is fires


def test_to_band_worsening_twice_fires_twice_and_the_run_rules_decide() -> None:
    pb = playbook("health_drop: {to_band: red}", "entry: {cooldown: 14d}\n")
    started(pb, health(30, "red"), facts(previous_band="green"))
    assert decide(pb, health(80, "green"), facts(previous_band="red")) is None
    again = health(30, "red")
    d = suppressed(pb, again, facts(previous_band="green", active_run="pb:p:acme:once"), "already_active")
    assert d.message == "suppressed: a run is already active (pb:p:acme:once)"
    d = suppressed(pb, again, facts(previous_band="green", last_run_ended_at=NOW - timedelta(days=3)), "cooldown")
    assert d.seen["cooldown_until"] == "2026-12-04T10:00:00+00:00"
    started(pb, again, facts(previous_band="green", last_run_ended_at=NOW - timedelta(days=15)))


def test_to_band_uses_the_account_band_when_the_event_has_none() -> None:
    pb = playbook("health_drop: {to_band: red}")
    f = facts(account=account(health={"score": 30, "band": "red"}), previous_band="yellow")
    started(pb, event("health.updated", {"score": 30}), f)


# contract_milestone


def test_scan_fires_on_the_milestone_day_with_the_date_as_occurrence() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}")
    d = started(pb, scan("2026-11-30", "2026-12-01"), facts())
    assert d.occurrence == RENEWAL and d.run_id == f"pb:p:acme:{RENEWAL}"
    assert {k: d.seen[k] for k in ("date", "milestone_day", "days_to_milestone", "days_to_date")} == {
        "date": RENEWAL, "milestone_day": "2026-12-01", "days_to_milestone": 0, "days_to_date": 90}
    assert d.trigger_data["type"] == "contract_milestone" and d.trigger.index == 0


@pytest.mark.parametrize(("since", "today", "fires"), [
    ("2026-11-28", "2026-12-03", True),   # catch-up after missed days
    ("2026-11-30", "2026-12-01", True),
    ("2026-12-01", "2026-12-05", False),  # an earlier scan covered the milestone day
    ("2026-11-20", "2026-11-30", False),  # not yet
])
def test_scan_window_is_since_exclusive_today_inclusive(since: str, today: str, fires: bool) -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}")
    assert (decide(pb, scan(since, today), facts()) is not None) is fires


def test_business_days_count_workdays_and_skip_holidays() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 10, business_days: true}")
    d = started(pb, scan("2027-02-14", "2027-02-15"), facts())
    assert d.seen["milestone_day"] == "2027-02-15"  # ten weekdays before Monday 2027-03-01
    holiday = Calendar(holidays=frozenset({date(2027, 2, 22)}))
    d = started(pb, scan("2027-02-11", "2027-02-12"), facts(calendar=holiday))
    assert d.seen["milestone_day"] == "2027-02-12"


def test_days_after_counts_forward() -> None:
    pb = playbook("contract_milestone: {field: contract_start, days_after: 30}")
    f = facts(account=account(contract_start="2026-11-01"))
    d = started(pb, scan("2026-11-30", "2026-12-01"), f)
    assert d.occurrence == "2026-11-01"


def test_custom_date_fields_and_empty_dates() -> None:
    pb = playbook("contract_milestone: {field: fields.go_live_date, days_after: 10}")
    started(pb, scan("2026-11-22", "2026-11-23"), facts(account=account(fields={"go_live_date": "2026-11-13"})))
    assert decide(pb, scan("2026-11-22", "2026-11-23"), facts(account=account(fields={}))) is None
    nested = edit({"fields": {"go_live_date": "2026-11-13"}})
    dotted = edit({"fields.go_live_date": date(2026, 11, 13)})
    assert started(pb, nested, facts()).occurrence == started(pb, dotted, facts()).occurrence == "2026-11-13"
    assert decide(playbook("contract_milestone: {field: renewal_date, days_before: 90}"),
                  scan("2026-11-30", "2026-12-01"), facts(account=account(renewal_date=None))) is None


@pytest.mark.parametrize(("new", "fires"), [
    ("2027-02-20", True),    # milestone day 2026-11-22 passed yesterday, the renewal is still ahead
    ("2027-02-21", True),    # milestone day is today
    ("2027-06-01", False),   # milestone day ahead: the daily scan will fire it
    ("2026-11-20", False),   # the renewal itself is past
    ("not a date", False),
    (None, False),
])
def test_editing_the_date_fires_at_once_when_the_new_milestone_is_due(new: Any, fires: bool) -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}")
    d = decide(pb, edit({"renewal_date": new}, {"renewal_date": RENEWAL}), facts(account=account(renewal_date=new)))
    assert (d is not None) is fires
    if d is not None:
        assert d.occurrence == new


def test_editing_days_after_fires_up_to_n_days_late() -> None:
    pb = playbook("contract_milestone: {field: contract_start, days_after: 30}")
    assert decide(pb, edit({"contract_start": "2026-10-20"}), facts()) is not None  # milestone 11-19
    assert decide(pb, edit({"contract_start": "2026-09-24"}), facts()) is not None  # milestone 10-24: 30 days late
    assert decide(pb, edit({"contract_start": "2026-09-23"}), facts()) is None      # 31 days late
    assert decide(pb, edit({"contract_start": "2025-01-01"}), facts()) is None


def test_an_edit_that_keeps_the_date_or_touches_other_fields_is_ignored() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}")
    assert decide(pb, edit({"renewal_date": "2027-02-20"}, {"renewal_date": "2027-02-20"}), facts()) is None
    assert decide(pb, edit({"arr": 1}), facts()) is None


def test_moved_renewal_is_a_new_occurrence_suppressed_while_the_first_run_is_active() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}")
    first = started(pb, scan("2026-11-30", "2026-12-01"), facts())
    moved = edit({"renewal_date": "2027-02-20"}, {"renewal_date": RENEWAL})
    busy = facts(account=account(renewal_date="2027-02-20"), active_run=first.run_id, started_keys=frozenset({RENEWAL}))
    d = suppressed(pb, moved, busy, "already_active")
    assert d.occurrence == "2027-02-20" and d.seen["active_run"] == first.run_id
    done = facts(account=account(renewal_date="2027-02-20"), started_keys=frozenset({RENEWAL}))
    assert started(pb, moved, done).run_id == "pb:p:acme:2027-02-20"
    again = suppressed(pb, scan("2026-11-30", "2026-12-01"), facts(started_keys=frozenset({RENEWAL})),
                       "duplicate_occurrence")
    assert again.message == f"suppressed: a run for occurrence {RENEWAL} was already started (pb:p:acme:{RENEWAL})"


# new_usage


def test_new_usage_fires_on_the_first_use_only() -> None:
    pb = playbook("new_usage: {feature: advanced_analytics}")
    used = event("usage.feature_used", {"feature": "advanced_analytics"})
    d = started(pb, used, facts(first_feature_use=True))
    assert d.occurrence == "advanced_analytics" and d.seen["first_use"] is True
    assert decide(pb, used, facts(first_feature_use=False)) is None
    assert decide(pb, event("usage.feature_used", {"feature": "reports"}), facts(first_feature_use=True)) is None


def test_new_usage_star_and_products() -> None:
    any_feature = playbook('new_usage: {feature: "*"}')
    assert started(any_feature, event("usage.feature_used", {"feature": "reports"}),
                   facts(first_feature_use=True)).occurrence == "reports"
    product = playbook("new_usage: {product: insights}")
    used = event("usage.feature_used", {"feature": "reports", "product": "insights"})
    assert started(product, used, facts(first_product_use=True, first_feature_use=False)).occurrence == "insights"
    assert decide(product, used, facts(first_product_use=False, first_feature_use=True)) is None
    assert decide(product, event("usage.feature_used", {"feature": "reports"}), facts(first_product_use=True)) is None


# lifecycle_change, event


@pytest.mark.parametrize(("trigger", "old", "new", "fires"), [
    ("{to: adopt, from: onboard}", "onboard", "adopt", True),
    ("{to: adopt, from: onboard}", "trial", "adopt", False),
    ("{to: adopt, from: onboard}", None, "adopt", False),
    ("{to: adopt}", "trial", "adopt", True),
    ("{to: adopt}", None, "adopt", True),
    ("{to: adopt}", "adopt", "adopt", False),
    ("{to: adopt}", "adopt", "expand", False),
])
def test_lifecycle_change(trigger: str, old: str | None, new: str, fires: bool) -> None:
    pb = playbook(f"lifecycle_change: {trigger}")
    previous = {"lifecycle_stage": old} if old is not None else {}
    d = decide(pb, edit({"lifecycle_stage": new}, previous), facts(account=account(lifecycle_stage=new)))
    assert (d is not None) is fires


def test_event_type_and_where_on_event_and_account() -> None:
    pb = playbook("event: {type: nps.submitted, where: event.data.score <= 6 and account.arr > 1000}")
    d = started(pb, event("nps.submitted", {"score": 5}), facts())
    assert d.trigger_data["event"]["data"] == {"score": 5} and d.seen["where"] is True
    assert decide(pb, event("nps.submitted", {"score": 9}), facts()) is None
    assert decide(pb, event("nps.submitted", {"score": 5}), facts(account=account(arr=10.0))) is None
    assert decide(pb, event("email.replied", {"score": 5}), facts()) is None


def test_a_failing_where_is_a_suppressed_expression_error_not_an_exception() -> None:
    pb = playbook("event: {type: nps.submitted, where: event.data.score <= 6}")
    d = suppressed(pb, event("nps.submitted", {}), facts(), "expression_error")
    assert d.message.startswith("suppressed: where event.data.score <= 6 could not be evaluated for this account (")
    assert "score" in d.message and d.message.endswith("fix the expression or fill in the missing data")


def test_first_firing_trigger_wins_and_others_are_listed() -> None:
    pb = playbook("event: {type: nps.submitted, where: event.data.missing > 1}\nevent: {type: nps.submitted}\n"
                  "event: {type: nps.submitted}")
    d = started(pb, event("nps.submitted", {}), facts())
    assert d.trigger.index == 1 and d.seen["also_matched"] == [2]


# schedule, manual


def test_schedule_tick_fires_with_the_tick_time_as_occurrence() -> None:
    pb = playbook('schedule: {cron: "0 9 * * MON", timezone: Europe/Berlin}',
                  "audience: {segments: [strategic]}\n")
    tick = Tick(account_id="acme", cron="0 9 * * MON", timezone="Europe/Berlin",
                at=datetime(2026, 11, 23, 9, tzinfo=Calendar(timezone="Europe/Berlin").zone))
    d = started(pb, tick, facts())
    assert d.occurrence == "2026-11-23T08:00:00+00:00"
    suppressed(pb, tick, facts(started_keys=frozenset({d.occurrence})), "duplicate_occurrence")
    suppressed(pb, tick, facts(account=account(segment="smb")), "audience_segment")
    assert decide(pb, Tick(account_id="acme", cron="0 9 * * MON", at=NOW), facts()) is None  # other time zone
    assert decide(pb, Tick(account_id="acme", cron="@daily", timezone="Europe/Berlin", at=NOW), facts()) is None


def test_manual_start_needs_a_manual_trigger_and_may_name_the_occurrence() -> None:
    pb = playbook("manual: {}")
    d = started(pb, ManualStart(account_id="acme", by="ana@example.com"), facts())
    assert (d.occurrence, d.trigger_data["by"]) == ("", "ana@example.com")
    assert started(pb, ManualStart(account_id="acme", occurrence="q4"), facts()).run_id == "pb:p:acme:q4"
    assert decide(playbook("event: {type: nps.submitted}"), ManualStart(account_id="acme"), facts()) is None
    assert decide(pb, scan("2026-11-30", "2026-12-01"), facts()) is None


# audience, entry, cooldown, enabled


AUDIENCE = "audience:\n  segments: [strategic, commercial]\n  lifecycle_stages: [adopt]\n  when: account.arr >= 10000\n"


@pytest.mark.parametrize(("changes", "reason", "message"), [
    ({"segment": "smb", "arr": 1.0}, "audience_segment",
     "suppressed: segment is 'smb', not one of the audience segments (strategic, commercial)"),
    ({"lifecycle_stage": "onboard", "arr": 1.0}, "audience_stage",
     "suppressed: lifecycle stage is 'onboard', not one of the audience stages (adopt)"),
    ({"arr": 9999.0}, "audience_when", "suppressed: audience.when account.arr >= 10000 is false for this account"),
])
def test_audience_checks_in_order(changes: dict[str, Any], reason: str, message: str) -> None:
    pb = playbook("manual: {}", AUDIENCE)
    d = suppressed(pb, ManualStart(account_id="acme"), facts(account=account(**changes)), reason)
    assert d.message == message
    started(pb, ManualStart(account_id="acme"), facts())


def test_audience_when_naming_missing_data_is_an_expression_error() -> None:
    pb = playbook("manual: {}", "audience: {when: account.fields.tier == 'gold'}\n")
    d = suppressed(pb, ManualStart(account_id="acme"), facts(), "expression_error")
    assert "audience.when account.fields.tier == 'gold' could not be evaluated" in d.message
    started(pb, ManualStart(account_id="acme"), facts(account=account(fields={"tier": "gold"})))


def test_explicit_entry_key() -> None:
    pb = playbook("health_drop: {below: 50}", "entry: {key: account.id}\n")
    assert started(pb, health(40), facts(previous_score=60)).run_id == "pb:p:acme:acme"
    suppressed(pb, health(40), facts(previous_score=60, started_keys=frozenset({"acme"})), "duplicate_occurrence")
    dated = playbook("manual: {}", "entry: {key: account.renewal_date}\n")
    assert started(dated, ManualStart(account_id="acme"), facts()).occurrence == RENEWAL
    assert started(dated, ManualStart(account_id="acme"), facts(account=account(renewal_date=None))).occurrence == ""
    broken = playbook("manual: {}", "entry: {key: account.fields.cohort}\n")
    d = suppressed(broken, ManualStart(account_id="acme"), facts(), "expression_error")
    assert d.message.startswith("suppressed: entry.key account.fields.cohort could not be evaluated")


def test_order_active_then_duplicate_then_cooldown() -> None:
    pb = playbook("manual: {}", "entry: {key: account.id, cooldown: 30d}\n")
    start = ManualStart(account_id="acme")
    everything = {"active_run": "pb:p:acme:acme", "started_keys": frozenset({"acme"}),
                  "last_run_ended_at": NOW - timedelta(days=1)}
    suppressed(pb, start, facts(**everything), "already_active")
    suppressed(pb, start, facts(**{**everything, "active_run": None}), "duplicate_occurrence")
    d = suppressed(pb, start, facts(**{**everything, "active_run": None, "started_keys": frozenset()}), "cooldown")
    assert d.message == ("suppressed: cooldown 30d after the last run, which ended 2026-11-22T10:00:00+00:00; "
                         "no new run before 2026-12-22T10:00:00+00:00")


def test_cooldown_ends_exactly_at_its_end_and_counts_business_days() -> None:
    pb = playbook("manual: {}", "entry: {cooldown: 5 business days}\n")
    ended = datetime(2026, 11, 13, 17, tzinfo=UTC)  # a Friday
    start = ManualStart(account_id="acme")
    suppressed(pb, start, facts(last_run_ended_at=ended, now=datetime(2026, 11, 20, 16, 59, tzinfo=UTC)), "cooldown")
    started(pb, start, facts(last_run_ended_at=ended, now=datetime(2026, 11, 20, 17, tzinfo=UTC)))
    holiday = Calendar(holidays=frozenset({date(2026, 11, 19)}))
    d = suppressed(pb, start, facts(last_run_ended_at=ended, now=datetime(2026, 11, 20, 17, tzinfo=UTC),
                                    calendar=holiday), "cooldown")
    assert d.seen["cooldown_until"] == "2026-11-23T17:00:00+00:00"


def test_disabled_playbooks_never_start() -> None:
    pb = playbook("health_drop: {below: 50}", "enabled: false\n")
    d = suppressed(pb, health(40), facts(previous_score=60), "disabled")
    assert d.message == "suppressed: the playbook is disabled (enabled: false)"
    assert decide(pb, health(70), facts(previous_score=60)) is None


def test_decision_data_is_json() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}", AUDIENCE)
    d = started(pb, edit({"renewal_date": date(2027, 2, 21)}), facts(account=account(renewal_date=date(2027, 2, 21))))
    assert json.loads(json.dumps(d.seen))["audience_when"] is True
    assert json.loads(json.dumps(d.trigger_data))["event"]["data"]["fields"]["renewal_date"] == "2027-02-21"


# explain


def test_explain_says_where_each_condition_stands() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}\nhealth_drop: {below: 50}\n"
                  "new_usage: {feature: advanced_analytics}\nlifecycle_change: {to: expand, from: adopt}\n"
                  "event: {type: nps.submitted, where: event.data.score <= 6}\n"
                  'schedule: {cron: "0 9 * * MON"}\nmanual: {}',
                  AUDIENCE + "entry: {cooldown: 30d}\n")
    f = facts(previous_score=80, active_run="pb:p:acme:once", last_run_ended_at=NOW - timedelta(days=40))
    lines = [(c.name, c.state, c.text) for c in explain(pb, f, TODAY)]
    assert lines == [
        ("enabled", "pass", "enabled"),
        ("trigger 1", "fail", "contract_milestone renewal_date days_before 90: renewal_date is 2027-03-01, "
                              "the milestone day is 2026-12-01, 8 days from today"),
        ("trigger 2", "fail", "health_drop below 50: score is 72 (>= 50)"),
        ("trigger 3", "waiting", "new_usage feature advanced_analytics: starts when a usage.feature_used event for "
                                 "feature advanced_analytics arrives; the account has used it before: no"),
        ("trigger 4", "waiting", "lifecycle_change to expand from adopt: starts when the lifecycle stage changes to "
                                 "expand from adopt; it is now adopt"),
        ("trigger 5", "waiting", "event nps.submitted where event.data.score <= 6: starts when a nps.submitted "
                                 "event arrives for the account"),
        ("trigger 6", "waiting", "schedule '0 9 * * MON' (UTC): starts on each tick; the next is "
                                 "2026-11-30T09:00:00+00:00"),
        ("trigger 7", "waiting", "manual: starts when a person starts it from the CLI or the API"),
        ("audience.segments", "pass", "segment is 'strategic'; allowed: strategic, commercial"),
        ("audience.lifecycle_stages", "pass", "lifecycle stage is 'adopt'; allowed: adopt"),
        ("audience.when", "pass", "audience.when account.arr >= 10000 is true"),
        ("active run", "fail", "a run is already active (pb:p:acme:once)"),
        ("entry key", "pass", "default key of contract_milestone renewal_date days_before 90, the date: it is "
                              "2027-03-01; no run was started for it yet"),
        ("cooldown", "pass", "cooldown 30d: the last run ended 2026-10-14T10:00:00+00:00, so no new run before "
                             "2026-11-13T10:00:00+00:00 (over)"),
    ]


def test_explain_passes_on_the_day_and_reports_failures() -> None:
    pb = playbook("contract_milestone: {field: renewal_date, days_before: 90}\nhealth_drop: {below: 50}\n"
                  "new_usage: {feature: reports}",
                  "audience: {segments: [smb], when: account.fields.tier == 'gold'}\n"
                  "entry: {key: account.renewal_date, cooldown: 30d}\nenabled: false\n")
    f = facts(account=account(health={"score": 42, "band": "red"}, usage={"reports": 3}), previous_score=55,
              started_keys=frozenset({RENEWAL}), last_run_ended_at=NOW - timedelta(days=2))
    checks = {c.name: c for c in explain(pb, f, date(2026, 12, 1))}
    assert checks["enabled"].state == "fail"
    assert checks["trigger 1"].state == "pass" and checks["trigger 1"].text.endswith("2026-12-01: due today")
    assert (checks["trigger 2"].state, checks["trigger 2"].text) == (
        "pass", "health_drop below 50: score fell from 55 to 42, below 50")
    assert checks["trigger 3"].state == "fail" and checks["trigger 3"].text.endswith("used it before: yes")
    assert (checks["audience.segments"].state, checks["audience.when"].state) == ("fail", "error")
    assert (checks["entry key"].state, checks["entry key"].text) == (
        "fail", "entry.key account.renewal_date: it is 2027-03-01; a run for it was already started")
    assert checks["cooldown"].state == "fail" and checks["cooldown"].seen == {
        "cooldown_until": "2026-12-21T10:00:00+00:00"}
    assert checks["trigger 1"].seen["milestone_day"] == "2026-12-01"
    assert json.dumps([c.seen for c in checks.values()])
