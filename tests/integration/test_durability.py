"""Durability on real parts: a real ``temporal server start-dev`` (SQLite in WAL mode), real worker
processes (``python -m worker``), the built-in SQL CRM, the mail and chat outboxes and the ledger.

The playbook below makes five side effects per run (task, note, email, alert, note) around two
waits: ``go-ahead`` waits for an event the test sends, which gives a deterministic point where every
run has done some but not all of its effects and nothing is in flight; ``pause`` is a short durable
timer (a few seconds, from the run's trigger). Processes are killed or restarted only while every
run is idle at one of them: an activity in flight on a SIGKILLed worker is retried only after its
2 minute start-to-close timeout (engine/runtime/workflow.py TIMEOUT), far longer than a test may take. The
one test that kills a worker inside an activity (between the effect and its ledger record) pins
the worker there with file and database locks, and fails the dead attempt through the server.

Every test checks that each effect exists exactly once: the task in the CRM, both notes, the .eml
file in the mail outbox, the line in chat.jsonl, and one ledger entry each (plus a plan entry per
email or alert step).
"""

from __future__ import annotations

import asyncio
import dataclasses
import fcntl
import json
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from temporalio.api.enums.v1 import PendingActivityState, PendingWorkflowTaskState
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from connectors.base import Contact
from connectors.ledger import Ledger
from connectors.outbox import ChatOutbox, EmailOutbox
from connectors.sqlcrm import SQLCRM
from connectors.sqlcrm_models import AccountRow
from engine.config.settings import Settings
from engine.payloads.runtypes import Event, RunOutcome, RunStatus
from engine.runtime.starter import connect, load_playbooks, start_run
from engine.runtime.workflow import PlaybookRun
from tests.integration.procs import (
    Clock,
    Proc,
    Procs,
    children,
    clean_env,
    cmdline,
    descendants,
    free_port,
    idle,
    lock_waiters,
    now,
    pending_timers,
    pid_running,
    port_open,
    start_dev_server,
    start_worker,
    unique_queue,
    wait_for_frontend,
    wait_ready,
    wait_until,
)
from tests.workflows.harness import seed

pytestmark = pytest.mark.asyncio

PAUSE = 8.0
"""Seconds of the durable timer of the ``pause`` step."""
MARGIN = 4.0
"""A process is stopped during ``pause`` only while every timer is due at least this far ahead (a
dev server's graceful stop takes ~1.5 s; a timer firing during it would start activities that the
stop strands until their 2 minute timeout)."""

DURABILITY = """\
playbook: durability
title: Durability check
triggers: [{manual: {}}]
steps:
  - id: kickoff
    task: {assign: owner, title: "Kick off {{ account.name }}", due: 5 business days}
  - id: log-start
    note: {text: "Started for {{ account.name }}"}
  - id: go-ahead
    wait_for: {event: usage.feature_used, timeout: 7d}
  - id: pause
    wait: {until: now + days(trigger.pause_days)}
  - id: welcome
    email:
      to: primary_contact
      subject: "Welcome {{ contact.first_name }} of {{ account.name }}"
      body: "Hello from {{ account.owner.name }}"
  - id: risk
    alert: {to: ["#cs-risk"], text: "{{ account.name }}: durability check"}
  - id: wrap-up
    note: {text: "Done for {{ account.name }}"}
"""

QUICK = """\
playbook: quick
title: Quick check
triggers: [{manual: {}}]
steps:
  - id: kickoff
    task: {assign: owner, title: "Kick off {{ account.name }}", due: 5 business days}
  - id: log-start
    note: {text: "Started for {{ account.name }}"}
  - id: welcome
    email: {to: primary_contact, subject: "Welcome {{ contact.first_name }} of {{ account.name }}", body: "Hello"}
  - id: risk
    alert: {to: ["#cs-risk"], text: "{{ account.name }}: durability check"}
  - id: wrap-up
    note: {text: "Done for {{ account.name }}"}
"""

ACCOUNTS = ("acme", "beta", "gamma")
NAMES = {"acme": "Acme Corp"}


def name_of(account_id: str) -> str:
    return NAMES.get(account_id, f"{account_id.title()} Inc")


def contact_of(account_id: str) -> str:
    """The primary contact's email (harness.seed gives acme pat@acme.example)."""
    return f"pat@{account_id}.example"


