"""The timeline of a simulation (engine.sim.simulate): its entries, how they are put in order, and how
they are printed (text, one line per entry, or JSON)."""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from engine.language.model import Playbook
from engine.language.textfmt import count

__all__ = ["Entry", "Timeline", "build_entries", "day_of", "failure_line", "format_timeline", "of_child"]


# --- the timeline ----------------------------------------------------------------------------

@dataclass(frozen=True, kw_only=True)
class Entry:
    """One line of a timeline."""

    at: datetime
    """Simulated time (UTC)."""
    day: int
    """Whole days since the simulation's start."""
    step: str
    """Step path (``kickoff``, ``kickoff/escalate/0``); empty for events and the run's end."""
    action: str
    """task, reassign, reprioritise, close-task, alert, email, update, note, http, start-playbook,
    wait, wait_for, branch, skip, failed, exit, event or end."""
    to: str = ""
    """Who or where: the party it resolved to (email, #channel) or the webhook URL."""
    text: str = ""
    """The rendered title, message, subject or note; what a wait, branch or event did."""
    detail: Mapping[str, Any] = field(default_factory=dict)
    """The rest: due date, priority, body, how a party resolved, changes, payload..."""
    playbook: str = ""
    """The playbook of a run a ``start_playbook`` step started (its steps show as ``playbook:step``);
    empty for the simulated run."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-able form."""
        return {"at": self.at.isoformat(), "day": self.day, "step": self.step, "action": self.action, "to": self.to,
                "text": self.text, "detail": dict(self.detail), "playbook": self.playbook}


class Timeline(list[Entry]):
    """The entries of a simulation in time order, with what the run was and how it ended."""

    def __init__(self, entries: Sequence[Entry], *, playbook: str, account_id: str, account_name: str,
                 start: datetime, end: datetime, days: int, outcome: str, reason: str, trigger: Mapping[str, Any],
                 note: str, run_id: str, defaulted: str = "") -> None:
        super().__init__(entries)
        self.playbook, self.account_id, self.account_name = playbook, account_id, account_name
        self.start, self.end, self.days = start, end, days
        self.outcome, self.reason = outcome, reason
        """How the run ended (completed, exited, success, failure, neutral, failed) or ``running``."""
        self.trigger, self.note, self.run_id = dict(trigger), note, run_id
        self.defaulted = defaulted
        """Set when no trigger event was given and the run got a default one: which."""


