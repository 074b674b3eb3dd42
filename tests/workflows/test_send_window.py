"""Send windows on the real workflow (time-skipping server, recording connectors): an email outside its
window waits for the next opening in the contact's own zone, and a DST change moves the opening with
the wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from connectors.base import Account, Contact, User
from connectors.mailpolicy import SUPPRESSED, PolicyMailer
from connectors.outbox import EmailOutbox
from connectors.suppression import SuppressionList
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.language.workcalendar import Calendar
from engine.payloads.runtypes import Event
from engine.runtime.workflow import PlaybookRun
from engine.sim.simulate import format_timeline, simulate
from tests.workflows.harness import record_history, stack

PLAYBOOK = """\
playbook: windowed
title: Windowed
triggers:
  - manual: {}
steps:
  - id: hello
    email:
      to: primary_contact
      subject: "Hello {{ contact.first_name }}"
      body: "Hi"
      send_window: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}
"""


def people(zone: str) -> tuple[Account, list[Contact], list[User]]:
    account = Account(id="acme", name="Acme", owner_id="u1")
    contact = Contact(id="c1", account_id="acme", email="ann@acme.test", first_name="Ann", primary=True,
                      timezone=zone)
    return account, [contact], [User(id="u1", email="cara@example.com", name="Cara")]


def compiled(text: str = PLAYBOOK) -> Playbook:
    result = check_text(text)
    assert result.playbook is not None, [p.message for p in result.problems]
    return result.playbook


def future_friday(hour_utc: int) -> datetime:
    """A Friday in the future at hour_utc, far from any DST change."""
    now = datetime.now(UTC)
    day = (now + timedelta(days=14)).replace(hour=hour_utc, minute=0, second=0, microsecond=0)
    return day + timedelta(days=(4 - day.weekday()) % 7)


async def test_an_email_on_friday_evening_is_held_until_monday_nine_in_the_contacts_zone() -> None:
    account, contacts, users = people("Asia/Tokyo")  # UTC+9 all year
    start = future_friday(10)  # Friday 19:00 in Tokyo: after closing
    timeline = await simulate(compiled(), account, contacts=contacts, users=users, start=start, days=5)
    rows = [(e.action, e.at.replace(microsecond=0)) for e in timeline if e.action in ("held", "email")]
    monday_nine_tokyo = (start + timedelta(days=3)).replace(hour=0)  # Monday 09:00 JST = 00:00 UTC
    assert [a for a, _ in rows] == ["held", "email"]
    assert abs(rows[0][1] - start) < timedelta(minutes=1)  # held at once (activity scheduling takes a moment)
    assert rows[1][1] == monday_nine_tokyo  # and sent at the opening, to the second
    text = format_timeline(timeline)
    assert "until " + monday_nine_tokyo.strftime("%Y-%m-%d") + " 09:00 JST (Asia/Tokyo)" in text


async def test_inside_the_window_it_goes_at_once_and_nothing_is_held() -> None:
    account, contacts, users = people("Asia/Tokyo")
    start = future_friday(1)  # Friday 10:00 in Tokyo
    timeline = await simulate(compiled(), account, contacts=contacts, users=users, start=start, days=1)
    [(action, at)] = [(e.action, e.at) for e in timeline if e.action in ("held", "email")]
    assert action == "email" and abs(at - start) < timedelta(minutes=1)


async def test_a_window_across_a_dst_change_opens_at_nine_local_time() -> None:
    # US clocks go forward on Sunday 2027-03-14; Friday 2027-03-12 18:00 EST (23:00 UTC) is after closing:
    # the next opening is Monday 2027-03-15 09:00 EDT = 13:00 UTC (it would be 14:00 UTC on the old offset).
    account, contacts, users = people("America/New_York")
    start = datetime(2027, 3, 12, 23, 0, tzinfo=UTC)
    timeline = await simulate(compiled(), account, contacts=contacts, users=users, start=start, days=4)
    assert [e.at.replace(microsecond=0) for e in timeline if e.action == "email"] == [
        datetime(2027, 3, 15, 13, 0, tzinfo=UTC)]


async def test_the_calendars_default_window_and_its_zone_when_the_contact_has_none() -> None:
    text = PLAYBOOK.replace('      send_window: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}\n', "")
    account, contacts, users = people("")
    cal = Calendar.from_dict({"timezone": "Europe/Berlin", "send_window": {"days": ["mon"], "hours": "08:00-09:00"}})
    start = future_friday(12)
    timeline = await simulate(compiled(text), account, contacts=contacts, users=users, start=start, days=4,
                              calendar=cal)
    [sent] = [e.at for e in timeline if e.action == "email"]
    local = sent.astimezone(cal.zone)
    assert (local.weekday(), local.hour, local.minute) == (0, 8, 0)


# --- on the worker's stack (SQL CRM, outbox, ledger): status, suppression first, a stop while held ----

WINDOWED_RUN = """\
playbook: windowed-run
title: Windowed run
triggers: [{manual: {}}]
exit:
  on_events: [account.churned]
