"""Event ingestion throughput of the HTTP API: POST /v1/events against one API process.

The script runs the API over a temporary SQLite store with its accounts in the built-in CRM and no
playbooks (so processing claims the events, finds no run to deliver to and no trigger listening, and
marks them done), each on a free port with one uvicorn worker, in the shapes it is deployed in:

- as shipped (``csops api``, the default, December 2026 on): the ``csops api`` command itself, whose
  API process stores and answers while the event processing child it starts (``csops process
  --for-api``, engine/cli/apichild.py) processes. Its CPU figure is both processes' (and each's);
- in process (``csops api --processing in-process``, the default before): the command itself, with
  the processing loop in the API process, sharing its GIL;
- split (``csops api --no-processing`` + ``csops process``, the shape for more API processes:
  docs/operations.md, Sizing): the API (engine/api/app.py built in bench/ingest_servers.py) only
  stores, and a processor process beside it, on the same store, processes. Every event must be
  marked processed exactly once (checked at the end).

To each it posts EVENTS events in batches of BATCH over CLIENTS concurrent httpx connections, then
SINGLES events one per request. It measures events accepted per second (every event must come back
``accepted``) and the latency of each request (p50, p99), and for the split shape events processed
per second, from the first post of a turn to the end of its drain.

The load generator is kept out of what is measured, alike for every server: the bodies are encoded
and the CLIENTS httpx clients built before a turn's clock starts. Until December 2026 each turn
built its clients inside the clock, and each httpx client loads the CA bundle into a TLS context
(~45 ms of CPU, even for plain http): about a third of a second of every turn, which on 2 cores
held every server's rate, the baseline's too, under 10,000 events/s. What is posted and checked is
unchanged (each answer's status and its count of accepted events).

Baseline, in the same run, over the same client: a bare FastAPI app in its own uvicorn process
whose POST /v1/events parses the JSON body and does one insert of its events into the same store
(engine.store.store.Store, its events table, ``add_events``, over its own temporary SQLite file
like the API's: the API's own insert, engine/store/eventinsert.py, so a cheaper store makes the
baseline faster too) and answers 202 with a count: no token check, no validation, no per-event
answers, no background processing. ``single_ratio`` is ``csops api``'s single events accepted per
second (one event per request) over the baseline's (issue 12: target >= 0.8); ``ratio`` the same
for batches (the batch target is events_per_s >= 10,000); ``inprocess_*`` and ``split_*`` the same
figures for the other shapes. What the API adds: the bearer check, the hostile-input checks of the
body, validation, group commit, the CRM account check, the per-event answers, and its processing
(in its child, its own process, or the processor).

All servers run at once and take turns over ROUNDS rounds (see ``bench``), so the load of a busy
machine falls on all alike; the processing catches up after each API turn, inside the turn's CPU
count but outside its clock.

The last line of output is a JSON object: events_per_s (batches), ratio, single_events_per_s,
baseline_single_events_per_s, single_ratio, drain_s, the servers' CPU time per event (``*cpu_us_per_event``:
less noisy than rates on a shared machine; ``csops api``'s is its API process and processing child
together, with ``api_cpu_us_per_event`` and ``child_cpu_us_per_event`` each), the same for the other
shapes (``inprocess_*``; ``split_*`` and ``processor_*``), ``shapes`` saying which figures are which,
and the rest. The servers are stopped on exit, also on error.

    .venv/bin/python -m bench.ingest [--events 20000] [--batch 100] [--clients 8] [--singles 2000] [--rounds 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from bench.ingest_servers import TOKEN, csops_api, process_events, serve

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port



class Server:
    """One server subprocess, stopped on exit: ``csops api`` itself (``api``: as shipped, ``api-inprocess``: with
    --processing in-process), or a server of bench/ingest_servers.py (``api-split``, ``baseline``)."""

    def __init__(self, kind: str, database_url: str, folder: Path) -> None:
        self.port = free_port()
        if kind in CSOPS_API:
            cmd, env = csops_api(self.port, database_url, folder / kind, CSOPS_API[kind])
            # Its lines (and its child's) say it started and stopped: not the bench's output.
            self.proc = subprocess.Popen(cmd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        else:
            self.proc = subprocess.Popen([sys.executable, "-m", "bench.ingest", "--serve", kind, "--port",
                                          str(self.port), "--database-url", database_url], stdin=subprocess.DEVNULL)
        self.children: list[int] = []
        """Its child processes once it serves (``csops api``'s event processing child)."""

    def cpu(self) -> tuple[float, float]:
        """CPU seconds so far of the server process and of its children."""
        return cpu_seconds(self.proc.pid), sum(cpu_seconds(pid) for pid in self.children)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient() as client:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the server exited with status {self.proc.returncode}")
                try:
                    if (await client.get(f"{self.url}/v1/health")).status_code == 200:
                        self.children = children(self.proc.pid)
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.1)  # the server's own startup: nothing to wait on but the port
        raise RuntimeError(f"the server did not answer within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --- the load ----------------------------------------------------------------------------------------

def make_events(n: int, prefix: str) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}-{i}", "type": "nps.submitted", "account_id": f"acct-{i % 500}",
             "occurred_at": "2026-11-23T09:00:00Z", "data": {"score": i % 11, "comment": "fine"}} for i in range(n)]


