"""The one business-day arithmetic (engine/language/workcalendar.py) and everything that counts with it.

Durations, ``business_days(n)`` in expressions, milestone days, health windows and the run
context must agree under any workdays, holidays and time zone; ``business_days(n)`` is bounded.
Reference answers are worked out by hand (the comments say how) or by counting day by day.
"""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.language.context import Calendar, evaluate
from engine.language.durations import parse_duration
from engine.language.sizes import MAX_BUSINESS_DAYS
from engine.language.validate import check_text
from engine.language.workcalendar import CalendarError
from engine.payloads.runcontext import full_context
from engine.triggers.enrol import health_window
from engine.triggers.healthdrop import back
from engine.triggers.matcher import shift

SUN_THU = frozenset({6, 0, 1, 2, 3})
BERLIN = Calendar(timezone="Europe/Berlin")
ACCOUNT = {"account": {"id": "acme", "renewal_date": "2027-03-01"}, "contacts": []}


def ctx(now: datetime, cal: Calendar) -> dict[str, Any]:
    """The context a run's expressions see (the workflow and the effect activities both build it so)."""
    return full_context(ACCOUNT, now=now, calendar=cal, trigger={}, steps={}, run={})


def counted(cal: Calendar, day: date, n: int) -> date:
    """The reference: step one day at a time, counting workdays."""
    step = timedelta(days=1 if n > 0 else -1)
    for _ in range(abs(n)):
        day += step
        while not cal.is_workday(day):
            day += step
    return day


# --- the arithmetic ------------------------------------------------------------------------------

def test_sunday_to_thursday_workdays_skip_friday_and_saturday() -> None:
    cal = Calendar(workdays=SUN_THU)
    thursday = date(2027, 1, 7)
    assert cal.shift(thursday, 1) == date(2027, 1, 10)  # Sunday
    assert cal.shift(date(2027, 1, 10), -1) == thursday
    assert cal.shift(thursday, 5) == date(2027, 1, 14)  # Sun, Mon, Tue, Wed, Thu
    assert cal.shift(date(2027, 1, 8), 1) == date(2027, 1, 10)  # from a Friday (not a workday) too
    assert cal.shift(thursday, 0) == thursday


def test_holidays_are_skipped_both_ways() -> None:
    cal = Calendar(holidays=frozenset({date(2026, 12, 24), date(2026, 12, 25), date(2026, 12, 31)}))
    # Wed 23 + 3: Thu 24 and Fri 25 are off, Sat/Sun too: Mon 28, Tue 29, Wed 30.
    assert cal.shift(date(2026, 12, 23), 3) == date(2026, 12, 30)
    # Fri 1 Jan - 2: Thu 31 is off: Wed 30, Tue 29.
    assert cal.shift(date(2027, 1, 1), -2) == date(2026, 12, 29)


def test_a_week_jump_lands_on_a_workday_after_a_weekend_start() -> None:
    # Saturday + 5 business days (Mon-Fri) is the Friday after, not the Saturday a week on.
    assert Calendar().shift(date(2027, 1, 9), 5) == date(2027, 1, 15)
    assert Calendar().shift(date(2027, 1, 9), -5) == date(2027, 1, 4)


def test_the_local_date_counts_not_the_utc_date() -> None:
    # 23:30 UTC on Thursday 7 January is 00:30 on Friday 8 January in Berlin.
    now = datetime(2027, 1, 7, 23, 30, tzinfo=UTC)
    assert BERLIN.today(now) == date(2027, 1, 8)
    # One business day from local Friday is Monday 00:30 Berlin (Sunday 23:30 UTC), not Friday.
    assert BERLIN.add(now, parse_duration("1 business day")) == datetime(2027, 1, 10, 23, 30, tzinfo=UTC)
    assert evaluate("today + business_days(1)", ctx(now, BERLIN)) == date(2027, 1, 11)
    # Tokyo is ahead: 22:00 UTC on Wednesday 6 January is Thursday 7 January there.
    assert Calendar(timezone="Asia/Tokyo").today(datetime(2027, 1, 6, 22, tzinfo=UTC)) == date(2027, 1, 7)


def test_across_a_daylight_saving_change_the_local_time_of_day_is_kept() -> None:
    # Friday 26 March 2027 09:00 CET (08:00 UTC); clocks go forward on Sunday 28 March.
    start = datetime(2027, 3, 26, 8, tzinfo=UTC)
    due = BERLIN.add(start, parse_duration("1 business day"))
    assert due == datetime(2027, 3, 29, 7, tzinfo=UTC)  # Monday 09:00 CEST: 71 hours later, not 72
    assert due.astimezone(BERLIN.zone).hour == 9
    assert BERLIN.sub(due, parse_duration("1 business day")) == start
    assert evaluate("now + business_days(1)", ctx(start, BERLIN)) == due
    # Calendar durations stay exact lengths of time across the change.
    assert BERLIN.add(start, parse_duration("3d")) == start + timedelta(hours=72)


