"""The ``*.test.yaml`` format: reading a playbook test file and checking it (engine.sim.playbooktest runs it).

A test file is read with the position-keeping loader, so every problem in it is ``path:line:col``
with a rule id and a hint, as ``csops validate`` reports playbooks. The format is in docs/simulate.md.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from engine.language.problems import Problem, problem_at
from engine.language.yamlpos import Document, Path, read

__all__ = ["CASE_KEYS", "MATCH_KEYS", "OUTCOMES", "TOP_KEYS", "Case", "TestFile", "load_test_file"]

TOP_KEYS = ("playbook", "coverage", "account", "contacts", "users", "start", "days", "calendar", "trigger", "cases")
CASE_KEYS = ("name", "account", "contacts", "users", "events", "start", "days", "calendar", "trigger", "expect",
             "absent", "outcome")
MATCH_KEYS = ("day", "step", "action", "to", "text", "due")
OUTCOMES = ("completed", "exited", "success", "failure", "neutral", "failed", "cancelled", "running")
_TYPES: dict[str, tuple[type, ...]] = {
    "playbook": (str,), "coverage": (str,), "account": (dict,), "contacts": (list,), "users": (list,),
    "start": (str,), "days": (int,), "cases": (list,), "name": (str,), "events": (list,), "expect": (list,),
    "absent": (list,), "outcome": (str,), "calendar": (dict,), "trigger": (dict,), "due": (str,)}


@dataclass(frozen=True, kw_only=True)
class Case:
    """One test case, defaults of its file applied."""

    name: str
    """What it shows, in plain words."""
    account: Mapping[str, Any]
    """Account fields (the file's ``account`` with the case's on top)."""
    contacts: Sequence[Mapping[str, Any]] = ()
    """The account's contacts."""
    users: Sequence[Mapping[str, Any]] = ()
    """The team: owner, manager, and everyone a party may resolve to."""
    events: Sequence[Mapping[str, Any]] = ()
    """Timed events (as for ``csops simulate --events``)."""
    start: str = ""
    """First simulated time (ISO); empty: next Monday 09:00 UTC."""
    days: int = 120
    """Days to simulate."""
    expect: Sequence[Mapping[str, Any]] = ()
    """Entries that must appear, in this order."""
    absent: Sequence[Mapping[str, Any]] = ()
    """Entries that must not appear."""
    outcome: str = ""
    """How the run must end; empty: not checked."""
    calendar: Mapping[str, Any] = field(default_factory=dict)
    """The file's and the case's ``calendar:`` (the case's keys win), laid over the configured calendar."""
    trigger: Mapping[str, Any] | None = None
    """The event that starts the run (the case's ``trigger:``, else the file's); None: the default."""


@dataclass(kw_only=True)
class TestFile:
    """A parsed test file: its playbook, coverage file and cases, or the problems that stop it."""

    path: str
    playbook: str = ""
    coverage: str = ""
    cases: list[Case] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def load_test_file(path: str) -> TestFile:
    """Read and check a ``*.test.yaml`` file; every problem has its line and column."""
    doc = read(path)
    out = TestFile(path=path, problems=list(doc.problems))
    data = doc.data
    if out.problems:
        return out
    if not isinstance(data, dict):
        out.problems.append(problem_at(doc, (), "test-type", "a test file is a mapping with playbook: and cases:",
                                       "see docs/simulate.md for the format"))
        return out
    _check_keys(doc, (), data, TOP_KEYS, out.problems)
    for key in ("playbook", "cases"):
        if key not in data:
            out.problems.append(problem_at(doc, (), "test-missing", f"{key}: is missing",
                                           "name the playbook file (relative to this file) and list the cases"))
    if out.problems:
        return out
    here = os.path.dirname(path)
    out.playbook = os.path.join(here, data["playbook"])
    if not os.path.isfile(out.playbook):
        out.problems.append(problem_at(doc, ("playbook",), "test-playbook", f"no playbook file {data['playbook']}",
                                       "the path is relative to the test file"))
    if data.get("coverage"):
        out.coverage = os.path.join(here, data["coverage"])
    if not data["cases"]:
        out.problems.append(problem_at(doc, ("cases",), "test-missing", "cases: is empty", "add at least one case"))
    for key in ("calendar", "trigger"):
        if isinstance(data.get(key), dict):
            data[key] = _CHECKS[key](doc, (key,), data[key], out.problems)
    for i, raw in enumerate(data["cases"]):
        case = _case(doc, ("cases", i), raw, data, out.problems)
        if case is not None:
            out.cases.append(case)
    out.problems.sort(key=Problem.sort_key)
    return out


