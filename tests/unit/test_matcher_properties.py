"""Properties of the trigger matcher, over generated histories, scans and signals.

- a stream of health updates fires ``below: N`` exactly at the crossings;
- with a window longer than the whole stream, ``by: N`` fires exactly where the score first falls N
  below the running highest score;
- however the days are split into scans, each milestone day fires exactly once in total;
- a stream of feature uses starts exactly one run per distinct first use;
- for any signal and facts, ``decide`` and ``explain`` never raise, answer the same twice, and
  give JSON.
"""

from __future__ import annotations

import itertools
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.triggers.explain import explain
from engine.triggers.matcher import decide
from engine.triggers.signals import EventSignal, Facts, ManualStart, Scan, Signal, Tick

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
START = datetime(2026, 1, 5, 9, tzinfo=UTC)


def compiled(triggers: str, extra: str = "") -> Playbook:
    lines = "".join(f"  - {t}\n" for t in triggers.strip().splitlines())
    result = check_text(f"playbook: p\ntitle: P\ntriggers:\n{lines}{extra}steps:\n  - id: t\n    task: {{title: T}}\n")
    assert result.playbook is not None, [p.message for p in result.problems]
    return result.playbook


def account(**changes: Any) -> dict[str, Any]:
    return {"id": "acme", "name": "Acme", "segment": "smb", "lifecycle_stage": "adopt", "owner": None, "arr": 100.0,
            "renewal_date": "2027-03-01", "contract_start": None, "renewal_status": "open",
            "health": {"score": 70, "band": "green", "previous_score": None}, "usage": {}, "fields": {}, **changes}


def update(score: int, at: datetime) -> EventSignal:
    return EventSignal(id=f"h-{at.isoformat()}", type="health.updated", account_id="acme", occurred_at=at,
                       data={"score": score})


scores = st.lists(st.integers(min_value=0, max_value=100), min_size=2, max_size=30)


@SETTINGS
@given(scores, st.integers(min_value=0, max_value=100))
def test_below_fires_exactly_at_the_crossings(series: list[int], n: int) -> None:
    pb = compiled(f"health_drop: {{below: {n}}}")
    fired = [i for i in range(1, len(series))
             if decide(pb, update(series[i], START + timedelta(days=i)),
                       Facts(account=account(), now=START + timedelta(days=i), previous_score=series[i - 1]))]
    assert fired == [i for i in range(1, len(series)) if series[i - 1] >= n > series[i]]


@SETTINGS
@given(scores, st.integers(min_value=1, max_value=60))
def test_by_within_a_long_window_fires_where_the_fall_from_the_running_peak_reaches_n(series: list[int],
                                                                                      n: int) -> None:
    pb = compiled(f"health_drop: {{by: {n}, within: 400d}}")
    fired = []
    for i in range(1, len(series)):
        at = START + timedelta(hours=i)
        past = tuple((START + timedelta(hours=j), float(series[j])) for j in range(i))
        if decide(pb, update(series[i], at), Facts(account=account(), now=at, previous_score=series[i - 1],
                                                   health_history=past)):
            fired.append(i)
    expected = [i for i in range(1, len(series))
                if max(series[:i]) - series[i] >= n and max(series[:i]) - series[i - 1] < n]
    assert fired == expected


calendars = st.builds(
    Calendar,
    workdays=st.frozensets(st.integers(min_value=0, max_value=6), min_size=1),
    holidays=st.frozensets(st.dates(min_value=date(2026, 1, 1), max_value=date(2027, 12, 31)), max_size=20),
)


@SETTINGS
@given(st.integers(min_value=0, max_value=120), st.booleans(), st.booleans(),
       st.integers(min_value=-200, max_value=200), st.integers(min_value=1, max_value=150),
       st.lists(st.integers(min_value=1, max_value=149), max_size=10), calendars)
@example(90, True, False, -100, 30, [5, 10, 11], Calendar())  # fires on day 10 of 30: never vacuous
@example(10, True, True, -30, 30, [14], Calendar(holidays=frozenset({date(2026, 8, 24)})))
def test_any_split_of_the_days_into_scans_fires_each_milestone_once(
        n: int, before: bool, business: bool, offset: int, span: int, cuts: list[int], cal: Calendar) -> None:
    which = "days_before" if before else "days_after"
    pb = compiled(f"contract_milestone: {{field: renewal_date, {which}: {n}, business_days: {str(business).lower()}}}")
    renewal = date(2026, 9, 1)
    first = renewal + timedelta(days=offset)  # the first scan covers (first, first + cut]
    bounds = sorted({0, span, *(c for c in cuts if c < span)})
    decisions = []
    for lo, hi in itertools.pairwise(bounds):
        scan = Scan(account_id="acme", since=first + timedelta(days=lo), today=first + timedelta(days=hi))
        now = datetime.combine(scan.today, datetime.min.time(), UTC)
        d = decide(pb, scan, Facts(account=account(renewal_date=renewal.isoformat()), now=now, calendar=cal))
        if d is not None:
            decisions.append(d)
    whole = decide(pb, Scan(account_id="acme", since=first, today=first + timedelta(days=span)),
                   Facts(account=account(renewal_date=renewal), now=START, calendar=cal))
    assert len(decisions) == (1 if whole is not None else 0)
    if whole is not None:
        due = date.fromisoformat(whole.seen["milestone_day"])
        assert first < due <= first + timedelta(days=span)
        assert decisions[0].occurrence == whole.occurrence == "2026-09-01"
        if not business:
            assert (due - renewal).days == (-n if before else n)


