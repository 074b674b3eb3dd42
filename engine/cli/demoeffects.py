"""What csops demo sends and looks for: the sample events, the effects they should have (tasks,
Slack alerts, emails, decisions), and the renewal simulation it shows at the end.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

Say = Callable[[str], None]


WANTED = {
    "risk-task": "health-drop-risk: save-plan task for Acme Corp's CSM",
    "risk-alert": "health-drop-risk: Slack alert in #cs-risk",
    "expansion-task": "new-usage-expansion: task for Globex's account executive",
    "renewal-email": "renewal-reminders: 90-day renewal email to Initech's main contact",
}
"""The effects the three events must cause, by key."""


@dataclass
class Expected:
    """The three events the demo sends, the effects they must cause, and what has arrived."""

    today: date
    renewal_date: date
    arrived: set[str] = field(default_factory=set)
    counts: dict[str, int] = field(default_factory=lambda: {"decisions": 0, "tasks": 0, "alerts": 0, "emails": 0})
    runs: int = 0

    @classmethod
    def for_today(cls) -> Expected:
        today = datetime.now(UTC).date()
        return cls(today=today, renewal_date=today + timedelta(days=90))

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        """(what it is, the event) for each event the demo sends; unique ids, so a rerun is not a duplicate."""
        now, tag = datetime.now(UTC).isoformat(), secrets.token_hex(4)
        return [
            ("Globex uses Advanced Analytics for the first time",
             {"id": f"demo-usage-{tag}", "type": "usage.feature_used", "account_id": "globex", "occurred_at": now,
              "data": {"feature": "advanced_analytics"}}),
            (f"Initech's renewal date is set to {self.renewal_date} (90 days out)",
             {"id": f"demo-renewal-{tag}", "type": "account.updated", "account_id": "initech", "occurred_at": now,
              "data": {"fields": {"renewal_date": self.renewal_date.isoformat()}}}),
        ]

    @property
    def complete(self) -> bool:
        return set(WANTED) <= self.arrived

    def missing(self) -> list[str]:
        return [text for key, text in WANTED.items() if key not in self.arrived]

    def summary(self) -> str:
        c = self.counts
        return (f"{c['decisions']} trigger decisions, {self.runs} runs started, {c['tasks']} CRM tasks, "
                f"{c['alerts']} Slack alerts, {c['emails']} email(s); {len(self.arrived & set(WANTED))} of "
                f"{len(WANTED)} expected effects arrived")


async def send_events(say: Say, api: str, token: str, expected: Expected) -> None:
    """POST each event, say what the API answered."""
    import httpx

    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        for what, event in expected.events():
            answer = await http.post("/v1/events", json=event)
            result = answer.json().get("results", [{}])[0] if answer.status_code == 202 else answer.text
            status = result.get("status", "?") if isinstance(result, dict) else f"HTTP {answer.status_code} {result}"
            say(f"    {event['type']:<19} {what}: {status}")


SETTLE = 0.5
"""Seconds the demo waits after the last effect before it lists the runs (see show_effects)."""


async def show_effects(say: Say, crm: Any, home: Path, expected: Expected, wait: float, api: str = "",
                       token: str = "", dead: Callable[[], str] = str) -> None:
    """Print decisions, tasks, alerts and emails as they appear, until all expected arrived or ``wait`` passed."""
    import httpx

    seen: set[str] = set()
    deadline = time.monotonic() + wait
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=10) as http:
        while True:
            for key, line in [*await _decisions(http), *await _tasks(crm, expected), *_alerts(home, expected),
                              *_emails(home, expected)]:
                if key not in seen:
                    seen.add(key)
                    say("    " + line)
            if expected.complete or time.monotonic() > deadline:
                break
            if dead():
                say(f"    {dead()}: nothing more will arrive")
                break
            await asyncio.sleep(0.25)
        # A run records a step a moment after its effect shows: let the last ones land, so that listing
        # the runs (which records their steps in the store) leaves csops report the whole picture.
        await asyncio.sleep(SETTLE)
        with contextlib.suppress(httpx.HTTPError, ValueError):
            expected.runs = len((await http.get("/v1/runs", params={"limit": 500})).json().get("runs", []))
    expected.counts["decisions"] = sum(k.startswith("decision:") for k in seen)
    if not expected.complete:
        say(f"    after {wait:.0f} s still missing: " + "; ".join(expected.missing()))


async def _decisions(http: Any) -> list[tuple[str, str]]:
    try:
        got = (await http.get("/v1/decisions", params={"limit": 100})).json().get("decisions", [])
    except Exception:  # noqa: BLE001 - the API being slow to answer only delays what is shown
        return []
    return [(f"decision:{d['id']}", f"decision   {d['playbook']} for {d['account_id']}: " + (
        f"run started ({d['seen'].get('trigger', {}).get('kind', '')} trigger: {d['seen'].get('why', '')})"
        if d["outcome"] == "started"
        else f"{d['outcome']} ({d['reason']}): {d['message']}")) for d in reversed(got)]


async def _tasks(crm: Any, expected: Expected) -> list[tuple[str, str]]:
    out = []
    tasks = crm.list_tasks()
    expected.counts["tasks"] = len(tasks)
    for t in tasks:
        user = await crm.get_user(t.assignee_id)
        who = f"{user.name} <{user.email}>" if user else t.assignee_id
        if t.account_id == "acme" and t.title.startswith("Health drop"):
            expected.arrived.add("risk-task")
        if t.account_id == "globex" and t.title.startswith("Expansion signal"):
            expected.arrived.add("expansion-task")
        out.append((f"task:{t.id}", f"CRM task   {t.title!r} for {who}, {t.priority} priority, due {t.due}"))
    return out


def _alerts(home: Path, expected: Expected) -> list[tuple[str, str]]:
    from connectors.outbox import ChatOutbox

    out = []
    messages = ChatOutbox(home / "outbox" / "chat.jsonl").messages()
    expected.counts["alerts"] = len(messages)
    for m in messages:
        to = f"#{m['channel']}" if m.get("channel") else f"DM {m.get('user_email')}"
        if m.get("channel") == "cs-risk" and "Acme" in m.get("text", ""):
            expected.arrived.add("risk-alert")
        text = " ".join(str(m.get("text", "")).split())
        out.append((f"chat:{m.get('id')}", f"Slack      {to}: {text[:90]}{'...' * (len(text) > 90)}"))
    return out


def _emails(home: Path, expected: Expected) -> list[tuple[str, str]]:
    out = []
    files = sorted((home / "outbox" / "mail").glob("*.eml"))
    expected.counts["emails"] = len(files)
    for path in files:
        msg = message_from_bytes(path.read_bytes(), policy=policy.default)
        if "initech.example" in str(msg["To"]) and "renewal" in str(msg["Subject"]):
            expected.arrived.add("renewal-email")
        out.append((f"mail:{path.name}", f"email      to {msg['To']}: {msg['Subject']!r} "
                                         f"({os.path.relpath(path)})"))
    return out


async def simulate_renewal(playbooks: Path, samples: Path, home: Path, say: Say) -> bool:
    """Print the simulated timeline of renewal-reminders for Initech; False when simulation is not available."""
    try:
        from engine.sim.simulate import SimulationError, format_timeline, simulate
    except ImportError:
        return False
    from connectors.sqlcrm import SQLCRM
    from engine.language.coverage import load_coverage
    from engine.runtime.starter import load_playbooks

    crm = SQLCRM(f"sqlite:///{home / 'csops.db'}")
    try:
        account = await crm.get_account("initech")
        if account is None:
            say("    simulation skipped: Initech was not imported")
            return True
        today = datetime.now(UTC)
        account = _with_renewal(account, today.date() + timedelta(days=120))
        contacts = await crm.list_contacts("initech")
        users = [u for u in [await crm.get_user(ref) for ref in _user_ids(samples / "users.csv")] if u is not None]
    finally:
        crm.close()
    coverage, _ = load_coverage(playbooks / "coverage.yaml")
    playbook = load_playbooks(playbooks)["renewal-reminders"]
    try:
        timeline = await simulate(playbook, account, contacts=contacts, users=users, start=today, days=120,
                                  coverage=coverage)
    except SimulationError as exc:
        say(f"    simulation not available: {exc}")
        return True
    print(format_timeline(timeline, "text"), flush=True)
    return True


def _with_renewal(account: Any, day: date) -> Any:
    import dataclasses

    return dataclasses.replace(account, renewal_date=day)


def _user_ids(path: Path) -> list[str]:
    import csv

    with path.open(encoding="utf-8-sig", newline="") as fh:
        return [row["id"].strip() for row in csv.DictReader(fh) if row.get("id")]