def test_a_local_time_that_the_change_skips_or_repeats_stays_on_its_local_date() -> None:
    cal = Calendar(workdays=SUN_THU, timezone="Europe/Berlin")
    # Thursday 25 March 02:30 CET + 1 business day is Sunday 28 March, where 02:30 does not exist:
    # it is read with the offset before the change (+01:00), 03:30 CEST, still on Sunday.
    spring = cal.add_business_days(datetime(2027, 3, 25, 1, 30, tzinfo=UTC), 1)
    assert spring == datetime(2027, 3, 28, 1, 30, tzinfo=UTC) and cal.today(spring) == date(2027, 3, 28)
    # Thursday 28 October 02:30 CEST + 1 business day is Sunday 31 October, where 02:30 happens twice:
    # the first one (CEST, 00:30 UTC).
    autumn = cal.add_business_days(datetime(2027, 10, 28, 0, 30, tzinfo=UTC), 1)
    assert autumn == datetime(2027, 10, 31, 0, 30, tzinfo=UTC) and cal.today(autumn) == date(2027, 10, 31)


def test_milestones_durations_and_windows_share_the_arithmetic() -> None:
    cal = Calendar(workdays=SUN_THU, holidays=frozenset({date(2027, 1, 12)}), timezone="Asia/Jerusalem")
    day = date(2027, 1, 7)
    assert shift(day, 3, True, cal) == cal.shift(day, 3) == date(2027, 1, 13)  # Sun 10, Mon 11, (Tue 12 off), Wed 13
    assert shift(day, -3, True, cal) == cal.shift(day, -3) == date(2027, 1, 4)
    assert shift(day, 3, False, cal) == date(2027, 1, 10)
    at = datetime(2027, 1, 13, 7, tzinfo=UTC)
    assert back(at, parse_duration("3 business days"), cal) == cal.sub(at, parse_duration("3 business days"))


def test_a_health_window_in_business_days_reaches_back_as_far_as_the_calendar_says() -> None:
    pb = check_text("playbook: p\ntitle: T\ntriggers:\n  - health_drop: {by: 10, within: 10 business days}\n"
                    "steps:\n  - id: t\n    task: {title: T}\n").playbook
    assert pb is not None
    mondays = Calendar(workdays=frozenset({0}))
    now = datetime(2027, 3, 1, 9, tzinfo=UTC)  # a Monday: ten Mondays back is 70 days
    assert health_window(pb, mondays, now) == timedelta(days=70)
    assert health_window(pb, Calendar(), now) == timedelta(days=14)


# --- business_days(n) in expressions --------------------------------------------------------------

def test_business_days_follows_the_runs_workdays_and_holidays() -> None:
    cal = Calendar(workdays=SUN_THU, holidays=frozenset({date(2027, 1, 11)}), timezone="Europe/Berlin")
    now = datetime(2027, 1, 7, 9, tzinfo=UTC)  # Thursday
    # Sun 10, (Mon 11 off), Tue 12, Wed 13, Thu 14, Sun 17.
    assert evaluate("today + business_days(5)", ctx(now, cal)) == date(2027, 1, 17)
    assert evaluate("today - business_days(2)", ctx(now, cal)) == date(2027, 1, 5)
    assert evaluate("today + business_days(-2)", ctx(now, cal)) == date(2027, 1, 5)
    assert evaluate("today + business_days(0)", ctx(now, cal)) == date(2027, 1, 7)


def test_business_days_outside_a_run_uses_the_default_calendar() -> None:
    # No calendar bound (a bare expression): Monday to Friday, no holidays.
    assert evaluate("date('2027-01-08') + business_days(1)", {}) == date(2027, 1, 11)


@pytest.mark.parametrize(("n", "message"), [
    (MAX_BUSINESS_DAYS + 1,
     "expression limit exceeded: business_days(3,661) is too far: at most 3,660 business days (about 14 years)"),
    (-10**9, "business_days(-1,000,000,000) is too far: at most 3,660 business days"),
    (10**18, "business_days(1,000,000,000,000,000,000) is too far"),
    (2.5, "business_days(n) needs a whole number of days; got 2.5"),
    ("'soon'", "business_days(n) needs a whole number of days; got 'soon'"),
    ("true", "business_days(n) needs a whole number of days; got True"),
    ("none", "business_days(n) needs a whole number of days; got None"),
])
def test_business_days_refuses_a_count_it_cannot_use_at_once(n: Any, message: str) -> None:
    began = clock.monotonic()
    with pytest.raises(CalendarError) as raised:
        evaluate(f"today + business_days({n})", ctx(datetime(2027, 1, 7, tzinfo=UTC), Calendar()))
    assert message in str(raised.value)
    assert clock.monotonic() - began < 0.5