@SETTINGS
@given(st.lists(st.sampled_from(["reports", "alerts", "export", "sso"]), max_size=20))
def test_each_feature_starts_one_run_on_its_first_use(uses: list[str]) -> None:
    pb = compiled('new_usage: {feature: "*"}')
    seen: set[str] = set()
    starts = []
    for i, feature in enumerate(uses):
        signal = EventSignal(id=str(i), type="usage.feature_used", account_id="acme", occurred_at=START,
                             data={"feature": feature})
        d = decide(pb, signal, Facts(account=account(), now=START, first_feature_use=feature not in seen))
        seen.add(feature)
        if d is not None and d.outcome == "start":
            starts.append(d.occurrence)
    assert starts == list(dict.fromkeys(uses))


PLAYBOOKS = [
    compiled("health_drop: {below: 50}\nhealth_drop: {by: 10, within: 3 business days}\n"
             "health_drop: {to_band: yellow}"),
    compiled("contract_milestone: {field: renewal_date, days_before: 30}\n"
             "contract_milestone: {field: fields.go_live, days_after: 5, business_days: true}",
             "entry: {cooldown: 2 business days}\n"),
    compiled("new_usage: {product: '*'}\nlifecycle_change: {to: adopt, from: onboard}\n"
             "event: {type: nps.submitted, where: event.data.score <= 6}",
             "audience: {when: account.arr > 50 and account.fields.tier == 'gold'}\n"),
    compiled('schedule: {cron: "@daily"}\nmanual: {}', "entry: {key: account.renewal_date}\nenabled: false\n"),
]
anything = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True)
                        | st.text(max_size=12) | st.sampled_from(["2026-11-23", "red", "yellow", "adopt", "onboard"]),
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner,
                                                                                    max_size=3), max_leaves=6)
moments = st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC))
days = st.dates(min_value=date(2025, 1, 1), max_value=date(2028, 1, 1))
events = st.builds(
    EventSignal, id=st.text(max_size=5), account_id=st.just("acme"), occurred_at=moments,
    type=st.sampled_from(["health.updated", "usage.feature_used", "account.updated", "nps.submitted", "x.y"]),
    data=st.dictionaries(st.sampled_from(["score", "band", "feature", "product", "fields"]), anything, max_size=4),
    previous=st.dictionaries(st.sampled_from(["lifecycle_stage", "renewal_date", "fields.go_live"]), anything))
signals: st.SearchStrategy[Signal] = st.one_of(
    events,
    st.builds(Scan, account_id=st.just("acme"), since=days, today=days),
    st.builds(Tick, account_id=st.just("acme"), cron=st.sampled_from(["@daily", "0 9 * * MON"]), at=moments),
    st.builds(ManualStart, account_id=st.just("acme"), occurrence=st.sampled_from(["", "q4"])),
)
facts = st.builds(
    Facts, now=moments, calendar=calendars,
    account=st.fixed_dictionaries({"segment": anything, "renewal_date": anything, "arr": anything,
                                   "fields": anything, "health": anything, "usage": anything}),
    previous_score=st.none() | st.integers() | st.floats(allow_nan=False),
    previous_band=st.none() | st.sampled_from(["green", "red", "x"]),
    health_history=st.lists(st.tuples(moments, st.integers(0, 100)), max_size=5).map(tuple),
    first_feature_use=st.booleans(), first_product_use=st.booleans(),
    active_run=st.none() | st.just("pb:p:acme:once"), last_run_ended_at=st.none() | moments,
    started_keys=st.frozensets(st.sampled_from(["", "q4", "2026-11-23", "adopt"])),
)


@settings(max_examples=1500, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.sampled_from(PLAYBOOKS), signals, facts)
def test_decide_and_explain_never_raise_and_are_deterministic(pb: Playbook, signal: Signal, f: Facts) -> None:
    first, second = decide(pb, signal, f), decide(pb, signal, f)
    assert first == second
    if first is not None:
        json.dumps([first.seen, first.trigger_data])
        assert first.outcome == ("start" if first.reason == "started" else "suppressed")
        assert first.run_id == f"pb:p:acme:{first.occurrence or 'once'}"
        if not pb.enabled:
            assert first.reason in ("disabled", "expression_error")
    checks = explain(pb, f, f.now.date())
    assert checks == explain(pb, f, f.now.date())
    json.dumps([c.seen for c in checks])
