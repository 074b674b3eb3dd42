"""Where bench/runtime.py's CPU goes, side by side, measured deterministically enough for a loaded machine.

bench/runtime.py times both sides on the wall clock, which the Temporal server dominates. This
script takes its two sides apart and measures this process's CPU (``time.process_time``) per run
for each part, on the same stacks as bench/runtime.py builds (its dev server, workers, CRM,
ledger, playbook and baseline workflow):

- ``live``: whole runs through the dev server (starts, workers, activities, results), as the bench
  runs them, in alternating batches of CPU_RUNS per side (CPU_ROUNDS rounds);
- ``replay``: the workflow side alone: one recorded history of each side replayed CPU_REPLAYS times
  with ``Replayer`` on the same sandbox runner (interpreter, sandbox, the converter's encoding of
  commands and decoding of results);
- ``activity``: the activity side alone: the 4 ``add_note`` calls of one run, with the inputs the
  workflow sent (decoded by the data converter from the recorded history, and the outcome encoded),
  CPU_REPLAYS times on fresh keys;
- ``client``: starting a run and decoding its result, as the bench's starter does (encoding only:
  no server call).

Prints one JSON object on its last line: per side and part, milliseconds of CPU per run, and
``ratio_*`` = baseline/playbook for each part. With CPU_PROFILE=replay|activity the part is run
under cProfile and the top functions are printed too.

    .venv/bin/python bench/runtime_cpu.py

Instruction counts, which a loaded machine does not disturb: CPU_SAVE_HISTORIES=DIR saves the two
recorded histories (DIR/playbook.json, DIR/baseline.json); ``--replay SIDE FILE N`` then replays
FILE N times (after 3 more) and nothing else, so under callgrind the difference between two N
divided by their difference is the instructions of one replay (both sides replay the same way)::

    valgrind --tool=callgrind .venv/bin/python bench/runtime_cpu.py --replay playbook DIR/playbook.json 40
"""

import asyncio
import concurrent.futures
import cProfile
import json
import os
import pstats
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import runtime as rt  # noqa: E402 - the path first

RUNS = int(os.environ.get("CPU_RUNS", "100"))
ROUNDS = int(os.environ.get("CPU_ROUNDS", "3"))
REPLAYS = int(os.environ.get("CPU_REPLAYS", "200"))
PROFILE = os.environ.get("CPU_PROFILE", "")


class Profiled(concurrent.futures.ThreadPoolExecutor):
    """One worker thread whose tasks run under ``prof`` (cProfile sees only the thread it is enabled on)."""

    def __init__(self, prof: cProfile.Profile) -> None:
        super().__init__(max_workers=1)
        self.prof = prof

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        def run() -> Any:
            self.prof.enable()
            try:
                return fn(*args, **kwargs)
            finally:
                self.prof.disable()
        return super().submit(run)


def per_run(seconds: float, n: int) -> float:
    return round(1000 * seconds / n, 3)


async def cpu_of(label: str, n: int, work: Callable[[], Awaitable[Any]]) -> float:
    """Milliseconds of CPU per unit of ``work`` over ``n`` calls (profiled when asked)."""
    prof = cProfile.Profile() if PROFILE and PROFILE in label and PROFILE != "replay" else None
    c0 = time.process_time()
    if prof is not None:
        prof.enable()
    for _ in range(n):
        await work()
    if prof is not None:
        prof.disable()
    ms = per_run(time.process_time() - c0, n)
    if prof is not None:
        print(f"--- profile of {label} ({n} times) ---")
        pstats.Stats(prof).sort_stats("tottime").print_stats(35)
    return ms


