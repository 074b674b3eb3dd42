"""Playbook tests: ``*.test.yaml`` files of cases (account, timed events, expected timeline), and ``csops test``.

Each case runs the real workflow through engine.simulate and compares the timeline with what it
expects: ``expect`` entries must appear in that order (other entries may come between them),
``absent`` entries must not appear at all, ``outcome`` is how the run ended. A failing case prints
a unified diff of the expected against the actual timeline lines. A test file is read with the
position-keeping loader, so every problem in it is ``path:line:col`` with a rule id and a hint.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO

from engine.problems import Problem
from engine.yamlpos import Document, Path, read

TOP_KEYS = ("playbook", "coverage", "account", "contacts", "users", "start", "days", "cases")
CASE_KEYS = ("name", "account", "contacts", "users", "events", "start", "days", "expect", "absent", "outcome")
MATCH_KEYS = ("day", "step", "action", "to", "text")
OUTCOMES = ("completed", "exited", "success", "failure", "neutral", "failed", "cancelled", "running")
_TYPES: dict[str, tuple[type, ...]] = {
    "playbook": (str,), "coverage": (str,), "account": (dict,), "contacts": (list,), "users": (list,),
    "start": (str,), "days": (int,), "cases": (list,), "name": (str,), "events": (list,), "expect": (list,),
    "absent": (list,), "outcome": (str,)}


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
        out.problems.append(_problem(doc, (), "test-type", "a test file is a mapping with playbook: and cases:",
                                     "see docs/simulate.md for the format"))
        return out
    _check_keys(doc, (), data, TOP_KEYS, out.problems)
    for key in ("playbook", "cases"):
        if key not in data:
            out.problems.append(_problem(doc, (), "test-missing", f"{key}: is missing",
                                         "name the playbook file (relative to this file) and list the cases"))
    if out.problems:
        return out
    here = os.path.dirname(path)
    out.playbook = os.path.join(here, data["playbook"])
    if not os.path.isfile(out.playbook):
        out.problems.append(_problem(doc, ("playbook",), "test-playbook", f"no playbook file {data['playbook']}",
                                     "the path is relative to the test file"))
    if data.get("coverage"):
        out.coverage = os.path.join(here, data["coverage"])
    if not data["cases"]:
        out.problems.append(_problem(doc, ("cases",), "test-missing", "cases: is empty", "add at least one case"))
    for i, raw in enumerate(data["cases"]):
        case = _case(doc, ("cases", i), raw, data, out.problems)
        if case is not None:
            out.cases.append(case)
    out.problems.sort(key=Problem.sort_key)
    return out


def _case(doc: Document, p: Path, raw: Any, top: dict[str, Any], problems: list[Problem]) -> Case | None:
    if not isinstance(raw, dict):
        problems.append(_problem(doc, p, "test-type", "a case is a mapping with name:, expect: and so on"))
        return None
    before = len(problems)
    _check_keys(doc, p, raw, CASE_KEYS, problems)
    if "name" not in raw:
        problems.append(_problem(doc, p, "test-missing", "the case has no name:", "say what the case shows"))
    if not raw.get("expect") and not raw.get("absent") and not raw.get("outcome"):
        problems.append(_problem(doc, p, "test-missing", "the case checks nothing",
                                 "add expect:, absent: or outcome:"))
    if raw.get("outcome") and raw["outcome"] not in OUTCOMES:
        problems.append(_problem(doc, (*p, "outcome"), "test-value", f"unknown outcome {raw['outcome']!r}",
                                 f"one of {', '.join(OUTCOMES)}"))
    for key in ("expect", "absent"):
        for j, item in enumerate(raw.get(key) or []):
            where = (*p, key, j)
            if not isinstance(item, dict) or not item:
                problems.append(_problem(doc, where, "test-type", f"an {key} entry is a mapping of "
                                         f"{', '.join(MATCH_KEYS)}"))
                continue
            _check_keys(doc, where, item, MATCH_KEYS, problems)
            if "day" in item and not isinstance(item["day"], int):
                problems.append(_problem(doc, (*where, "day"), "test-type", "day: is a whole number of days"))
    if len(problems) > before:
        return None
    return Case(name=raw["name"], account={**(top.get("account") or {}), **(raw.get("account") or {})},
                contacts=raw.get("contacts", top.get("contacts")) or (), users=raw.get("users", top.get("users")) or (),
                events=raw.get("events") or (), start=str(raw.get("start", top.get("start", ""))),
                days=int(raw.get("days", top.get("days", 120))), expect=raw.get("expect") or (),
                absent=raw.get("absent") or (), outcome=raw.get("outcome") or "")


def _check_keys(doc: Document, p: Path, data: dict[str, Any], known: Sequence[str], problems: list[Problem]) -> None:
    for key, value in data.items():
        if key not in known:
            near = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
            problems.append(Problem(doc.path, *_one(doc.key_pos((*p, key))), "test-unknown-key",
                                    f"unknown key {key}", "error",
                                    f'did you mean "{near[0]}"?' if near else f"known keys: {', '.join(known)}"))
        elif key in _TYPES and value is not None and not isinstance(value, _TYPES[key]):
            problems.append(_problem(doc, (*p, key), "test-type", f"{key}: must be a {_TYPES[key][0].__name__}"))


def _problem(doc: Document, p: Path, rule: str, message: str, hint: str = "") -> Problem:
    return Problem(doc.path, *_one(doc.pos(p)), rule, message, "error", hint)


def _one(pos: tuple[int, int]) -> tuple[int, int]:
    return pos[0] + 1, pos[1] + 1


# --- running and comparing -------------------------------------------------------------------

def next_monday(now: datetime) -> datetime:
    """The default start of a case: 09:00 UTC on the next Monday, so business days fall the same way every run."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def line(entry: Any) -> str:
    """An actual timeline entry as a line of the diff."""
    text = " ".join(str(entry.text).split())
    text = text if len(text) <= 70 else text[:69] + "…"
    return f"day {entry.day:>3}  {entry.step or '-'}  {entry.action}  {entry.to or '-'}  {text}".rstrip()


