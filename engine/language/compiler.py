"""Turn validated playbook data into the model (engine.language.model) and compute its version."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from engine.language import model as m
from engine.language.durations import Duration, parse_duration
from engine.language.parties import Party, parse_party
from engine.language.sendwindow import SendWindow
from engine.language.templatefiles import TemplateProblem, read_template


def version_of(data: Any, extra: Mapping[str, str] | None = None) -> str:
    """A hash of the canonical content: key order, comments and formatting do not count."""
    canonical = json.dumps({"playbook": data, "files": dict(sorted((extra or {}).items()))},
                           sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def compile_playbook(data: Mapping[str, Any], source: str = "", read: Mapping[str, str] | None = None) -> m.Playbook:
    """Compile data that validation accepted without errors.

    Email template files are read relative to ``source``, unless ``read`` already holds their text
    (validation read them a moment ago: reading again could even see a different file).
    """
    files: dict[str, str] = dict(read or {})
    steps = tuple(_step(s, source, files) for s in data["steps"])
    audience = data.get("audience") or {}
    entry = data.get("entry") or {}
    exit_ = data.get("exit") or {}
    return m.Playbook(
        id=data["playbook"],
        title=data["title"],
        description=data.get("description", ""),
        enabled=data.get("enabled", True),
        owner=_party(data["owner"]) if "owner" in data else None,
        triggers=tuple(_trigger(t) for t in data["triggers"]),
        audience=m.Audience(segments=tuple(audience.get("segments", ())),
                            lifecycle_stages=tuple(audience.get("lifecycle_stages", ())), when=audience.get("when")),
        entry=m.Entry(key=entry.get("key"), cooldown=_dur(entry.get("cooldown"))),
        exit=m.ExitCriteria(when=exit_.get("when"), on_events=tuple(exit_.get("on_events", ())),
                            close_open_tasks=exit_.get("close_open_tasks", False)),
        steps=steps,
        version=version_of(data, files),
        source=source,
        data=data,
        files=files,
    )


RUN_CACHE_SIZE = 256
_RUN_CACHE: dict[str, tuple[Mapping[str, Any], dict[str, str], m.Playbook]] = {}


def compile_for_run(data: Mapping[str, Any], read: Mapping[str, str], version: str) -> m.Playbook:
    """``compile_playbook(data, read=read)``, compiled once per process for each playbook version.

    Every run compiles the playbook it carries, and a worker runs the same few versions over and
    over: compiling (and hashing the content for ``version``) cost more than a step's bookkeeping.
    The model is immutable, so runs can share it. ``version`` is only where to look: a hit must
    carry equal data and files (a caller may name a version that is not the content's hash), so a
    run always gets the compilation of exactly what it carries. Safe across the worker's threads:
    at worst two compile the same playbook at once and one result is kept.
    """
    files = dict(read)
    found = _RUN_CACHE.get(version)
    if found is not None and found[0] == data and found[1] == files:
        return found[2]
    playbook = compile_playbook(data, read=files)
    if len(_RUN_CACHE) >= RUN_CACHE_SIZE:
        _RUN_CACHE.clear()
    _RUN_CACHE[version] = (data, files, playbook)
    return playbook


def _party(text: str) -> Party:
    party = parse_party(text)
    if party is None:  # validation rejects these; reaching here is a bug in the caller
        raise ValueError(f"not a party: {text!r}")
    return party


def _dur(text: str | None) -> Duration | None:
    return parse_duration(text) if text is not None else None


def _trigger(data: Mapping[str, Any]) -> m.Trigger:
    kind, body = next(iter(data.items()))
    body = body or {}
    if kind == "health_drop":
        return m.HealthDrop(below=body.get("below"), by=body.get("by"), within=_dur(body.get("within")),
                            to_band=body.get("to_band"))
    if kind == "contract_milestone":
        return m.ContractMilestone(field=body["field"], days_before=body.get("days_before"),
                                   days_after=body.get("days_after"), business_days=body.get("business_days", False))
    if kind == "new_usage":
        return m.NewUsage(feature=body.get("feature"), product=body.get("product"))
    if kind == "lifecycle_change":
        return m.LifecycleChange(to=body["to"], from_stage=body.get("from"))
    if kind == "event":
        return m.EventTrigger(type=body["type"], where=body.get("where"))
    if kind == "schedule":
        return m.Schedule(cron=body["cron"], timezone=body.get("timezone", "UTC"))
    return m.Manual()


_ACTIONS = ("task", "alert", "email", "wait", "wait_for", "branch", "update", "note", "http", "start_playbook", "exit")


def _steps(items: Any, source: str, files: dict[str, str]) -> tuple[m.Step, ...]:
    return tuple(_step(s, source, files) for s in items or ())


def _step(data: Mapping[str, Any], source: str, files: dict[str, str]) -> m.Step:
    kind = next(k for k in _ACTIONS if k in data)
    return m.Step(id=data["id"], when=data.get("when"), on_error=data.get("on_error", "fail"),
                  action=_action(kind, data[kind], source, files))


def _action(kind: str, body: Any, source: str, files: dict[str, str]) -> m.Action:
    if kind == "task":
        return m.Task(
            assign=_party(body.get("assign", "owner")), title=body["title"], notes=body.get("notes", ""),
            due=_dur(body.get("due")), due_on=body.get("due_on"), priority=body.get("priority", "normal"),
            wait_for_completion=body.get("wait_for_completion", False),
            escalate=tuple(
                m.Escalation(after=parse_duration(e["after"]), notify=_party(e["notify"]) if "notify" in e else None,
                             text=e.get("text", ""), reassign=_party(e["reassign"]) if "reassign" in e else None,
                             priority=e.get("priority"))
                for e in body.get("escalate", ())
            ),
        )
    if kind == "alert":
        to = body["to"] if isinstance(body["to"], list) else [body["to"]]
        return m.Alert(to=tuple(_party(t) for t in to), text=body["text"], blocks=tuple(body.get("blocks", ())))
    if kind == "email":
        template = body.get("template")
        text = body.get("body", "")
        if template is not None:
            if template not in files:
                read = read_template(source, template)
                if isinstance(read, TemplateProblem):  # validation reports these; never read past them
                    raise ValueError(read.message)
                files[template] = read
            text = files[template]
        return m.Email(to=_party(body["to"]), sender=_party(body.get("from", "owner")), subject=body["subject"],
                       body=text, template=template, category=body.get("category", "operational"),
                       send_window=SendWindow.from_dict(body["send_window"]) if body.get("send_window") else None)
    if kind == "wait":
        if isinstance(body, str):
            return m.Wait(duration=parse_duration(body))
        return m.Wait(until=body["until"])
    if kind == "wait_for":
        return m.WaitFor(event=body["event"], timeout=parse_duration(body["timeout"]), where=body.get("where"),
                         on_timeout=_steps(body.get("on_timeout"), source, files))
    if kind == "branch":
        return m.Branch(cases=tuple(m.Case(when=c["when"], steps=_steps(c["steps"], source, files))
                                    for c in body["cases"]),
                        default=_steps(body.get("default"), source, files))
    if kind == "update":
        return m.Update(account=dict(body["account"]))
    if kind == "note":
        return m.Note(text=body["text"])
    if kind == "http":
        return m.Http(url=body["url"], method=body.get("method", "POST"), headers=dict(body.get("headers", {})),
                      json=body.get("json"))
    if kind == "start_playbook":
        return m.StartPlaybook(playbook=body)
    return m.Exit(outcome=body["outcome"], reason=body.get("reason", ""))
