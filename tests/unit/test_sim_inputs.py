"""Hostile input to ``csops simulate``/``csops test``: calendar files and triggering events.

Each bad calendar is reported at its line and column with a rule and a hint; each bad triggering
event is refused in one line that says what to write instead.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.sim.simcalendar import CalendarError, layered, load_calendar_file
from engine.sim.simtrigger import TriggerEventError, parse_trigger_event, read_trigger_event

BAD_CALENDARS = [
    ("timezone: Mars/Base\n", [(1, 11, "calendar-value", "timezone: 'Mars/Base' is not a time zone")]),
    ("timezone: 3\n", [(1, 11, "calendar-value", "timezone: 3 is not a time zone")]),
    ("workdays: mon-fri\n", [(1, 11, "calendar-type", "workdays: must be a list")]),
    ("workdays: []\n", [(1, 11, "calendar-value", "workdays: is empty")]),
    ("workdays: [mon, Tue]\n", [(1, 17, "calendar-value", "workdays: 'Tue' is not a day")]),
    ("holidays: 2027-12-24\n", [(1, 11, "calendar-type", "holidays: must be a list")]),
    ("holidays:\n  - 2027-12-24\n  - 24.12.2027\n  - 2027-02-30\n",
     [(3, 5, "calendar-value", "holidays: '24.12.2027' is not a date"),
      (4, 5, "calendar-value", "holidays: '2027-02-30' is not a date")]),
    ("holydays: [2027-12-24]\n", [(1, 1, "calendar-unknown-key", "unknown key holydays in the calendar")]),
    ("- 2027-12-24\n", [(1, 1, "calendar-type", "a calendar is a mapping of timezone, workdays and holidays")]),
    ("timezone: [UTC\n", [(1, 11, "yaml-syntax", None)]),
    ('{"timezone": "UTC", "workdays": ["mon", "sun", 7]}',
     [(1, 48, "calendar-value", "workdays: 7 is not a day")]),
]


@pytest.mark.parametrize(("text", "expected"), BAD_CALENDARS)
def test_a_bad_calendar_file_is_reported_where_it_is_wrong(tmp_path: Path, text: str,
                                                           expected: list[tuple[int, int, str, str | None]]) -> None:
    path = tmp_path / "cal.yaml"
    path.write_text(text)
    with pytest.raises(CalendarError) as caught:
        load_calendar_file(str(path))
    got = [(p.line, p.col, p.rule, p.message if want is not None else None)
           for p, (*_, want) in zip(caught.value.problems, expected, strict=False)]
    assert got == expected
    assert all(p.hint for p in caught.value.problems if p.rule != "yaml-syntax")


def test_a_good_calendar_file_gives_only_the_keys_it_names(tmp_path: Path) -> None:
    path = tmp_path / "cal.json"
    path.write_text('{"holidays": ["2027-12-31", "2027-12-24", "2027-12-24"], "workdays": ["sun", "mon"]}')
    assert load_calendar_file(str(path)) == {"holidays": ["2027-12-24", "2027-12-31"], "workdays": [0, 6]}
    (tmp_path / "empty.yaml").write_text("# nothing: the configured calendar as it is\n")
    assert load_calendar_file(str(tmp_path / "empty.yaml")) == {}
    cal = layered({"timezone": "Europe/Berlin", "holidays": ["2027-01-01"]}, {"holidays": ["2027-12-24"]})
    assert (cal.timezone, sorted(d.isoformat() for d in cal.holidays)) == ("Europe/Berlin", ["2027-12-24"])


BAD_EVENTS = [
    ('{"type": "health.updated", "data": {"score": 42}', "--trigger-event: not valid JSON at line 1 column 49"),
    ("health.updated", "--trigger-event 'health.updated': neither a file nor a JSON object"),
    ("[1, 2]", "--trigger-event '[1, 2]': neither a file nor a JSON object"),
    ('{"data": {"score": 42}}', "the trigger event: type: is required"),
    ('{"type": "Health Updated"}', "the trigger event: type: must be a dotted lower-case name"),
    ('{"type": "health.updated"}', "the trigger event: data.score: is required for health.updated"),
    ('{"type": "health.updated", "data": {"score": 420}}', "the trigger event: data.score: must be a number 0-100"),
    ('{"type": "account.updated", "data": {"fields": {"helth_score": 3}}}',
     "the trigger event: data.fields.helth_score: is not an account field"),
    ('{"type": "x.y", "account_id": "globex"}', "the trigger event is for account 'globex', the simulation for 'acme'"),
    ('{"type": "x.y", "occurred_at": "yesterday"}', "the trigger event: occurred_at: must be an RFC 3339 date-time"),
    ('{"type": "x.y", "dat": {}}', "the trigger event: dat: is not a field of an event"),
]


@pytest.mark.parametrize(("text", "message"), BAD_EVENTS)
def test_a_bad_trigger_event_is_refused_in_one_line(text: str, message: str) -> None:
    with pytest.raises(TriggerEventError) as caught:
        parse_trigger_event(read_trigger_event(text), "acme", datetime(2030, 1, 7, 9, tzinfo=UTC))
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_trigger_event_file_is_read_with_its_position_on_errors(tmp_path: Path) -> None:
    good = tmp_path / "ev.yaml"
    good.write_text("type: billing.invoice_overdue\ndata: {invoice: INV-7, amount: 5000}\n")
    event = parse_trigger_event(read_trigger_event(str(good)), "acme", datetime(2030, 1, 7, 9, tzinfo=UTC))
    assert event.as_dict() == {"id": "sim-trigger", "type": "billing.invoice_overdue", "account_id": "acme",
                               "occurred_at": "2030-01-07T09:00:00+00:00",
                               "data": {"invoice": "INV-7", "amount": 5000}}
    bad = tmp_path / "bad.yaml"
    bad.write_text("type: x.y\ndata: {a: [1}\n")
    with pytest.raises(TriggerEventError, match=r"^.*bad.yaml:2:13: not valid YAML or JSON"):
        read_trigger_event(str(bad))