async def post_all(url: str, bodies: list[bytes], clients: int, expect: list[int]) -> tuple[float, list[float], int]:
    """Post every body over ``clients`` connections; (seconds, latencies in ms, events accepted)."""
    queue: asyncio.Queue[tuple[bytes, int]] = asyncio.Queue()
    for body, n in zip(bodies, expect, strict=True):
        queue.put_nowait((body, n))
    latencies: list[float] = []
    accepted = 0
    headers = {**AUTH, "Content-Type": "application/json"}

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal accepted
        while not queue.empty():
            body, n = queue.get_nowait()
            began = time.perf_counter()
            r = await http.post("/v1/events", content=body, headers=headers)
            latencies.append((time.perf_counter() - began) * 1000)
            if r.status_code != 202 or r.json()["accepted"] != n:
                raise RuntimeError(f"expected {n} accepted, got {r.status_code} {r.text[:300]}")
            accepted += n

    # The clients are made before the clock starts: each builds a TLS context (~45 ms of CPU, loading the
    # CA bundle) even for plain http, which took a third of a second from every turn, alike for every server.
    https = [httpx.AsyncClient(base_url=url, timeout=60.0) for _ in range(clients)]
    try:
        began = time.perf_counter()
        await asyncio.gather(*(client(http) for http in https))
        return time.perf_counter() - began, latencies, accepted
    finally:
        for http in https:
            await http.aclose()


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


async def drained(database: Path, timeout: float = 300.0) -> float:
    """Wait until the API's processing loop has processed every stored event; the seconds it took."""
    began = time.perf_counter()
    with sqlite3.connect(database, timeout=30) as conn:
        queued = "SELECT count(*) FROM events WHERE processed_at IS NULL AND failed_at IS NULL"
        while conn.execute(queued).fetchone()[0]:
            if time.perf_counter() - began > timeout:
                raise RuntimeError(f"the API did not process its queue within {timeout:.0f} s")
            await asyncio.sleep(0.1)  # another process's queue: nothing to wait on but its table
    return time.perf_counter() - began