def test_the_largest_count_is_answered_quickly() -> None:
    began = clock.monotonic()
    off = frozenset(date(2030, 1, 1) + timedelta(days=i) for i in range(400))
    cal = Calendar(workdays=frozenset({2}), holidays=off)
    got = evaluate(f"today + business_days({MAX_BUSINESS_DAYS})", ctx(datetime(2027, 1, 7, tzinfo=UTC), cal))
    assert got == counted(cal, date(2027, 1, 7), MAX_BUSINESS_DAYS)
    assert clock.monotonic() - began < 0.5


# --- the calendar itself ---------------------------------------------------------------------------

def test_from_dict_reads_the_config_form_and_round_trips() -> None:
    cal = Calendar.from_dict({"timezone": "Europe/Berlin", "workdays": ["sun", "mon", "tue", "wed", "thu"],
                              "holidays": ["2027-01-11"], "ops_channel": "#ops"})
    assert cal == Calendar(workdays=SUN_THU, holidays=frozenset({date(2027, 1, 11)}), timezone="Europe/Berlin")
    assert Calendar.from_dict(cal.as_dict()) == cal
    assert cal.as_dict() == {"workdays": [0, 1, 2, 3, 6], "holidays": ["2027-01-11"], "timezone": "Europe/Berlin"}
    assert Calendar.from_dict({}) == Calendar.from_dict(None) == Calendar()


@pytest.mark.parametrize(("data", "message"), [
    ({"workdays": []}, "calendar.workdays must name at least one day of mon..sun; got []"),
    ({"workdays": ["mon", "frei"]},
     "calendar.workdays: 'frei' is not a day; write mon, tue, wed, thu, fri, sat or sun"),
    ({"workdays": [7]}, "calendar.workdays: 7 is not a day"),
    ({"holidays": ["24.12.2026"]}, 'calendar.holidays: \'24.12.2026\' is not a date; write "YYYY-MM-DD"'),
    ({"timezone": "CEST"}, "calendar.timezone 'CEST' is not an IANA time zone (e.g. Europe/Berlin"),
    ({"timezone": "../etc/passwd"}, "calendar.timezone '../etc/passwd' is not an IANA time zone"),
])
def test_a_calendar_that_cannot_count_is_refused_with_what_to_write(data: dict[str, Any], message: str) -> None:
    with pytest.raises(CalendarError) as raised:
        Calendar.from_dict(data)
    assert message in str(raised.value)


# --- business_days(n) is "N business days", for any calendar ---------------------------------------

ZONES = ("UTC", "Europe/Berlin", "America/Los_Angeles", "Asia/Tokyo", "Pacific/Kiritimati", "Pacific/Pago_Pago")
calendars = st.builds(
    Calendar,
    workdays=st.frozensets(st.integers(min_value=0, max_value=6), min_size=1),
    holidays=st.frozensets(st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 12, 31)), max_size=40),
    timezone=st.sampled_from(ZONES),
)
moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31),
                       timezones=st.just(UTC))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars, moments, st.integers(min_value=1, max_value=400))
@example(Calendar(workdays=SUN_THU), datetime(2027, 1, 7, 9, tzinfo=UTC), 5)  # Mon-Fri counting differs here
@example(Calendar(timezone="Asia/Tokyo"), datetime(2027, 1, 8, 20, tzinfo=UTC), 1)  # Saturday in Tokyo
def test_today_plus_business_days_is_the_due_date_of_n_business_days(cal: Calendar, now: datetime, n: int) -> None:
    # The workflow's `due: N business days` (engine/runtime/workflow.py): the local date of now + N business days.
    due = cal.add(now, parse_duration(f"{n} business days")).astimezone(cal.zone).date()
    local_today = now.astimezone(cal.zone).date()
    assert due == counted(cal, local_today, n)
    assert evaluate(f"today + business_days({n})", ctx(now, cal)) == due
    assert evaluate(f"(now + business_days({n})).date()", {**ctx(now, cal), "now": now.astimezone(cal.zone)}) == due
    assert evaluate(f"today + business_days({n}) - business_days({n})", ctx(now, cal)) == (
        local_today if cal.is_workday(local_today) else counted(cal, counted(cal, local_today, 1), -1))