def seed_crm(url: str, accounts: tuple[str, ...]) -> None:
    """harness.seed (users, acme and its contacts), plus a copy of acme per further account."""
    crm = SQLCRM(url)
    try:
        seed(crm)
        row = crm.db.call(lambda s: s.get(AccountRow, "acme"))
        assert row is not None
        acme = row.record()
        for account_id in accounts:
            if account_id == "acme":
                continue
            crm.add_account(dataclasses.replace(acme, id=account_id, name=name_of(account_id)))
            crm.add_contact(Contact(id=f"c-{account_id}", account_id=account_id, email=contact_of(account_id),
                                    first_name="Pat", last_name="Lee", role="champion", primary=True))
    finally:
        crm.close()


@dataclass
class Site:
    """One test's world: its state folder, CRM database, playbooks and task queue."""

    home: Path
    db_url: str
    playbooks: Path
    queue: str
    port: int
    procs: Procs

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        return clean_env(CSOPS_TEMPORAL_ADDRESS=self.address, CSOPS_HOME=str(self.home),
                         CSOPS_DATABASE_URL=self.db_url, CSOPS_TASK_QUEUE=self.queue,
                         CSOPS_PLAYBOOKS=str(self.playbooks), CSOPS_FALLBACK_OWNER="ops@example.com",
                         CSOPS_LOG_LEVEL="INFO")

    def settings(self) -> Settings:
        return Settings.from_env(self.env())

    async def worker(self) -> Proc:
        proc = start_worker(self.procs, self.env())
        await wait_ready(proc)
        return proc

    async def start_runs(self, client: Client, playbook: str, accounts: tuple[str, ...],
                         pause: float = PAUSE) -> list[WorkflowHandle[Any, Any]]:
        pb = load_playbooks(self.playbooks)[playbook]
        handles = []
        for account_id in accounts:
            outcome, run_id = await start_run(client, pb, account_id=account_id, task_queue=self.queue,
                                              trigger={"type": "manual", "pause_days": pause / 86400})
            assert outcome == "started", (outcome, run_id)
            handles.append(client.get_workflow_handle(run_id, result_type=RunOutcome))
        return handles


def make_site(tmp_path: Path, procs: Procs, accounts: tuple[str, ...] = ACCOUNTS, home: Path | None = None,
              db_url: str = "") -> Site:
    home = home or tmp_path / "home"
    db_url = db_url or f"sqlite:///{tmp_path / 'crm.db'}"
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "durability.yaml").write_text(DURABILITY, encoding="utf-8")
    (playbooks / "quick.yaml").write_text(QUICK, encoding="utf-8")
    assert set(load_playbooks(playbooks)) == {"durability", "quick"}
    seed_crm(db_url, accounts)
    return Site(home=home, db_url=db_url, playbooks=playbooks, queue=unique_queue(tmp_path.name), port=free_port(),
                procs=procs)


# --- waiting for runs ---------------------------------------------------------------------------

async def all_at(handles: list[WorkflowHandle[Any, Any]], step: str, timeout: float = 60.0) -> None:
    """Until every run is idle at ``step``: blocked on its timer or event, nothing in flight."""
    async def check() -> bool:
        for h in handles:
            status: RunStatus = await h.query(PlaybookRun.status)
            if status.current_step != step or not await idle(h):
                return False
        return True
    await wait_until(check, timeout, f"every run to wait at step {step}", interval=0.1)


async def timers_due(handles: list[WorkflowHandle[Any, Any]]) -> list[float]:
    """Seconds until each run's one pending timer fires (negative: overdue)."""
    due = []
    for h in handles:
        timers = await pending_timers(h)
        assert len(timers) == 1, (h.id, timers)
        due.append((timers[0] - now()).total_seconds())
    return due


async def signal_go_ahead(handles: list[WorkflowHandle[Any, Any]]) -> None:
    for h in handles:
        account_id = h.id.split(":")[2]
        await h.signal("deliver_event", Event(id=f"go-{account_id}", type="usage.feature_used",
                                              account_id=account_id, data={"feature": "dashboards"}))


async def results(handles: list[WorkflowHandle[Any, Any]], timeout: float = 60.0) -> list[RunOutcome]:
    outs = await asyncio.wait_for(asyncio.gather(*(h.result() for h in handles)), timeout)
    for h in handles:
        assert (await h.describe()).status == WorkflowExecutionStatus.COMPLETED, h.id
    return list(outs)


