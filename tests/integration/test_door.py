"""One door into a run, on real parts: a real ``temporal server start-dev``, the worker (``python -m
worker``) and the HTTP API (``csops api``) as processes, and the real ``csops`` command line.

A run started by ``csops start``, by ``POST /v1/runs`` or by a ``start_playbook`` step is recorded
like a triggered one: ``csops runs``, ``runs show``, ``GET /v1/runs``, cancel over the API and
``csops explain`` know it, events reach it, and it counts for one active run and the cooldown.
``csops start`` refuses what the rules refuse (exit 1, naming the rule) unless forced with a
reason, which the run's record keeps. The runs get the calendar of csops.yaml.

One stack serves the whole module (starting it costs seconds); each test uses accounts of its own.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from temporalio.client import Client

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from tests.integration.procs import (
    ROOT,
    Procs,
    clean_env,
    free_port,
    port_open,
    start_dev_server,
    start_worker,
    unique_queue,
    wait_ready,
)
from tests.workflows.harness import seed

TOKEN = "door-test-token-0123456789abcdef"
MAIN = """\
playbook: door-main
title: Door check
triggers: [{manual: {}}]
audience:
  segments: [strategic]
entry:
  cooldown: 30d
exit:
  on_events: [account.churned]
  close_open_tasks: true
steps:
  - id: kickoff
    task: {assign: owner, title: "Door check {{ account.name }}", due: 5 business days}
  - id: hold
    wait_for: {event: usage.feature_used, timeout: 7d}
"""
NO_MANUAL = """\
playbook: no-manual
title: Only by event
triggers: [{event: {type: custom.ping}}]
steps:
  - id: log
    note: {text: "pinged"}
"""
PARENT = """\
playbook: parent
title: Parent
triggers: [{manual: {}}]
steps:
  - id: enrol
    start_playbook: child
  - id: enrol-again
    start_playbook: child
"""
CHILD = """\
playbook: child
title: Child, started by a step only
triggers: [{event: {type: custom.never}}]
exit:
  on_events: [account.churned]
  close_open_tasks: true
steps:
  - id: kickoff
    task: {assign: owner, title: "Child {{ account.name }}", due: 2 business days}
  - id: hold
    wait_for: {event: usage.feature_used, timeout: 7d}
"""
CONFIG = """\
calendar:
  timezone: Europe/Berlin
  workdays: [mon, tue, wed, thu]
  holidays: ["2026-12-24"]
"""
ACCOUNTS = ("acme", "beta", "gamma", "delta", "smallco")


@dataclass
class Stack:
    env: dict[str, str]
    api: str
    address: str
    db_url: str

    def csops(self, *args: str) -> subprocess.CompletedProcess[str]:
        """The real command line against this stack."""
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], env=self.env, cwd=ROOT,
                              capture_output=True, text=True, timeout=60)

    def http(self, token: str | None = TOKEN) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.api, headers=headers, timeout=30)

    def runs(self, **query: str) -> list[dict[str, Any]]:
        with self.http() as h:
            answer = h.get("/v1/runs", params=query)
        assert answer.status_code == 200, answer.text
        runs: list[dict[str, Any]] = answer.json()["runs"]
        return runs

    def show(self, run_id: str) -> dict[str, Any]:
        done = self.csops("runs", "show", run_id, "--format", "json")
        assert done.returncode == 0, done.stderr
        shown: dict[str, Any] = json.loads(done.stdout)
        return shown

    def event(self, event_id: str, kind: str, account_id: str) -> None:
        with self.http() as h:
            answer = h.post("/v1/events", json={"id": event_id, "type": kind, "account_id": account_id,
                                                "occurred_at": "2026-12-01T10:00:00Z", "data": {}})
        assert answer.status_code == 202, answer.text

    def tasks(self, account_id: str) -> list[tuple[str, str]]:
        crm = SQLCRM(self.db_url)
        try:
            return [(t.title, t.status) for t in crm.list_tasks(account_id)]
        finally:
            crm.close()


def until(check: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.2)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("door")
    procs = Procs(tmp)
    try:
        db_url = f"sqlite:///{tmp / 'csops.db'}"
        crm = SQLCRM(db_url)
        try:
            seed(crm)
            base = Account(id="acme", name="Acme Corp", segment="strategic", lifecycle_stage="renew",
                           owner_id="u-csm", arr=120000.0)
            for account_id in ACCOUNTS[1:]:
                crm.add_account(Account(id=account_id, name=f"{account_id.title()} Inc",
                                        segment="smb" if account_id == "smallco" else base.segment,
                                        lifecycle_stage=base.lifecycle_stage, owner_id=base.owner_id, arr=base.arr))
        finally:
            crm.close()
        folder = tmp / "playbooks"
        folder.mkdir()
        for name, text in (("main", MAIN), ("no-manual", NO_MANUAL), ("parent", PARENT), ("child", CHILD)):
            (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
        (tmp / "csops.yaml").write_text(CONFIG, encoding="utf-8")
        port, api_port = free_port(), free_port()
        address = f"127.0.0.1:{port}"
        env = clean_env(CSOPS_TEMPORAL_ADDRESS=address, CSOPS_HOME=str(tmp / "home"), CSOPS_DATABASE_URL=db_url,
                        CSOPS_TASK_QUEUE=unique_queue("door"), CSOPS_PLAYBOOKS=str(folder),
                        CSOPS_CONFIG=str(tmp / "csops.yaml"), CSOPS_FALLBACK_OWNER="ops@example.com",
                        CSOPS_API_TOKEN=TOKEN, USER="tester")
        asyncio.run(start_dev_server(procs, tmp / "temporal.db", port, free_port()))
        worker = start_worker(procs, env)
        asyncio.run(wait_ready(worker))
        procs.start("api", [sys.executable, "-m", "engine.cli", "api", "--port", str(api_port)], env=env)
        until(lambda: port_open(api_port), "the API to listen")
        yield Stack(env=env, api=f"http://127.0.0.1:{api_port}", address=address, db_url=db_url)
    except BaseException:
        print(procs.logs())
        raise
    finally:
        procs.cleanup()


def started_calendar(stack: Stack, run_id: str) -> dict[str, Any]:
    """The calendar in the run's workflow input (its first history event)."""
    async def read() -> dict[str, Any]:
        client = await Client.connect(stack.address)
        history = await client.get_workflow_handle(run_id).fetch_history()
        payload = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
        calendar: dict[str, Any] = json.loads(payload.data)["calendar"]
        return calendar
    return asyncio.run(read())