def build_entries(pb: Playbook, begin: datetime, records: Sequence[Any], steps: Mapping[str, Any],
                  events: Sequence[Entry], outcome: str, reason: str, ended: datetime) -> list[Entry]:
    """The recorded effects, the steps without effects, the events and the end, in time order."""
    from engine.language import model as m
    from engine.runtime.workflow import EFFECTS

    order = {s.id: i for i, s in enumerate(pb.all_steps())}

    def entry(at: datetime, step: str, action: str, to: str = "", text: str = "", **detail: Any) -> Entry:
        return Entry(at=at, day=day_of(at, begin), step=step, action=action, to=to, text=text, detail=detail)

    out = list(events)
    for r in records:
        extra = dict(r.detail)
        done = steps.get(r.path)
        if r.action == "task" and done is not None and isinstance(done.result, dict):
            extra.update(resolved=done.result.get("resolved", []), fallback=done.result.get("fallback", ""))
        out.append(entry(r.at, r.path, r.action, r.to, r.text, **extra))
    firsts = _first_times(pb, steps, records)
    for sid, res in steps.items():
        at = datetime.fromisoformat(res.at) if res.at else ended
        if "/" in sid:  # an escalation of a task: its effect is recorded, a failure is not
            if res.status == "failed":
                out.append(entry(at, sid, "failed", text=str(res.result)))
            continue
        step = pb.step(sid) if sid in order else None
        if step is None:
            continue
        act = step.action
        if res.status == "skipped":
            out.append(entry(at, sid, "skip", text=f"when was false: {step.when}"))
        elif res.status == "failed":
            out.append(entry(at, sid, "failed", text=str(res.result)))
        elif isinstance(act, EFFECTS):
            continue
        elif isinstance(act, m.Wait):
            out.append(entry(at, sid, "wait", text=f"until {_show(datetime.fromisoformat(str(res.result)))}"))
        elif isinstance(act, m.WaitFor):
            if res.status == "received" and isinstance(res.result, dict):
                out.append(entry(at, sid, "wait_for", text=f"got {res.result.get('type')}", event=res.result))
            else:
                out.append(entry(min(at, firsts.get(sid, at)), sid, "wait_for",
                                 text=f"no {act.event} within {act.timeout.text}: timed out"))
        elif isinstance(act, m.Branch):
            chosen = res.result
            text = ("default" if chosen == "default" or chosen is None
                    else f"case {int(chosen) + 1}: {act.cases[int(chosen)].when}")
            out.append(entry(min(at, firsts.get(sid, at)), sid, "branch", text=text))
        elif isinstance(act, m.Exit):
            out.append(entry(at, sid, "exit", text=str(res.result)))
    out.append(entry(ended, "", "end", text=outcome, reason=reason))
    last = len(order) + 1

    def key(e: Entry) -> tuple[datetime, int]:
        # Events come first at their instant; closing tasks and the end come after the step that ended the run.
        rank = (-1 if e.action == "event" else last + 1 if e.action == "end" else
                last if e.step.endswith("/close") else order.get(e.step.split("/")[0], last))
        return e.at.replace(microsecond=0), rank

    return sorted(out, key=key)


def day_of(at: datetime, begin: datetime) -> int:
    """The simulated day of ``at``: 0 on the start's date (UTC), 1 the next calendar day..."""
    return (at.astimezone(UTC).date() - begin.astimezone(UTC).date()).days


def _first_times(pb: Playbook, steps: Mapping[str, Any], records: Sequence[Any]) -> dict[str, datetime]:
    """For each step with nested steps, when the first of them did something (when it chose)."""
    firsts: dict[str, datetime] = {}
    for step in pb.all_steps():
        inner = {s.id for s in _descendants(step)}
        if not inner:
            continue
        times = [datetime.fromisoformat(r.at) for sid, r in steps.items() if sid in inner and r.at]
        times += [r.at for r in records if r.path.split("/")[0] in inner]
        if times:
            firsts[step.id] = min(times)
    return firsts


def _descendants(step: Any) -> list[Any]:
    found = []
    for child in step.children():
        found += [child, *_descendants(child)]
    return found


def _show(at: datetime) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def _short(text: str, width: int = 90) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1] + "…"


def format_timeline(timeline: Timeline, fmt: str = "text") -> str:
    """The timeline as text (one line per entry) or JSON."""
    if fmt == "json":
        return json.dumps({"playbook": timeline.playbook, "account": timeline.account_id,
                           "start": timeline.start.isoformat(), "end": timeline.end.isoformat(),
                           "days": timeline.days, "trigger": timeline.trigger, "matcher": timeline.note,
                           "outcome": timeline.outcome, "reason": timeline.reason, "run_id": timeline.run_id,
                           "entries": [e.as_dict() for e in timeline]}, indent=2, default=str)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}: text or json")
    rows = [(str(e.day), _show(e.at), e.step or "-", e.action, e.to or "-", _describe(e)) for e in timeline]
    head = ("day", "time (UTC)", "step", "action", "to", "what")
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(5)]
    lines = [f"Simulated {timeline.playbook} for {timeline.account_id} ({timeline.account_name}) from "
             f"{_show(timeline.start)} UTC for {count(timeline.days, 'day')}; nothing was sent.",
             f"trigger: {timeline.note}", ""]
    for r in [head, *rows]:
        lines.append("  ".join([r[0].rjust(widths[0]), *(c.ljust(w) for c, w in zip(r[1:5], widths[1:], strict=True)),
                                r[5]]).rstrip())
    return "\n".join(lines)