# --- effects --------------------------------------------------------------------------------------

@dataclass
class Effects:
    tasks: dict[str, list[str]]
    notes: dict[str, list[str]]
    mails: list[tuple[str, str, str]]
    """(To, Subject, idempotency key) per .eml file."""
    chat: list[tuple[str, str, str]]
    """(channel, text, idempotency key) per line of chat.jsonl."""
    chat_lines: int
    ledger: int


def effects(site: Site, accounts: tuple[str, ...]) -> Effects:
    crm, ledger = SQLCRM(site.db_url), Ledger(site.db_url)
    try:
        tasks = {a: [t.title for t in crm.list_tasks(a)] for a in accounts}
        notes = {a: [n.text for n in crm.list_notes(a)] for a in accounts}
        count = ledger.count()
    finally:
        crm.close()
        ledger.close()
    mail_dir = site.home / "outbox" / "mail"
    mails = ([(str(m["To"]), str(m["Subject"]), str(m["X-Csops-Idempotency-Key"]))
              for m in EmailOutbox(mail_dir).messages()] if mail_dir.exists() else [])
    chat_file = site.home / "outbox" / "chat.jsonl"
    chat = [(m["channel"], m["text"], m["idempotency_key"]) for m in ChatOutbox(chat_file).messages()]
    lines = len(chat_file.read_bytes().splitlines()) if chat_file.exists() else 0
    return Effects(tasks=tasks, notes=notes, mails=mails, chat=chat, chat_lines=lines, ledger=count)


def assert_halfway(site: Site, accounts: tuple[str, ...]) -> None:
    """The first two effects of every run, and none of the last three."""
    got = effects(site, accounts)
    assert got.tasks == {a: [f"Kick off {name_of(a)}"] for a in accounts}
    assert got.notes == {a: [f"Started for {name_of(a)}"] for a in accounts}
    assert (got.mails, got.chat, got.ledger) == ([], [], 2 * len(accounts))


def assert_exactly_once(site: Site, accounts: tuple[str, ...], playbook: str = "durability") -> None:
    got = effects(site, accounts)
    assert got.tasks == {a: [f"Kick off {name_of(a)}"] for a in accounts}
    assert got.notes == {a: [f"Started for {name_of(a)}", f"Done for {name_of(a)}"] for a in accounts}
    assert sorted(got.mails) == sorted(
        (contact_of(a), f"Welcome Pat of {name_of(a)}",
         f"pb:{playbook}:{a}:once/welcome/{'c-1' if a == 'acme' else 'c-' + a}") for a in accounts)
    assert sorted(got.chat) == sorted(("cs-risk", f"{name_of(a)}: durability check", f"pb:{playbook}:{a}:once/risk/0.0")
                                      for a in accounts)
    assert got.chat_lines == len(accounts)
    # One entry per effect (task, 2 notes, mail, chat message) plus the recorded plans of the email
    # and alert steps (what to send to whom, kept for a retry).
    assert got.ledger == 7 * len(accounts)


def assert_completed(outs: list[RunOutcome]) -> None:
    assert [(o.outcome, o.reason) for o in outs] == [("completed", "all steps done")] * len(outs)


# --- A: SIGKILL the worker in the middle of the runs -------------------------------------------

async def test_worker_sigkill_mid_run_resumes_on_a_new_worker(tmp_path: Path, procs: Procs) -> None:
    clock = Clock()
    site = make_site(tmp_path, procs)
    await start_dev_server(procs, tmp_path / "temporal.db", site.port, free_port())
    client = await connect(site.settings())
    first = await site.worker()
    clock("dev server and worker 1 up")
    handles = await site.start_runs(client, "durability", ACCOUNTS)

    # Kill 1: every run has made its task and first note and waits for its event.
    await all_at(handles, "go-ahead")
    clock("every run waits at go-ahead")
    assert_halfway(site, ACCOUNTS)
    await first.kill9()
    clock("worker 1 SIGKILLed")
    await signal_go_ahead(handles)  # taken by the server while no worker runs

    # Kill 2: a new worker replays the runs, takes the event and starts the durable timer.
    second = await site.worker()
    clock("worker 2 up")
    await all_at(handles, "pause")
    due = await timers_due(handles)
    clock(f"every run waits at pause; timers due in {min(due):.2f}..{max(due):.2f} s")
    assert min(due) > MARGIN, "the runs reached their timer too late to kill the worker first"
    assert_halfway(site, ACCOUNTS)
    await second.kill9()
    clock("worker 2 SIGKILLed")
    # The timers fire on the server while no worker runs at all.
    await wait_until(lambda: _no_timers(handles), PAUSE + 30, "every timer to fire with no worker", interval=0.2)
    clock("every timer fired")

    third = await site.worker()
    clock("worker 3 up")
    assert_completed(await results(handles))
    clock("every run completed")
    assert_exactly_once(site, ACCOUNTS)
    third.signal(signal.SIGTERM)
    assert await third.wait_exit(10) == 0
    clock("worker 3 stopped")