def test_csops_start_is_recorded_reachable_and_on_the_calendar(stack: Stack) -> None:
    done = stack.csops("start", "door-main", "--account", "acme")
    assert (done.returncode, done.stdout.strip()) == (0, "started: pb:door-main:acme:once"), done.stderr
    run_id = "pb:door-main:acme:once"
    listed = stack.csops("runs", "--account", "acme")
    assert listed.returncode == 0 and f"{run_id}  running" in listed.stdout, listed.stdout
    assert [r["run_id"] for r in stack.runs(account="acme")] == [run_id]
    shown = stack.show(run_id)
    assert (shown["run"]["status"], shown["run"]["trigger"]["type"]) == ("running", "manual")
    assert started_calendar(stack, run_id) == {"timezone": "Europe/Berlin", "workdays": [0, 1, 2, 3],
                                               "holidays": ["2026-12-24"]}
    until(lambda: stack.tasks("acme") == [("Door check Acme Corp", "open")], "the run's task")

    again = stack.csops("start", "door-main", "--account", "acme")
    assert again.returncode == 1 and "already_active" in again.stderr, again.stderr

    # An event for the account reaches the run: account.churned is in exit.on_events.
    stack.event("door-churn-acme", "account.churned", "acme")
    until(lambda: stack.show(run_id)["run"]["status"] == "exited", "the run to exit on account.churned")
    assert [status for _, status in stack.tasks("acme")] != ["open"]

    # Within the cooldown: refused, naming the rule; forced with a reason: started and recorded.
    cooled = stack.csops("start", "door-main", "--account", "acme")
    assert cooled.returncode == 1 and "cooldown" in cooled.stderr and "--force" in cooled.stderr, cooled.stderr
    forced = stack.csops("start", "door-main", "--account", "acme", "--force", "--reason", "customer asked again")
    assert (forced.returncode, forced.stdout.strip()) == (0, "started: pb:door-main:acme:once (forced)"), forced.stderr
    text = stack.csops("runs", "show", run_id)
    assert "FORCED past cooldown: customer asked again" in text.stdout, text.stdout
    explained = stack.csops("explain", "--account", "acme", "--playbook", "door-main")
    assert explained.returncode == 0, explained.stderr
    assert "started (forced) started pb:door-main:acme:once, forced past cooldown" in explained.stdout
    assert "customer asked again" in explained.stdout

    # Cancel over the API finds it (it used to be a 404).
    with stack.http() as h:
        answer = h.post(f"/v1/runs/{run_id}/cancel", json={"reason": "test over"})
    assert (answer.status_code, answer.json()) == (202, {"run_id": run_id, "status": "cancelling"})