class Phase:
    """One kind of load against one server, summed over the rounds."""

    def __init__(self) -> None:
        self.seconds, self.accepted, self.latencies, self.cpu = 0.0, 0, list[float](), 0.0

    def add(self, figures: tuple[float, list[float], int]) -> None:
        self.seconds += figures[0]
        self.latencies += figures[1]
        self.accepted += figures[2]

    @property
    def per_s(self) -> int:
        return round(self.accepted / self.seconds) if self.seconds else 0

    @property
    def cpu_us(self) -> int:
        """The server's CPU time (all its threads) per accepted event, in µs."""
        return round(self.cpu / self.accepted * 1e6) if self.accepted else 0


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    """The processes whose parent is ``pid`` (Linux /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rpartition(")")[2].split()[1]) == pid:
                found.append(int(entry.name))
        except OSError:  # gone meanwhile
            pass
    return found


CSOPS_API = {"api": "child", "api-inprocess": "in-process"}
"""The servers that are ``csops api`` itself, and the --processing each runs with."""

SHAPES = {"default": "events_per_s, ratio, single_*, drain_s, cpu_us_per_event: csops api as shipped, the API "
                     "process with its event processing child (--processing child); cpu_us_per_event is both "
                     "processes' CPU, api_cpu_us_per_event the API's alone, child_cpu_us_per_event the child's",
          "in_process": "inprocess_*: csops api --processing in-process, one process that also runs the processing "
                        "loop (the default before December 2026)",
          "split": "split_*: the API with processing off (csops api --no-processing) and a processor process "
                   "(csops process) on the same store; split_cpu_us_per_event the API's CPU alone, "
                   "processor_cpu_us_per_event the processor's"}
"""Which figures of the JSON line are which deployment shape (the baseline is the same for all)."""

KINDS = ("api", "api-inprocess", "api-split", "baseline")


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    """All servers up at once; in each round, batches then singles, csops api as shipped (processing in its
    child), csops api with processing in its process, the split API (processing in a processor process) and the
    baseline taking turns (the order rotates), so a busy spell of the machine falls on all alike.

    After each API turn the processing catches up with what it stored before anything else goes on: a
    backlog from the batches is not what singles are measured against, and it does not run in another's
    turn. The time that took is ``drain_s`` (``inprocess_drain_s``, ``split_drain_s``); the CPU a server
    spent in its turn, the drain included, is counted per event accepted; for the split shape, events
    processed per second counts from the turn's first post to the end of its drain."""
    rounds = max(1, args.rounds)
    with tempfile.TemporaryDirectory() as tmp:
        dbs = {kind: Path(tmp) / f"{kind}.db" for kind in KINDS}
        servers = {kind: Server(kind, f"sqlite:///{dbs[kind]}", Path(tmp)) for kind in KINDS}
        counts = Path(tmp) / "processed.json"
        processor: subprocess.Popen[bytes] | None = None
        phases = {(kind, what): Phase() for kind in servers for what in ("batch", "single")}
        child_cpu = {what: 0.0 for what in ("batch", "single")}  # csops api's processing child, in its turns
        processing = {what: Phase() for what in ("batch", "single")}  # the processor's CPU and time, split shape
        drain = {"api": 0.0, "api-inprocess": 0.0, "api-split": 0.0}
        posted = 0
        try:
            for server in servers.values():
                await server.ready()
            if len(servers["api"].children) != 1:
                raise RuntimeError(f"csops api has {len(servers['api'].children)} child processes, not its one "
                                   "processing child")
            processor = subprocess.Popen([sys.executable, "-m", "bench.ingest", "--serve", "processor",
                                          "--database-url", f"sqlite:///{dbs['api-split']}", "--counts", str(counts)],
                                         stdin=subprocess.DEVNULL)
            run = uuid.uuid4().hex[:8]
            for kind, server in servers.items():
                warm = make_events(200, f"{run}-{kind}-warm")
                await post_all(server.url, [json.dumps({"events": warm}).encode()], 1, [len(warm)])
                posted += len(warm) if kind == "api-split" else 0
            for kind in drain:
                await drained(dbs[kind])
            for r in range(rounds):
                order = list(servers)[r % len(KINDS):] + list(servers)[:r % len(KINDS)]
                events = make_events(args.events // rounds, f"{run}-{r}-b")
                chunks = [events[i:i + args.batch] for i in range(0, len(events), args.batch)]
                singles = make_events(args.singles // rounds, f"{run}-{r}-s")
                for what, bodies, sizes in (("batch", [json.dumps({"events": c}).encode() for c in chunks],
                                             [len(c) for c in chunks]),
                                            ("single", [json.dumps(e).encode() for e in singles], [1] * len(singles))):
                    for kind in order:
                        phase, before = phases[kind, what], servers[kind].cpu()
                        helper = cpu_seconds(processor.pid)
                        began = time.perf_counter()
                        phase.add(await post_all(servers[kind].url, bodies, args.clients, sizes))
                        if kind in drain:  # the processing must not run into another's turn
                            drain[kind] += await drained(dbs[kind])
                        after = servers[kind].cpu()
                        phase.cpu += after[0] - before[0] + after[1] - before[1]  # the API's, with its processing
                        if kind == "api":
                            child_cpu[what] += after[1] - before[1]
                        if kind == "api-split":
                            posted += sum(sizes)
                            processing[what].add((time.perf_counter() - began, [], sum(sizes)))
                            processing[what].cpu += cpu_seconds(processor.pid) - helper
            processor.send_signal(signal.SIGTERM)
            processor.wait(30)
            marked = json.loads(counts.read_text())
        finally:
            if processor is not None and processor.poll() is None:
                processor.kill()
                processor.wait()
            for server in servers.values():
                server.stop()
    once = posted == len(marked) and set(marked.values()) == {1}
    if not once:
        raise RuntimeError(f"{posted} events posted to the split API, {len(marked)} marked processed, "
                           f"{sum(1 for n in marked.values() if n > 1)} more than once")
    for kind in servers:
        print(f"{kind}: batches {phases[kind, 'batch'].per_s}/s, singles {phases[kind, 'single'].per_s}/s", flush=True)
    return figures(args, rounds, phases, processing, drain, child_cpu, once)


def figures(args: argparse.Namespace, rounds: int, phases: dict[tuple[str, str], Phase],
            processing: dict[str, Phase], drain: dict[str, float], child_cpu: dict[str, float],
            once: bool) -> dict[str, Any]:
    """The JSON line's figures (``SHAPES`` says which are which)."""
    api, base = phases["api", "batch"], phases["baseline", "batch"]
    single, base_single = phases["api", "single"], phases["baseline", "single"]
    inproc, inproc_single = phases["api-inprocess", "batch"], phases["api-inprocess", "single"]
    split, split_single = phases["api-split", "batch"], phases["api-split", "single"]

    def per_event(seconds: float, phase: Phase) -> int:
        return round(seconds / phase.accepted * 1e6) if phase.accepted else 0

    return {"events_per_s": api.per_s, "p99_ms": pct(api.latencies, 99), "p50_ms": pct(api.latencies, 50),
            "events": args.events, "batch_size": args.batch, "clients": args.clients, "rounds": rounds,
            "baseline_events_per_s": base.per_s, "baseline_p99_ms": pct(base.latencies, 99),
            "ratio": round(api.per_s / base.per_s, 3),
            "singles": args.singles, "single_events_per_s": single.per_s, "single_p99_ms": pct(single.latencies, 99),
            "baseline_single_events_per_s": base_single.per_s,
            "baseline_single_p99_ms": pct(base_single.latencies, 99),
            "single_ratio": round(single.per_s / base_single.per_s, 3) if base_single.per_s else 0.0,
            "drain_s": round(drain["api"], 1), "cpu_us_per_event": api.cpu_us,
            "api_cpu_us_per_event": api.cpu_us - per_event(child_cpu["batch"], api),
            "child_cpu_us_per_event": per_event(child_cpu["batch"], api),
            "baseline_cpu_us_per_event": base.cpu_us,
            "single_cpu_us_per_event": single.cpu_us, "baseline_single_cpu_us_per_event": base_single.cpu_us,
            "inprocess_events_per_s": inproc.per_s, "inprocess_p99_ms": pct(inproc.latencies, 99),
            "inprocess_ratio": round(inproc.per_s / base.per_s, 3),
            "inprocess_single_events_per_s": inproc_single.per_s,
            "inprocess_single_ratio": round(inproc_single.per_s / base_single.per_s, 3) if base_single.per_s else 0.0,
            "inprocess_drain_s": round(drain["api-inprocess"], 1), "inprocess_cpu_us_per_event": inproc.cpu_us,
            "split_events_per_s": split.per_s, "split_p99_ms": pct(split.latencies, 99),
            "split_ratio": round(split.per_s / base.per_s, 3),
            "split_single_events_per_s": split_single.per_s, "split_single_p99_ms": pct(split_single.latencies, 99),
            "split_single_ratio": round(split_single.per_s / base_single.per_s, 3) if base_single.per_s else 0.0,
            "split_drain_s": round(drain["api-split"], 1),
            "split_processed_per_s": processing["batch"].per_s,
            "split_single_processed_per_s": processing["single"].per_s,
            "split_processed_once": once, "split_cpu_us_per_event": split.cpu_us,
            "split_single_cpu_us_per_event": split_single.cpu_us,
            "processor_cpu_us_per_event": processing["batch"].cpu_us,
            "processor_single_cpu_us_per_event": processing["single"].cpu_us,
            "shapes": SHAPES, "cpus": os.cpu_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events posted in batches (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="events per batch (default 100, at most 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--singles", type=int, default=2000, help="events then posted one per request (default 2000)")
    parser.add_argument("--rounds", type=int, default=4, help="turns the API and the baseline take (default 4)")
    parser.add_argument("--serve", choices=("api-split", "baseline", "processor"), help=argparse.SUPPRESS)
    parser.add_argument("--counts", default="", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve == "processor":
        process_events(args.database_url, Path(args.counts))
        return 0
    if args.serve:
        serve(args.serve, args.port, args.database_url)
        return 0
    figures = asyncio.run(bench(args))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