def _wanted(item: Mapping[str, Any]) -> str:
    """An expectation as a line of the diff: ``*`` for what it leaves open, ``…text…`` for a text it looks for."""
    day = f"{item['day']:>3}" if "day" in item else "  *"
    text = f"…{item['text']}…" if "text" in item else "*"
    return f"day {day}  {item.get('step', '*')}  {item.get('action', '*')}  {item.get('to', '*')}  {text}"


def matches(item: Mapping[str, Any], entry: Any) -> bool:
    """Whether an actual entry is what an ``expect``/``absent`` item describes (``text`` is a substring)."""
    return all(str(item[k]) in str(entry.text) if k == "text" else getattr(entry, k) == item[k]
               for k in MATCH_KEYS if k in item)


def compare(case: Case, timeline: Any) -> list[str]:
    """What is wrong with the timeline for this case, as printable lines ([] when it passes)."""
    entries = [e for e in timeline if e.action != "end"]
    expected, pos, missing = [], 0, False
    for item in case.expect:
        found = next((i for i in range(pos, len(entries)) if matches(item, entries[i])), None)
        if found is None:
            expected.append(_wanted(item))
            missing = True
        else:
            expected.append(line(entries[found]))
            pos = found + 1
    out: list[str] = []
    if missing:
        steps = {item["step"] for item in case.expect if "step" in item}
        named = steps if all("step" in item for item in case.expect) else None
        actual = [line(e) for e in entries if named is None or e.step in named]
        out.append("expected timeline (in this order) vs actual:")
        out += list(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=3))
    for item in case.absent:
        listed = ", ".join(f"{k}: {item[k]}" for k in MATCH_KEYS if k in item)
        out += [f"unexpected (absent: {{{listed}}}): {line(e)}" for e in entries if matches(item, e)]
    if case.outcome and case.outcome != timeline.outcome:
        out.append(f"expected outcome {case.outcome}, got {timeline.outcome} ({timeline.reason})")
    return out


async def run_case(case: Case, playbook: Any, coverage: Any) -> tuple[list[str], Any]:
    """Simulate one case; its problems ([] when it passes) and the timeline."""
    from engine.cli_sim import parse_start
    from engine.simulate import simulate

    start = parse_start(case.start) if case.start else next_monday(datetime.now(UTC))
    timeline = await simulate(playbook, case.account, contacts=case.contacts, users=case.users, events=case.events,
                              start=start, days=case.days, coverage=coverage)
    return compare(case, timeline), timeline


def run_tests(path: str, *, select: str = "", out: TextIO, timings: bool = True) -> int:
    """``csops test PATH``: 0 every case passed, 1 a case failed, 2 a test file (or the path) is unusable.

    ``timings=False`` leaves the seconds out of the report (for tests that compare it exactly).
    """
    from engine import report

    files = _test_files(path)
    if not files:
        print(f"csops test: no *.test.yaml files in {path}", file=out)
        return 2
    began, passed, failed, broken = time.monotonic(), 0, 0, 0
    for file in files:
        tf = load_test_file(file)
        print(file, file=out)
        playbook, coverage = (None, None) if tf.problems else _playbook(tf)
        if tf.problems or playbook is None:
            broken += 1
            print(report.as_text(tf.problems, _lines), file=out)
            continue
        for case in tf.cases:
            if select and select not in case.name:
                continue
            t0 = time.monotonic()
            try:
                problems, _ = asyncio.run(run_case(case, playbook, coverage))
            except Exception as exc:  # noqa: BLE001 - bad data in the case: reported on it, the other cases run
                problems = [f"cannot run: {exc}"]
            verdict = "PASS" if not problems else "FAIL"
            passed, failed = passed + (not problems), failed + bool(problems)
            took = f" ({time.monotonic() - t0:.1f} s)" if timings else ""
            print(f"  {verdict}  {case.name}{took}", file=out)
            for text in problems:
                print(f"        {text}".rstrip(), file=out)
    summary = f"{passed} passed, {failed} failed" + (f", {broken} bad test file(s)" if broken else "")
    print(f"{summary} in {time.monotonic() - began:.1f} s" if timings else summary, file=out)
    return 2 if broken else 1 if failed else 0


def _test_files(path: str) -> list[str]:
    if os.path.isfile(path):
        return [path]
    found = []
    for root, dirs, names in os.walk(path):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [os.path.join(root, n) for n in sorted(names) if n.endswith((".test.yaml", ".test.yml"))
                  and not n.endswith(("health.test.yaml", "health.test.yml"))]  # csops health test's
    return found


def _playbook(tf: TestFile) -> tuple[Any, Any]:
    """The test file's playbook and coverage model; a problem is added when either is unusable."""
    from engine.coverage import load_coverage
    from engine.validate import validate_paths

    result = validate_paths([tf.playbook])
    if not result.playbooks:
        tf.problems.append(Problem(tf.path, 1, 1, "test-playbook", f"{tf.playbook} is not a valid playbook", "error",
                                   f"csops validate {tf.playbook} says why"))
        return None, None
    coverage_file = tf.coverage or os.path.join(os.path.dirname(tf.playbook), "coverage.yaml")
    coverage = None
    if os.path.isfile(coverage_file):
        coverage, problems = load_coverage(coverage_file)
        tf.problems.extend(problems)
    return next(iter(result.playbooks.values())), coverage


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except OSError:
        return []