def _case(doc: Document, p: Path, raw: Any, top: dict[str, Any], problems: list[Problem]) -> Case | None:
    if not isinstance(raw, dict):
        problems.append(problem_at(doc, p, "test-type", "a case is a mapping with name:, expect: and so on"))
        return None
    before = len(problems)
    _check_keys(doc, p, raw, CASE_KEYS, problems)
    if "name" not in raw:
        problems.append(problem_at(doc, p, "test-missing", "the case has no name:", "say what the case shows"))
    if not raw.get("expect") and not raw.get("absent") and not raw.get("outcome"):
        problems.append(problem_at(doc, p, "test-missing", "the case checks nothing",
                                   "add expect:, absent: or outcome:"))
    if raw.get("outcome") and raw["outcome"] not in OUTCOMES:
        problems.append(problem_at(doc, (*p, "outcome"), "test-value", f"unknown outcome {raw['outcome']!r}",
                                   f"one of {', '.join(OUTCOMES)}"))
    for key in ("expect", "absent"):
        for j, item in enumerate(raw.get(key) or []):
            where = (*p, key, j)
            if not isinstance(item, dict) or not item:
                problems.append(problem_at(doc, where, "test-type", f"an {key} entry is a mapping of "
                                           f"{', '.join(MATCH_KEYS)}"))
                continue
            _check_keys(doc, where, item, MATCH_KEYS, problems)
            if "day" in item and not isinstance(item["day"], int):
                problems.append(problem_at(doc, (*where, "day"), "test-type", "day: is a whole number of days"))
            if "due" in item and not _due_form(item["due"]):
                problems.append(problem_at(doc, (*where, "due"), "test-value", f"due: {item['due']!r} is not a date",
                                           "an ISO date (2031-01-08), or +Nd for N days after the start's date"))
    for key in ("calendar", "trigger"):
        if isinstance(raw.get(key), dict):
            raw[key] = _CHECKS[key](doc, (*p, key), raw[key], problems)
    if len(problems) > before:
        return None
    return Case(name=raw["name"], account={**(top.get("account") or {}), **(raw.get("account") or {})},
                contacts=raw.get("contacts", top.get("contacts")) or (), users=raw.get("users", top.get("users")) or (),
                events=raw.get("events") or (), start=str(raw.get("start", top.get("start", ""))),
                days=int(raw.get("days", top.get("days", 120))), expect=raw.get("expect") or (),
                absent=raw.get("absent") or (), outcome=raw.get("outcome") or "",
                calendar={**(top.get("calendar") or {}), **(raw.get("calendar") or {})},
                trigger=raw["trigger"] if raw.get("trigger") else top.get("trigger") or None)


def _check_keys(doc: Document, p: Path, data: dict[str, Any], known: Sequence[str], problems: list[Problem]) -> None:
    for key, value in data.items():
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            problems.append(problem_at(doc, (*p, key), "test-unknown-key", f"unknown key {key}",
                                       f'did you mean "{near[0]}"?' if near else f"known keys: {', '.join(known)}",
                                       key=True))
        elif key in _TYPES and value is not None and not isinstance(value, _TYPES[key]):
            problems.append(problem_at(doc, (*p, key), "test-type", f"{key}: must be a {_TYPES[key][0].__name__}"))


def _calendar(doc: Document, p: Path, data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    from engine.sim.simcalendar import check_calendar

    return check_calendar(doc, p, data, problems) or {}


def _trigger(doc: Document, p: Path, data: dict[str, Any], problems: list[Problem]) -> dict[str, Any]:
    """A case's triggering event, checked as the event API checks one (its id, account and time may be left out)."""
    from engine.triggers.ingest_facts import validate_event

    filled = {"id": "sim-trigger", "account_id": "sim", "occurred_at": "2030-01-01T00:00:00Z", **data}
    for text in validate_event(filled):
        where = text.partition(": ")[0]
        at = tuple(k for k in where.split(".") if k != "(event)")
        known = next((p + at[:n] for n in range(len(at), 0, -1) if doc.values.get(p + at[:n]) is not None), p)
        problems.append(problem_at(doc, known, "test-value", f"trigger: {text}",
                                   "an event: {type: health.updated, data: {score: 42}} (docs/events.md)"))
    return data


_CHECKS = {"calendar": _calendar, "trigger": _trigger}


def _due_form(value: Any) -> bool:
    text = str(value)
    if re.fullmatch(r"\+\d+d", text):
        return True
    try:
        date.fromisoformat(text)
    except ValueError:
        return False
    return len(text) == 10