def _describe(e: Entry) -> str:
    d = e.detail
    text = _short(e.text)
    if e.action == "task":
        bits = [f"due {d['due']}" if d.get("due") else "", d.get("priority", "")]
        text += f" ({', '.join(b for b in bits if b)})" if any(bits) else ""
    if e.action == "end":
        text += f": {d.get('reason', '')}" if d.get("reason") else ""
    if d.get("fallback"):
        text += f" [fallback: {d['fallback']}]"
    if e.action == "start-playbook" and d.get("outcome") not in (None, "started"):
        text += f" ({d['outcome']})"
    if e.action == "event" and d.get("notes"):
        text += f" ({'; '.join(d['notes'])})"
    return text


def of_child(entries: Sequence[Entry], playbook: str) -> list[Entry]:
    """A started run's entries, marked as that playbook's: steps as ``playbook:step``, its end as ``playbook``."""
    return [dataclasses.replace(e, playbook=playbook, step=f"{playbook}:{e.step}" if e.step else playbook)
            for e in entries if e.action != "event"]


def failure_line(timeline: Timeline, playbooks: Mapping[str, Playbook]) -> str:
    """One line for a run that failed: the step, what failed and the expression; "" when none failed."""
    ends = [e for e in timeline if e.action == "end" and e.text in ("failed", "error")]
    if not ends:
        return ""
    end = ends[0]
    run = end.playbook or timeline.playbook
    failed = next((e for e in timeline if e.action == "failed" and e.playbook == end.playbook), None)
    if failed is None:
        return f"the run of {run} failed: {end.detail.get('reason', '')}"
    sid = failed.step.split(":", 1)[-1] if failed.playbook else failed.step
    found = expression_of(playbooks.get(run), sid.split("/")[0], failed.text)
    where = f" (in {found[0]}: {found[1]})" if found else ""
    who = f"{run} " if failed.playbook else ""
    if timeline.defaulted and found and "trigger.event" in found[1]:
        where += f"; the run got {timeline.defaulted}: give the event with --trigger-event (in a test: trigger:)"
    return f"{who}step {sid} failed on day {failed.day}: {' '.join(failed.text.split())}{where}"


_NAMED = re.compile(r"has no attribute '(\w+)'|'(\w+)' is undefined|no attribute (\w+)|(\w+) filter")
_TEMPLATE = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)


def expression_of(pb: Playbook | None, step_id: str, error: str) -> tuple[str, str] | None:
    """Which field of the step holds the expression an error names, and that expression."""
    named = _NAMED.search(error)
    if pb is None or named is None:
        return None
    name = next(g for g in named.groups() if g)
    word = re.compile(rf"\b{re.escape(name)}\b")
    for where, text in _texts(_find_step(pb.data.get("steps") or [], step_id), ""):
        if word.search(text):
            inner = next((t for t in _TEMPLATE.findall(text) if word.search(t)), text)
            return where, " ".join(inner.split())
    return None


def _find_step(steps: Any, step_id: str) -> Any:
    for step in steps if isinstance(steps, list) else ():
        if isinstance(step, dict) and step.get("id") == step_id:
            return step
        for value in step.values() if isinstance(step, dict) else ():
            inner = value.values() if isinstance(value, dict) else [value]
            for nested in inner:
                found = _find_step(nested, step_id) if isinstance(nested, list) else None
                if found is not None:
                    return found
    return None


def _texts(value: Any, path: str) -> list[tuple[str, str]]:
    """The text leaves of a step, by dotted path; nested steps are left out (they have their own ids)."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        if path and "id" in value:
            return []
        return [t for k, v in value.items() if k != "id" for t in _texts(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list):
        return [t for i, v in enumerate(value) for t in _texts(v, f"{path}[{i}]")]
    return []
