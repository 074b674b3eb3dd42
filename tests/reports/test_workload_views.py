"""CSM workload (utilisation against coverage.yaml targets, flags) and the SQL views on SQLite and
PostgreSQL: real stores and the SQL CRM, rows written as runs write them."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import OperationalError

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.language.coverage import parse_coverage
from engine.payloads.runtypes import StepResult
from engine.reports import flag, playbook_report, workload_report
from engine.runtime.runrecord import audit_rows
from engine.runtime.runtasks import save_tasks, task_rows
from engine.store.store import Store
from engine.store.store_views import VIEWS

PG = os.environ.get("CSOPS_TEST_PG", "postgresql+psycopg://127.0.0.1:5432/test")
T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)
COVERAGE = """\
segments:
  strategic: {owner_role: csm, capacity: 2}
  smb: {capacity: 10}
roles:
  csm: {field: owner}
"""


@pytest.mark.parametrize(("use", "expected"), [(None, ""), (0.79, "under"), (0.8, "ok"), (1.2, "ok"),
                                               (1.21, "over")])
def test_flags_at_the_edges(use: float | None, expected: str) -> None:
    assert flag(use) == expected


async def test_workload_sums_segments_against_their_targets(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    crm, store = SQLCRM(url), Store(url)
    try:
        for uid, email in (("u1", "ann@example.com"), ("u2", "bob@example.com"), ("u3", "cy@example.com")):
            crm.add_user(User(id=uid, email=email, name=uid))
        owned = [("u1", "strategic")] * 2 + [("u1", "smb")] * 5 + [("u2", "strategic")] * 1 + \
                [("u2", "smb")] * 2 + [("u3", "mid")] * 4
        for i, (owner, segment) in enumerate(owned):
            crm.add_account(Account(id=f"a{i:02}", name=f"A{i}", segment=segment, owner_id=owner))
        coverage, problems = parse_coverage(COVERAGE)
        assert problems == [] and coverage is not None
        await save_tasks(store, [_task("t1", "ANN@example.com", due=date(2026, 3, 1), escalations=2),
                                 _task("t2", "ann@example.com", due=date(2026, 3, 9)),
                                 _task("t3", "bob@example.com", due=date(2026, 3, 1), status="completed")])
        report = await workload_report(store, crm, coverage, today=date(2026, 3, 5))
    finally:
        crm.close()
        store.close()
    people = {p["person"]: p for p in report["people"]}
    assert report["capacity"] == {"smb": 10, "strategic": 2}
    # ann: 2/2 strategic + 5/10 smb = 150 %; bob: 1/2 + 2/10 = 70 %; cy: a segment without a target.
    assert [(p["person"], p["utilisation"], p["flag"]) for p in report["people"]] == [
        ("ann@example.com", 1.5, "over"), ("bob@example.com", 0.7, "under"), ("cy@example.com", None, "")]
    assert (people["ann@example.com"]["open_tasks"], people["ann@example.com"]["overdue_tasks"],
            people["ann@example.com"]["escalations"]) == (2, 1, 2)
    assert people["bob@example.com"]["open_tasks"] == 0
    assert people["ann@example.com"]["accounts"] == {"smb": 5, "strategic": 2}


def test_capacity_must_be_a_positive_whole_number() -> None:
    for bad in ("0", "-3", "1.5", "lots"):
        coverage, problems = parse_coverage(f"segments:\n  smb: {{capacity: {bad}}}\n")
        assert coverage is None and problems and problems[0].line == 2, bad


def _task(task_id: str, assignee: str, *, due: date, escalations: int = 0, status: str = "open") -> dict[str, object]:
    return {"task_id": task_id, "run_id": f"pb:x:{task_id}:once", "step": "call", "playbook": "x", "version": "v1",
            "account_id": "a00", "assignee": assignee, "title": "Call", "due": due, "created_at": T0,
            "status": status, "closed_at": T0 if status != "open" else None, "escalations": escalations}


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'views.db'}"
        return
    schema = f"csops_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG)
    try:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except OperationalError:
        pytest.skip(f"no PostgreSQL at {PG}")
    try:
        yield f"{PG}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


async def test_the_views_answer_the_same_figures_as_the_report(store_url: str) -> None:
    store = Store(store_url)
    try:
        run_id = "pb:x:acme:once"
        await store.add_run(run_id=run_id, playbook="x", version="v1", account_id="acme", started_at=T0)
        steps = {
            "call": StepResult(status="done", result={"task_id": "t9", "assignee": "ann@example.com",
                                                      "due": "2026-03-03", "title": "Call"},
                               at=(T0 + timedelta(seconds=5)).isoformat(), kind="task", planned=T0.isoformat()),
            "call/escalate/0": StepResult(status="done", result="done", at=(T0 + timedelta(days=3)).isoformat(),
                                          kind="escalate", planned=(T0 + timedelta(days=3)).isoformat()),
            "mail": StepResult(status="done", result=["<m1@x>", "suppressed"],
                               at=(T0 + timedelta(hours=1)).isoformat(), kind="email", planned=T0.isoformat()),
        }
        record = await store.get_run(run_id)
        assert record is not None
        await store.add_audit(audit_rows(run_id, steps))
        await save_tasks(store, task_rows(record, steps))
        await store.end_run(run_id, status="exited", reason="exited: exit criteria met: x", at=T0 + timedelta(days=4))
        await store.add_decision(at=T0, playbook="x", account_id="beta", signal={"kind": "event", "type": "a.b"},
                                 outcome="suppressed", reason="cooldown")
        with store.db.engine.connect() as conn:
            counts = {v: conn.execute(text(f"SELECT COUNT(*) FROM {v}")).scalar() for v in VIEWS}
            run = conn.execute(text("SELECT goal, duration_s FROM csops_runs")).one()
            delays: dict[str, float] = {r[0]: r[1] for r in conn.execute(text("SELECT step, delay_s FROM csops_steps"))}
            mail = conn.execute(text("SELECT sent, suppressed FROM csops_steps WHERE kind = 'email'")).one()
            decision = conn.execute(text("SELECT reason, signal_kind, event_type FROM csops_decisions")).one()
            task = conn.execute(text("SELECT status, due, escalations FROM csops_tasks")).one()
        report = await playbook_report(store, since=T0 - timedelta(days=1), tolerance=timedelta(minutes=15),
                                       today=date(2026, 3, 10))
    finally:
        store.close()
    assert counts == {"csops_runs": 1, "csops_steps": 3, "csops_tasks": 1, "csops_health_history": 0,
                      "csops_decisions": 1}
    assert (run[0], float(run[1])) == (1, 4 * 86400.0)
    assert {k: round(float(v)) for k, v in delays.items()} == {"call": 5, "call/escalate/0": 0, "mail": 3600}
    assert tuple(mail) == (1, 1)
    assert tuple(decision) == ("cooldown", "event", "a.b")
    assert (task[0], str(task[1]), task[2]) == ("open", "2026-03-03", 1)
    [book] = report["playbooks"]
    [v] = book["versions"]
    assert book["suppressed"] == {"cooldown": 1}
    assert (v["runs"]["exited"], v["runs"]["goal"], v["goal_conversion"], v["median_time_to_goal_s"]) == \
        (1, 1, 1.0, 4 * 86400.0)
    assert {s["step"]: (s["on_schedule"], s["late"]) for s in v["steps"]} == {"call": (1, 0), "mail": (0, 1)}
    assert v["tasks"]["escalated"] == {"1": 1} and v["tasks"]["overdue"] == 1
    assert (v["emails"]["sent"], v["emails"]["suppressed"]) == (1, 1)