async def _no_timers(handles: list[WorkflowHandle[Any, Any]]) -> bool:
    return all([not await pending_timers(h) for h in handles])


async def test_worker_sigkill_between_an_effect_and_its_ledger_record(tmp_path: Path, procs: Procs) -> None:
    """The case the connectors' own dedupe exists for: the alert is in chat.jsonl, the worker dies
    before the ledger records it, and the retried activity must not post it again.

    Two locks pin the worker there: the chat file's flock holds the alert until the worker waits
    for it (seen in /proc/locks), then the CRM database's write lock holds the ledger record after
    the line is written. The dead attempt is failed through the server (what its 2 minute timeout
    would do later), and the retry runs on a new worker.
    """
    clock = Clock()
    site = make_site(tmp_path, procs, ("acme",))
    await start_dev_server(procs, tmp_path / "temporal.db", site.port, free_port())
    client = await connect(site.settings())
    chat_file = site.home / "outbox" / "chat.jsonl"
    chat_file.parent.mkdir(parents=True)
    key = "pb:quick:acme:once/risk/0.0"
    db = sqlite3.connect(str(tmp_path / "crm.db"), isolation_level=None)
    try:
        with chat_file.open("a+b") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            worker = await site.worker()
            [handle] = await site.start_runs(client, "quick", ("acme",))
            await wait_until(lambda: worker.pid in lock_waiters(chat_file), 60, "the alert to wait for chat.jsonl")
            clock("the alert waits for the chat file")
            db.execute("BEGIN IMMEDIATE")  # from now on the ledger cannot record anything
        # The flock is released: the line gets written, then the ledger record waits for the database.
        await wait_until(lambda: chat_file.read_bytes().endswith(b"\n"), 30, "the alert in chat.jsonl")
        await worker.kill9()
        clock("alert written, worker SIGKILLed before its ledger record")
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert await _ledger_get(site, key) is None
    [line] = ChatOutbox(chat_file).messages()
    assert line["idempotency_key"] == key

    [pending] = (await handle.describe()).raw_description.pending_activities
    assert pending.activity_type.name == "send_alert" and pending.attempt == 1
    await site.worker()
    await client.get_async_activity_handle(workflow_id=handle.id, run_id=None, activity_id=pending.activity_id).fail(
        RuntimeError("the worker running this attempt was SIGKILLed"))
    [out] = await results([handle])
    clock("the retried alert and the rest of the run are done")
    assert_completed([out])
    assert_exactly_once(site, ("acme",), playbook="quick")
    assert out.steps["risk"].result == [line["id"]]  # the retry returned the first post's id
    assert await _ledger_get(site, key) == line["id"]


async def _ledger_get(site: Site, key: str) -> Any:
    ledger = Ledger(site.db_url)
    try:
        return await ledger.get(key)
    finally:
        ledger.close()


# --- B: restart the dev server while the runs wait ----------------------------------------------

