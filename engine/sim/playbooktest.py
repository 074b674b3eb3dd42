"""Playbook tests: ``*.test.yaml`` files of cases (account, timed events, expected timeline), and ``csops test``.

Each case runs the real workflow through engine.sim.simulate and compares the timeline with what it
expects: ``expect`` entries must appear in that order (other entries may come between them),
``absent`` entries must not appear at all, ``outcome`` is how the run ended. A failing case prints
a unified diff of the expected against the actual timeline lines. Test files are read and checked
by engine.sim.testfile.
"""

from __future__ import annotations

import asyncio
import difflib
import os
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, TextIO

from engine.language.problems import file_problem
from engine.sim.testfile import MATCH_KEYS, Case, TestFile, load_test_file

__all__ = ["Case", "TestFile", "compare", "load_test_file", "matches", "next_monday", "run_case", "run_tests"]


# --- running and comparing -------------------------------------------------------------------

def next_monday(now: datetime) -> datetime:
    """The default start of a case: 09:00 UTC on the next Monday, so business days fall the same way every run."""
    day = now.astimezone(UTC).date() + timedelta(days=1)
    day += timedelta(days=(7 - day.weekday()) % 7)
    return datetime(day.year, day.month, day.day, 9, tzinfo=UTC)


def line(entry: Any, due: bool = False) -> str:
    """An actual timeline entry as a line of the diff (with its due date when the case checks due dates)."""
    text = " ".join(str(entry.text).split())
    text = text if len(text) <= 70 else text[:69] + "…"
    when = f"  due {entry.detail['due']}" if due and entry.detail.get("due") else ""
    return f"day {entry.day:>3}  {entry.step or '-'}  {entry.action}  {entry.to or '-'}  {text}{when}".rstrip()


def _wanted(item: Mapping[str, Any], start: date) -> str:
    """An expectation as a line of the diff: ``*`` for what it leaves open, ``…text…`` for a text it looks for."""
    day = f"{item['day']:>3}" if "day" in item else "  *"
    text = f"…{item['text']}…" if "text" in item else "*"
    due = f"  due {due_date(item['due'], start)}" if "due" in item else ""
    return f"day {day}  {item.get('step', '*')}  {item.get('action', '*')}  {item.get('to', '*')}  {text}{due}"


def due_date(value: Any, start: date) -> str:
    """An expected due date as ISO text: as written, or ``+Nd`` counted from the start's date."""
    text = str(value)
    return (start + timedelta(days=int(text[1:-1]))).isoformat() if text.startswith("+") else text


def matches(item: Mapping[str, Any], entry: Any, start: date | None = None) -> bool:
    """Whether an actual entry is what an ``expect``/``absent`` item describes (``text`` is a substring,
    ``due`` the due date of a task, ISO or ``+Nd`` from ``start``)."""
    def one(key: str) -> bool:
        if key == "text":
            return str(item[key]) in str(entry.text)
        if key == "due":
            return bool(entry.detail.get("due") == due_date(item[key], start or date.min))
        return bool(getattr(entry, key) == item[key])
    return all(one(k) for k in MATCH_KEYS if k in item)


def compare(case: Case, timeline: Any, playbooks: Mapping[str, Any] | None = None) -> list[str]:
    """What is wrong with the timeline for this case, as printable lines ([] when it passes)."""
    from engine.sim.simtimeline import failure_line

    entries = [e for e in timeline if e.action != "end"]
    start = timeline.start.astimezone(UTC).date()
    dues = any("due" in item for item in [*case.expect, *case.absent])
    expected, pos, missing = [], 0, False
    for item in case.expect:
        found = next((i for i in range(pos, len(entries)) if matches(item, entries[i], start)), None)
        if found is None:
            expected.append(_wanted(item, start))
            missing = True
        else:
            expected.append(line(entries[found], dues))
            pos = found + 1
    out: list[str] = []
    if missing:
        steps = {item["step"] for item in case.expect if "step" in item}
        named = steps if all("step" in item for item in case.expect) else None
        actual = [line(e, dues) for e in entries if named is None or e.step in named]
        out.append("expected timeline (in this order) vs actual:")
        out += list(difflib.unified_diff(expected, actual, "expected", "actual", lineterm="", n=3))
    for item in case.absent:
        listed = ", ".join(f"{k}: {item[k]}" for k in MATCH_KEYS if k in item)
        out += [f"unexpected (absent: {{{listed}}}): {line(e, dues)}" for e in entries if matches(item, e, start)]
    if case.outcome and case.outcome != timeline.outcome:
        out.append(f"expected outcome {case.outcome}, got {timeline.outcome} ({timeline.reason})")
    failed = failure_line(timeline, playbooks or {}) if case.outcome not in ("failed", "error") else ""
    return [failed, *out] if failed else out