def test_csops_start_refuses_what_the_rules_refuse(stack: Stack) -> None:
    outside = stack.csops("start", "door-main", "--account", "smallco")
    assert outside.returncode == 1, outside.stderr
    assert "rule: audience_segment" in outside.stderr and "'smb'" in outside.stderr
    no_trigger = stack.csops("start", "no-manual", "--account", "acme")
    assert no_trigger.returncode == 1 and "no manual trigger" in no_trigger.stderr, no_trigger.stderr
    no_reason = stack.csops("start", "door-main", "--account", "smallco", "--force")
    assert no_reason.returncode == 2 and "needs a reason" in no_reason.stderr, no_reason.stderr
    assert stack.runs(account="smallco") == []
    with stack.http() as h:
        decisions = h.get("/v1/decisions", params={"account": "smallco"}).json()["decisions"]
    assert [(d["outcome"], d["reason"], d["signal"]["kind"]) for d in decisions] == [
        ("suppressed", "audience_segment", "manual")]


def test_post_runs_starts_through_the_same_door(stack: Stack) -> None:
    body = {"playbook": "door-main", "account_id": "beta", "by": "api-user"}
    with stack.http(token=None) as h:
        anonymous = h.post("/v1/runs", json=body)
    assert (anonymous.status_code, anonymous.json()["error"]["code"]) == (401, "unauthorized")
    with stack.http() as h:
        unknown_pb = h.post("/v1/runs", json={**body, "playbook": "nope"})
        unknown_acc = h.post("/v1/runs", json={**body, "account_id": "nobody"})
        first = h.post("/v1/runs", json=body)
        second = h.post("/v1/runs", json=body)
        outside = h.post("/v1/runs", json={**body, "account_id": "smallco"})
    assert (unknown_pb.status_code, unknown_pb.json()["error"]["code"]) == (404, "unknown_playbook")
    assert (unknown_acc.status_code, unknown_acc.json()["error"]["code"]) == (404, "unknown_account")
    assert first.status_code == 201, first.text
    assert first.json() == {"outcome": "started", "run_id": "pb:door-main:beta:once", "reason": "started",
                            "message": "started pb:door-main:beta:once"}
    assert second.status_code == 409
    assert second.json()["error"]["code"] == "start_suppressed"
    assert second.json()["error"]["details"] == {"reason": "already_active", "outcome": "suppressed",
                                                 "run_id": "pb:door-main:beta:once"}
    assert (outside.status_code, outside.json()["error"]["details"]["reason"]) == (409, "audience_segment")
    assert [r["run_id"] for r in stack.runs(account="beta")] == ["pb:door-main:beta:once"]
    assert started_calendar(stack, "pb:door-main:beta:once")["timezone"] == "Europe/Berlin"


def test_a_run_started_by_a_step_is_recorded_and_reachable(stack: Stack) -> None:
    done = stack.csops("start", "parent", "--account", "gamma")
    assert done.returncode == 0, done.stderr
    child = "pb:child:gamma:once"
    until(lambda: [r["run_id"] for r in stack.runs(account="gamma", playbook="child")] == [child],
          "the child run in GET /v1/runs")
    listed = stack.csops("runs", "--playbook", "child")
    assert f"{child}  running" in listed.stdout, listed.stdout
    shown = stack.show(child)
    assert shown["run"]["trigger"]["type"] == "start_playbook"
    assert shown["run"]["trigger"]["from"] == "parent" and shown["run"]["trigger"]["run"] == "pb:parent:gamma:once"
    until(lambda: stack.show("pb:parent:gamma:once")["run"]["status"] == "completed", "the parent to complete")
    with stack.http() as h:
        decisions = h.get("/v1/decisions", params={"account": "gamma", "playbook": "child"}).json()["decisions"]
    assert [(d["outcome"], d["reason"]) for d in decisions] == [("suppressed", "already_active"),
                                                               ("started", "started")]
    assert started_calendar(stack, child)["workdays"] == [0, 1, 2, 3]
    until(lambda: stack.tasks("gamma") == [("Child Gamma Inc", "open")], "the child's task")
    stack.event("door-churn-gamma", "account.churned", "gamma")
    until(lambda: stack.show(child)["run"]["status"] == "exited", "the child to exit on account.churned")
    assert [status for _, status in stack.tasks("gamma")] != ["open"]


def test_an_event_started_run_gets_the_configured_calendar(stack: Stack) -> None:
    stack.event("door-ping-delta", "custom.ping", "delta")
    until(lambda: [r["run_id"] for r in stack.runs(account="delta")] == ["pb:no-manual:delta:once"],
          "the event-started run in GET /v1/runs")
    assert started_calendar(stack, "pb:no-manual:delta:once") == {"timezone": "Europe/Berlin",
                                                                  "workdays": [0, 1, 2, 3],
                                                                  "holidays": ["2026-12-24"]}