steps:
  - id: hello
    email:
      to: primary_contact
      subject: "Hello {{ contact.first_name }}"
      body: "Hi"
      send_window: {days: [mon, tue, wed, thu, fri], hours: "09:00-17:00"}
  - id: after
    note: {text: "sent"}
"""


async def _saturday(s: Any) -> datetime:
    """Skip the server's clock to the next Saturday 12:00 UTC and return it."""
    now: datetime = await s.env.get_current_time()
    target = (now + timedelta(days=(5 - now.weekday()) % 7 or 7)).replace(hour=12, minute=0, second=0, microsecond=0)
    await s.env.sleep(target - now)
    return target


async def test_a_held_email_shows_in_the_status_and_goes_at_monday_nine_in_the_contacts_zone(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        s.crm.add_contact(Contact(id="c-1", account_id="acme", email="pat@acme.example", first_name="Pat",
                                  last_name="Lee", role="champion", primary=True, timezone="America/Los_Angeles"))
        saturday = await _saturday(s)
        handle = await s.start(WINDOWED_RUN)
        await s.env.sleep(timedelta(hours=1))
        status = await handle.query(PlaybookRun.status)
        assert status.current_step == "hello"
        assert status.held.startswith("hello: held for its send window (mon-fri 09:00-17:00 America/Los_Angeles) "
                                      "until ")
        assert s.mail.messages() == []
        out = await handle.result()
        await record_history(handle, "send-window-held")
    sent = datetime.fromisoformat(out.steps["hello"].at).astimezone(ZoneInfo("America/Los_Angeles"))
    assert (sent.weekday(), sent.hour, sent.minute) == (0, 9, 0)
    assert sent.date() == saturday.date() + timedelta(days=2)  # the Monday after that Saturday
    assert [m["Subject"] for m in s.mail.messages()] == ["Hello Pat"]


async def test_a_suppressed_recipient_is_not_held_the_step_records_suppressed_at_once(tmp_path: Path) -> None:
    suppressions = SuppressionList(f"sqlite:///{tmp_path}/supp.db")
    await suppressions.add("pat@acme.example", "bounced")
    mailer = PolicyMailer(EmailOutbox(tmp_path / "policy-mail"), suppressions=suppressions)
    async with stack(tmp_path, mailer=mailer) as s:
        saturday = await _saturday(s)
        out = await (await s.start(WINDOWED_RUN)).result()
    assert out.steps["hello"].result == [SUPPRESSED]
    assert datetime.fromisoformat(out.steps["hello"].at) - saturday < timedelta(minutes=1)
    suppressions.close()


async def test_an_exit_event_while_held_ends_the_run_and_nothing_is_sent(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        await _saturday(s)
        handle = await s.start(WINDOWED_RUN)
        await s.env.sleep(timedelta(hours=2))
        await handle.signal("deliver_event", Event(id="e-x", type="account.churned", account_id="acme"))
        out = await handle.result()
    assert out.outcome == "exited" and "hello" not in out.steps
    assert s.mail.messages() == []


async def test_a_step_whose_when_is_false_is_not_held(tmp_path: Path) -> None:
    text = WINDOWED_RUN.replace("  - id: hello\n", "  - id: hello\n    when: account.arr > 10000000\n")
    async with stack(tmp_path) as s:
        saturday = await _saturday(s)
        out = await (await s.start(text)).result()
    assert out.steps["hello"].status == "skipped"
    assert datetime.fromisoformat(out.steps["after"].at) - saturday < timedelta(minutes=1)