@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
async def test_server_restart_loses_no_run(tmp_path: Path, procs: Procs, stop: signal.Signals) -> None:
    clock = Clock()
    accounts = (*ACCOUNTS, "delta", "epsilon")
    site = make_site(tmp_path, procs, accounts)
    db, ui_port = tmp_path / "temporal.db", free_port()
    server = await start_dev_server(procs, db, site.port, ui_port)
    client = await connect(site.settings())
    worker = await site.worker()
    clock("dev server and worker up")
    handles = await site.start_runs(client, "durability", accounts)

    # Restart 1, while every run waits for its event.
    await all_at(handles, "go-ahead")
    clock("every run waits at go-ahead")
    assert_halfway(site, accounts)
    server.signal_group(stop)
    await server.wait_exit(30)
    clock(f"dev server stopped ({stop.name})")
    assert not port_open(site.port)
    server = await start_dev_server(procs, db, site.port, ui_port)
    clock("dev server up again")
    await signal_go_ahead(handles)

    # Restart 2, while every run waits on its timer, and stay down until every timer is overdue.
    await all_at(handles, "pause")
    due = await timers_due(handles)
    clock(f"every run waits at pause; timers due in {min(due):.2f}..{max(due):.2f} s")
    assert min(due) > MARGIN, "the runs reached their timer too late to stop the server first"
    server.signal_group(stop)
    await server.wait_exit(30)
    clock(f"dev server stopped ({stop.name})")
    overdue_at = time.monotonic() + max(due) + 0.5
    await wait_until(lambda: time.monotonic() > overdue_at, max(due) + 5, "the timers to be due")
    assert_halfway(site, accounts)
    await start_dev_server(procs, db, site.port, ui_port)
    clock("dev server up again, every timer overdue")

    assert_completed(await results(handles))
    clock("every run completed")
    assert_exactly_once(site, accounts)
    # Visibility (the server's list of runs) agrees once it has caught up: nothing lost, nothing extra.
    expected = {h.id: WorkflowExecutionStatus.COMPLETED for h in handles}

    async def listed() -> bool:
        return {w.id: w.status async for w in client.list_workflows(f"TaskQueue = '{site.queue}'")} == expected
    await wait_until(listed, 30, f"the list of runs to be {expected}", interval=0.2)
    assert worker.alive(), f"the worker died while the server was down:\n{worker.log_text()[-3000:]}"
    worker.signal(signal.SIGTERM)
    assert await worker.wait_exit(10) == 0


# --- C: a worker stops gracefully on SIGTERM ----------------------------------------------------

@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "sigint"])
async def test_worker_stops_within_10s_with_status_0(tmp_path: Path, procs: Procs, sig: signal.Signals) -> None:
    site = make_site(tmp_path, procs, ("acme",))
    await start_dev_server(procs, tmp_path / "temporal.db", site.port, free_port())
    client = await connect(site.settings())
    worker = await site.worker()
    handles = await site.start_runs(client, "durability", ("acme",), pause=0)
    await all_at(handles, "go-ahead")  # the worker holds the run in its cache

    started = time.monotonic()
    worker.signal(sig)
    assert await worker.wait_exit(10) == 0, worker.log_text()[-3000:]
    took = time.monotonic() - started
    print(f"the worker exited {took:.2f} s after {sig.name}")
    assert took < 10

    # Nothing was lost: the next worker finishes the run.
    await signal_go_ahead(handles)
    await site.worker()
    assert_completed(await results(handles))
    assert_exactly_once(site, ("acme",))


async def test_worker_stops_within_10s_while_an_activity_is_stuck(tmp_path: Path, procs: Procs) -> None:
    site = make_site(tmp_path, procs, ("acme",))
    await start_dev_server(procs, tmp_path / "temporal.db", site.port, free_port())
    client = await connect(site.settings())
    worker = await site.worker()
    # Another writer holds the CRM database: every activity waits for it (SQLite busy timeout, 30 s).
    lock = sqlite3.connect(str(tmp_path / "crm.db"), isolation_level=None)
    try:
        lock.execute("BEGIN IMMEDIATE")
        [handle] = await site.start_runs(client, "quick", ("acme",))

        async def running() -> bool:
            # load_context is a local activity: while it is stuck the workflow task shows as started
            raw = (await handle.describe()).raw_description
            acts = raw.pending_activities
            task = raw.pending_workflow_task
            return (bool(acts) and acts[0].state == PendingActivityState.PENDING_ACTIVITY_STATE_STARTED) or (
                raw.HasField("pending_workflow_task")
                and task.state == PendingWorkflowTaskState.PENDING_WORKFLOW_TASK_STATE_STARTED)
        await wait_until(running, 30, "an activity to be running")
        started = time.monotonic()
        worker.signal(signal.SIGTERM)
        code = await worker.wait_exit(10)
        print(f"the worker exited with {code} {time.monotonic() - started:.2f} s after SIGTERM")
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert code == 0