async def measure(address: str, folder: Path) -> dict[str, Any]:
    from temporalio.client import Client
    from temporalio.converter import DataConverter
    from temporalio.worker import PollerBehaviorSimpleMaximum, Replayer, Worker
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from bench.runtime import BaselineInput, BaselineRun
    from engine.language.validate import check_text
    from engine.payloads.runtypes import NoteInput, RunOutcome, StepOutcome
    from engine.runtime.starter import start_run
    from engine.runtime.workflow import PlaybookRun, sandbox_runner

    playbook = check_text(rt.PLAYBOOK, "<bench>").playbook
    assert playbook is not None
    n_acc = max(RUNS, 20)
    accounts = [f"acct-{i:05d}" for i in range(n_acc)]
    (folder / "playbook").mkdir()
    (folder / "baseline").mkdir()
    _, _, pb_acts = rt.activities_for(folder / "playbook", accounts)
    _, _, base_acts = rt.activities_for(folder / "baseline", accounts)
    client = await Client.connect(address)
    base_runner = SandboxedWorkflowRunner(restrictions=sandbox_runner().restrictions.with_passthrough_modules("bench"))
    pollers = PollerBehaviorSimpleMaximum(20)  # as worker.py and bench/runtime.py have them
    pb_worker = Worker(client, task_queue="cpu-playbook", workflows=[PlaybookRun], activities=pb_acts.all(),
                       workflow_runner=sandbox_runner(), workflow_task_poller_behavior=pollers,
                       activity_task_poller_behavior=pollers)
    base_worker = Worker(client, task_queue="cpu-baseline", workflows=[BaselineRun], activities=[base_acts.add_note],
                         workflow_runner=base_runner, workflow_task_poller_behavior=pollers,
                         activity_task_poller_behavior=pollers)
    texts = [line.split('"')[1] for line in rt.PLAYBOOK.splitlines() if "note: {text:" in line]

    async def pb_batch(tag: str) -> None:
        async def one(acc: str) -> Any:
            outcome, run_id = await start_run(client, playbook, account_id=acc, task_queue="cpu-playbook",
                                              occurrence=tag)
            assert outcome == "started", outcome
            return client.get_workflow_handle(run_id, result_type=RunOutcome)
        handles = await asyncio.gather(*(one(a) for a in accounts[:RUNS]))
        for out in await asyncio.gather(*(h.result() for h in handles)):
            assert out.outcome == "completed", out

    async def base_batch(tag: str) -> None:
        def one(acc: str) -> Any:
            name = rt.account_name(acc)
            inp = BaselineInput(account_id=acc, texts=[t.replace("{{ account.name }}", name) for t in texts])
            return client.start_workflow(BaselineRun.run, inp, id=f"base:{acc}:{tag}", task_queue="cpu-baseline")
        handles = await asyncio.gather(*(one(a) for a in accounts[:RUNS]))
        for out in await asyncio.gather(*(h.result() for h in handles)):
            assert len(out) == 4, out

    figures: dict[str, Any] = {"runs": RUNS, "rounds": ROUNDS, "replays": REPLAYS}
    async with pb_worker, base_worker:
        await pb_batch("warm")
        await base_batch("warm")
        pb_hist = await client.get_workflow_handle(f"pb:bench-five-steps:{accounts[0]}:warm").fetch_history()
        base_hist = await client.get_workflow_handle(f"base:{accounts[0]}:warm").fetch_history()
        if os.environ.get("CPU_SAVE_HISTORIES"):  # for instruction counts of replays (--replay, below)
            for side, hist in (("playbook", pb_hist), ("baseline", base_hist)):
                Path(os.environ["CPU_SAVE_HISTORIES"], f"{side}.json").write_text(hist.to_json(), encoding="utf-8")
        live: dict[str, list[float]] = {"playbook": [], "baseline": []}
        for r in range(ROUNDS):
            order = [("playbook", pb_batch), ("baseline", base_batch)]
            for side, batch in order if r % 2 == 0 else order[::-1]:
                c0 = time.process_time()
                await batch(f"r{r}")
                live[side].append(per_run(time.process_time() - c0, RUNS))
        figures["live_ms"] = live

    # The workflow side alone: replays of one recorded run per side.
    # Profiled: the workflow code's thread (cProfile sees only the thread it is enabled on).
    pb_prof, base_prof = cProfile.Profile(), cProfile.Profile()
    profiled = PROFILE == "replay"
    pb_replayer = Replayer(workflows=[PlaybookRun], workflow_runner=sandbox_runner(),
                           workflow_task_executor=Profiled(pb_prof) if profiled else None)
    base_replayer = Replayer(workflows=[BaselineRun], workflow_runner=base_runner,
                             workflow_task_executor=Profiled(base_prof) if profiled else None)

    from temporalio.client import WorkflowHistory

    async def replay(replayer: Any, history: Any, n: int) -> None:
        """``n`` replays in one replayer worker (a worker per replay would cost more than the run)."""
        async def copies() -> Any:
            for i in range(n):
                yield WorkflowHistory(workflow_id=f"{history.workflow_id}-{i}", events=history.events)
        results = await replayer.replay_workflows(copies(), raise_on_replay_failure=True)
        assert not results.replay_failures

    await replay(pb_replayer, pb_hist, 20)  # warm both
    await replay(base_replayer, base_hist, 20)
    replay_pb = await cpu_of("replay playbook", 1, lambda: replay(pb_replayer, pb_hist, REPLAYS)) / REPLAYS
    replay_base = await cpu_of("replay baseline", 1, lambda: replay(base_replayer, base_hist, REPLAYS)) / REPLAYS
    if profiled:
        for side, prof in (("playbook", pb_prof), ("baseline", base_prof)):
            print(f"--- profile of the workflow thread, replay {side} ---")
            pstats.Stats(prof).sort_stats("tottime").print_stats(45)
            prof.dump_stats(f"{tempfile.gettempdir()}/runtime-cpu-replay-{side}.prof")

    # The activity side alone: the 4 add_note calls with the inputs each workflow sent.
    from temporalio.api.enums.v1 import EventType

    conv = DataConverter.default.payload_converter

    def inputs(history: Any) -> list[Any]:
        return [e.activity_task_scheduled_event_attributes.input.payloads for e in history.events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED]

    pb_inputs, base_inputs = inputs(pb_hist), inputs(base_hist)
    pb_note = pb_acts.all()[[a.__name__ for a in pb_acts.all()].index("add_note")]
    counter = [0]

    async def notes(payloads: list[Any], fn: Callable[[NoteInput], Awaitable[StepOutcome]]) -> None:
        counter[0] += 1
        for p in payloads:
            inp = conv.from_payloads(p, [NoteInput])[0]
            inp.key = f"{inp.key}/{counter[0]}"
            conv.to_payloads([await fn(inp)])

    act_pb = await cpu_of("activity playbook", REPLAYS, lambda: notes(pb_inputs, pb_note))
    act_base = await cpu_of("activity baseline", REPLAYS, lambda: notes(base_inputs, base_acts.add_note))

    # The client side: encoding a start (no server call) and decoding a result.
    from temporalio.api.common.v1 import Payloads

    def result_payloads(history: Any) -> Any:
        last = history.events[-1]
        return last.workflow_execution_completed_event_attributes.result.payloads

    pb_result, base_result = result_payloads(pb_hist), result_payloads(base_hist)
    from engine.payloads.runtypes import RULES, RunInput, as_json

    async def pb_client() -> None:
        inp = RunInput(playbook=dict(playbook.data), files=dict(playbook.files), version=playbook.version,
                       account_id="acct-00000", trigger={"type": "manual"}, calendar={}, rules=RULES)
        conv.to_payloads([as_json(inp)])
        conv.from_payloads(Payloads(payloads=pb_result).payloads, [RunOutcome])

    async def base_client() -> None:
        inp = BaselineInput(account_id="acct-00000", texts=[t.replace("{{ account.name }}", "x") for t in texts])
        conv.to_payloads([inp])
        conv.from_payloads(Payloads(payloads=base_result).payloads, [list[str]])

    cl_pb = await cpu_of("client playbook", REPLAYS * 10, pb_client)
    cl_base = await cpu_of("client baseline", REPLAYS * 10, base_client)

    figures.update({
        "live_median_ms": {s: round(statistics.median(v), 2) if v else 0.0 for s, v in live.items()},
        "replay_ms": {"playbook": replay_pb, "baseline": replay_base},
        "activity_ms": {"playbook": act_pb, "baseline": act_base},
        "client_ms": {"playbook": cl_pb, "baseline": cl_base},
    })
    for part in ("live_median_ms", "replay_ms", "activity_ms", "client_ms"):
        p, b = figures[part]["playbook"], figures[part]["baseline"]
        figures[f"ratio_{part.removesuffix('_ms').removesuffix('_median')}"] = round(b / p, 3) if p else None
    return figures


