"""The reports as text for a terminal (the JSON forms are the data itself)."""

from __future__ import annotations

from typing import Any

__all__ = ["forecast_text", "performance_text", "tasks_text", "workload_text"]


def _pct(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value * 100:.1f}%" if 0 < value < 0.1 else f"{value * 100:.0f}%"  # 0.4 % is not 0 %


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds >= 86400:
        return f"{seconds / 86400:.1f}d"
    return f"{seconds / 3600:.1f}h" if seconds >= 3600 else f"{seconds / 60:.0f}m"


def performance_text(report: dict[str, Any]) -> str:
    """Per playbook and version: runs, conversion, steps (with execution rate), tasks and emails."""
    lines = [f"runs started since {report['since']} (on schedule: within {report['tolerance_s'] / 60:g} min "
             "of the planned time)"]
    if not report["playbooks"]:
        lines.append("no runs and no suppressed starts in that time")
    for pb in report["playbooks"]:
        lines.append("")
        suppressed = ", ".join(f"{k} {v}" for k, v in pb["suppressed"].items()) or "none"
        lines.append(f"{pb['playbook']}  (suppressed: {suppressed})")
        for v in pb["versions"]:
            r = v["runs"]
            lines.append(f"  version {v['version'][:12] or '-'}: {r['started']} started, {r['running']} running, "
                         f"{r['completed']} completed, {r['exited']} exited ({r['goal']} by goal), "
                         f"{r['cancelled']} cancelled, {r['failed']} failed")
            lines.append(f"    goal conversion {_pct(v['goal_conversion'])}, median time to goal "
                         f"{_duration(v['median_time_to_goal_s'])}")
            if v["steps"]:
                lines.append(f"    {'step':<28} {'reached':>7} {'on time':>7} {'late':>5} {'skipped':>7} "
                             f"{'failed':>6} {'execution':>9}")
            for s in v["steps"]:
                lines.append(f"    {s['step'][:28]:<28} {s['reached']:>7} {s['on_schedule']:>7} {s['late']:>5} "
                             f"{s['skipped']:>7} {s['failed']:>6} {_pct(s['execution_rate']):>9}")
            t, e = v["tasks"], v["emails"]
            esc = ", ".join(f"level {k}: {n}" for k, n in t["escalated"].items()) or "none"
            lines.append(f"    tasks: {t['created']} created, {t['completed']} completed ({t['completed_on_time']} "
                         f"on time), {t['open']} open ({t['overdue']} overdue), {t['closed_by_exit']} closed by "
                         f"exit; escalated: {esc}")
            lines.append(f"    emails: {e['sent']} sent, {e['suppressed']} suppressed, {e['capped']} capped, "
                         f"{e['bounced']} bounced, {e['replied']} replied; alerts: {v['alerts']['sent']} sent")
    return "\n".join(lines)


def workload_text(report: dict[str, Any]) -> str:
    """One line per person, flagged over or under capacity."""
    caps = ", ".join(f"{k} {v}" for k, v in report["capacity"].items()) or "none set in coverage.yaml"
    lines = [f"capacity per CSM: {caps}",
             f"{'person':<32} {'open':>5} {'overdue':>7} {'escal.':>6} {'accounts':>8} {'use':>5}  by segment"]
    for p in report["people"]:
        segs = ", ".join(f"{k or '(none)'} {n}" for k, n in p["accounts"].items())
        mark = {"over": "  OVER", "under": "  UNDER"}.get(p["flag"], "")
        lines.append(f"{p['person'][:32]:<32} {p['open_tasks']:>5} {p['overdue_tasks']:>7} {p['escalations']:>6} "
                     f"{p['accounts_total']:>8} {_pct(p['utilisation']):>5}  {segs}{mark}")
    if not report["people"]:
        lines.append("nobody owns accounts or has tasks")
    return "\n".join(lines)


def tasks_text(tasks: list[dict[str, Any]]) -> str:
    """One line per task: id, due (OVERDUE), account, assignee, title."""
    if not tasks:
        return "no open tasks"
    lines = []
    for t in tasks:
        due = (t["due"] or "no due date") + (" OVERDUE" if t["overdue"] else "")
        lines.append(f"{t['task_id']}  {due:<19} {t['account_id']:<16} {t['assignee']:<28} {t['title']}")
    return "\n".join(lines)


def forecast_text(report: dict[str, Any]) -> str:
    """Who it would start for today, and what it would have produced per week and per CSM."""
    today = report["today"]
    lines = [f"{report['playbook']}: would start today for {len(today['start'])} of {today['accounts']} account(s)"]
    lines += [f"  start {a}" for a in today["start"][:20]]
    if len(today["start"]) > 20:
        lines.append(f"  ... and {len(today['start']) - 20} more")
    for reason, accounts in sorted(today["not_started"].items()):
        lines.append(f"  not started ({reason}): {len(accounts)} e.g. {', '.join(accounts[:3])}")
    replay = report.get("replay")
    if replay:
        lines.append("")
        lines.append(f"replayed {replay['events']} event(s) from {replay['from'][:10]} to {replay['to'][:10]} "
                     f"in {replay.get('seconds', 0)} s: "
                     f"{replay['runs']} run(s) would have started")
        totals = replay["totals"]
        lines.append(f"  totals: {totals['tasks']} tasks, {totals['alerts']} alerts, {totals['emails']} emails, "
                     f"{totals['escalations']} escalations")
        lines.append(f"  {'week':<12} {'tasks':>6} {'alerts':>6} {'emails':>6}")
        for week, n in replay["per_week"].items():
            lines.append(f"  {week:<12} {n['tasks']:>6} {n['alerts']:>6} {n['emails']:>6}")
        lines.append(f"  {'person':<32} {'tasks':>6} {'alerts':>6} {'emails':>6}")
        for who, n in replay["per_person"].items():
            lines.append(f"  {who[:32]:<32} {n['tasks']:>6} {n['alerts']:>6} {n['emails']:>6}")
    return "\n".join(lines)