# --- D: csops up -----------------------------------------------------------------------------------

async def test_csops_up_runs_a_playbook_and_stops_everything_on_ctrl_c(tmp_path: Path, procs: Procs) -> None:
    clock = Clock()
    home = tmp_path / "home"
    site = make_site(tmp_path, procs, ("acme",), home=home, db_url=f"sqlite:///{home}/csops.db")
    ui_port, api_port = free_port(), free_port()
    env = clean_env(CSOPS_HOME=str(home), CSOPS_TASK_QUEUE=site.queue, CSOPS_PLAYBOOKS=str(site.playbooks),
                    CSOPS_FALLBACK_OWNER="ops@example.com")
    up = procs.start("csops-up", [sys.executable, "-m", "engine.cli", "up", "--port", str(site.port),
                                  "--ui-port", str(ui_port), "--api-port", str(api_port)], env=env)
    kids = await wait_until(lambda: len(children(up.pid)) >= 3 and children(up.pid), 60,
                            "csops up to start the dev server, the worker and the API")
    for pid in kids:
        procs.adopt(pid)  # they lead sessions of their own: cleanup kills their groups too
    assert up.alive(), up.log_text()
    commands = [cmdline(pid) for pid in kids]
    assert len(commands) == 3, commands
    assert any("server start-dev" in c and f"--db-filename {home}/temporal.db" in c for c in commands), commands
    assert any(c.endswith("-m worker") for c in commands), commands
    assert any(f"engine.cli api --host 127.0.0.1 --port {api_port}" in c for c in commands), commands
    await wait_until(lambda: port_open(api_port), 30, "the API to listen")

    # csops up records what it serves; the other commands use it, and say so, without being told.
    assert json.loads((home / "stack.json").read_text()) == {
        "pid": up.pid, "temporal_address": f"127.0.0.1:{site.port}", "api_url": f"http://127.0.0.1:{api_port}",
        "ui_url": f"http://127.0.0.1:{ui_port}"}
    listed = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "engine.cli", "runs"], text=True,
                                     capture_output=True, timeout=60, env=clean_env(
                                         CSOPS_HOME=str(home), CSOPS_DATABASE_URL=f"sqlite:///{home}/csops.db"))
    assert listed.returncode == 0, listed.stderr
    assert listed.stderr == (f"csops runs: using Temporal at 127.0.0.1:{site.port}, API http://127.0.0.1:{api_port} "
                             f"(from the csops up running here, pid {up.pid} ({home}/stack.json))\n")

    client = await wait_for_frontend(site.address)
    clock(f"csops up serves (children {kids})")
    [handle] = await site.start_runs(client, "quick", ("acme",))
    assert_completed(await results([handle]))
    clock("the run completed")
    assert_exactly_once(site, ("acme",), playbook="quick")
    assert (home / "temporal.db").exists()

    # A second csops up on the same port fails fast, and leaves the first one running.
    started = time.monotonic()
    second_env = clean_env(CSOPS_HOME=str(tmp_path / "h2"), CSOPS_TASK_QUEUE=unique_queue("second-up"))
    second = procs.start("csops-up-2", [sys.executable, "-m", "engine.cli", "up", "--port", str(site.port),
                                        "--ui-port", str(free_port()), "--api-port", str(free_port())],
                         env=second_env)
    assert await second.wait_exit(30) == 2, second.log_text()
    assert time.monotonic() - started < 10
    assert f"port {site.port} is in use" in second.log_text()
    assert up.alive()
    clock("a second csops up on the same port exited with 2")

    # Ctrl-C stops csops up, the dev server, the worker and the API.
    everything = [up.pid, *descendants(up.pid)]
    started = time.monotonic()
    up.signal(signal.SIGINT)
    assert await up.wait_exit(15) == 130, up.log_text()
    assert time.monotonic() - started < 2.5, "Ctrl-C is answered within 2 s"
    assert not (home / "stack.json").exists()
    await wait_until(lambda: not any(pid_running(p) for p in everything), 15 - (time.monotonic() - started),
                     f"{everything} to be gone")
    clock(f"SIGINT: csops up and {everything} are gone")
    assert "csops up: stopped" in up.log_text()
    assert not port_open(site.port) and not port_open(api_port)