async def run_case(case: Case, playbook: Any, coverage: Any, playbooks: Mapping[str, Any] | None = None,
                   calendar: Mapping[str, Any] | None = None, debug: bool = False) -> tuple[list[str], Any]:
    """Simulate one case; its problems ([] when it passes) and the timeline.

    ``playbooks`` are the ``start_playbook`` targets; ``calendar`` the configured calendar, under the case's.
    """
    from engine.sim.simcalendar import layered, parse_start
    from engine.sim.simulate import simulate

    start = parse_start(case.start) if case.start else next_monday(datetime.now(UTC))
    timeline = await simulate(playbook, case.account, contacts=case.contacts, users=case.users, events=case.events,
                              start=start, days=case.days, coverage=coverage, trigger_event=case.trigger,
                              calendar=layered(calendar, case.calendar), playbooks=playbooks, debug=debug)
    return compare(case, timeline, playbooks), timeline


def run_tests(path: str, *, select: str = "", out: TextIO, timings: bool = True, playbooks: str = "playbooks",
              calendar: Mapping[str, Any] | None = None, debug: bool = False) -> int:
    """``csops test PATH``: 0 every case passed, 1 a case failed, 2 a test file (or the path) is unusable.

    ``timings=False`` leaves the seconds out of the report (for tests that compare it exactly).
    ``playbooks`` is the folder ``start_playbook`` targets are looked up in (after the tested playbook's
    own folder); ``calendar`` the configured calendar (``Calendar.from_dict`` form) test files lay theirs over.
    """
    from engine.language import report

    files = _test_files(path)
    if not files:
        print(f"csops test: no *.test.yaml files in {path}", file=out)
        return 2
    began, passed, failed, broken = time.monotonic(), 0, 0, 0
    for file in files:
        tf = load_test_file(file)
        print(file, file=out)
        playbook, coverage, registry = (None, None, {}) if tf.problems else _playbook(tf, playbooks)
        if tf.problems or playbook is None:
            broken += 1
            print(report.as_text(tf.problems, _lines), file=out)
            continue
        for case in tf.cases:
            if select and select not in case.name:
                continue
            t0 = time.monotonic()
            try:
                problems, _ = asyncio.run(run_case(case, playbook, coverage, registry, calendar, debug))
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


def _playbook(tf: TestFile, folder: str) -> tuple[Any, Any, dict[str, Any]]:
    """The test file's playbook, coverage model and start_playbook targets; a problem is added when unusable."""
    from engine.language.coverage import load_coverage
    from engine.language.validate import UsageError
    from engine.sim.simplaybooks import PlaybookError, load_playbook

    try:
        playbook, registry = load_playbook(tf.playbook, folder)
    except (PlaybookError, UsageError) as exc:
        tf.problems.append(file_problem(tf.path, "test-playbook", str(exc), f"csops validate {tf.playbook} says why"))
        return None, None, {}
    coverage_file = tf.coverage or os.path.join(os.path.dirname(tf.playbook), "coverage.yaml")
    coverage = None
    if os.path.isfile(coverage_file):
        coverage, problems = load_coverage(coverage_file)
        tf.problems.extend(problems)
    return playbook, coverage, registry


def _lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            return fh.read().splitlines()
    except OSError:
        return []