def replay_only(side: str, path: str, n: int) -> None:
    """Replay one saved history ``3 + n`` times on its side's runner."""
    from temporalio.client import WorkflowHistory
    from temporalio.worker import Replayer
    from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

    from bench.runtime import BaselineRun
    from engine.runtime.workflow import PlaybookRun, sandbox_runner

    history = WorkflowHistory.from_json("saved", Path(path).read_text(encoding="utf-8"))
    if side == "playbook":
        replayer = Replayer(workflows=[PlaybookRun], workflow_runner=sandbox_runner())
    else:
        replayer = Replayer(workflows=[BaselineRun], workflow_runner=SandboxedWorkflowRunner(
            restrictions=sandbox_runner().restrictions.with_passthrough_modules("bench")))

    async def copies() -> Any:
        for i in range(3 + n):
            yield WorkflowHistory(workflow_id=f"saved-{i}", events=history.events)

    asyncio.run(replayer.replay_workflows(copies()))


def main() -> int:
    if sys.argv[1:2] == ["--replay"]:
        replay_only(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-runtime-cpu-") as tmp:
        try:
            with rt.dev_server(Path(tmp)) as server:
                figures = asyncio.run(measure(server.address, Path(tmp)))
        except Exception as exc:  # noqa: BLE001 - report, stop the server, and exit without the core's abort
            traceback.print_exception(exc)
            return 1
    for part in ("live_median_ms", "replay_ms", "activity_ms", "client_ms"):
        print(f"runtime_cpu: {part:15s} playbook {figures[part]['playbook']:8.3f}  "
              f"baseline {figures[part]['baseline']:8.3f}")
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    status = main()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)  # temporalio's native core can abort at interpreter shutdown (sdk-python #300)
