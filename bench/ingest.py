"""Event ingestion throughput of the HTTP API: POST /v1/events against one uvicorn process.

The script starts the API (engine/api/app.py over a temporary SQLite store, the real Ingestor with its
background processing on, no playbooks, so processing reads the CRM and marks events done) with
uvicorn in a subprocess on a free port, one worker process, and posts EVENTS events in batches of
BATCH over CLIENTS concurrent httpx connections, then SINGLES events one per request. It measures
events accepted per second (every event must come back ``accepted``) and the latency of each
batch request (p50, p99).

Baseline, in the same run and the same way: a bare FastAPI app in its own uvicorn process whose
POST /v1/events only reads and parses the JSON body and answers 202 with a count. ``ratio`` is
the API's events/s over the baseline's: what validation, the bearer check, storing (one batch
insert, idempotent by id) and the per-event answers cost.

The last line of output is a JSON object: events_per_s, p99_ms, events, batch_size,
baseline_events_per_s, ratio, and the rest of the figures. The servers are stopped on exit,
also on error.

    .venv/bin/python -m bench.ingest [--events 20000] [--batch 100] [--clients 8] [--singles 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "bench-token-" + "0" * 20
AUTH = {"Authorization": f"Bearer {TOKEN}"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# --- the servers (run in the subprocess) -----------------------------------------------------------

def api_app(database_url: str) -> Any:
    """The real API over a fresh store and CRM, no playbooks."""
    from connectors.sqlcrm import SQLCRM
    from engine.api.app import create_app
    from engine.store.store import Store
    from engine.triggers.ingest import Ingestor

    store, crm = Store(database_url), SQLCRM(database_url)
    from connectors.base import Account

    # The events' accounts exist, so each comes back accepted (not unknown_account).
    for i in range(500):
        crm.add_account(Account(id=f"acct-{i}", name=f"Account {i}"))

    async def start(playbook: Any, decision: Any) -> tuple[str, str]:
        raise RuntimeError("no runs start in the benchmark")

    async def signal_run(run_id: str, event: Any) -> bool:
        return True

    ingestor = Ingestor(store=store, crm=crm, playbooks=dict, start=start, signal_run=signal_run)
    return create_app(store=store, ingestor=ingestor, token=TOKEN)


def baseline_app() -> Any:
    """A bare FastAPI app: parse the JSON body, answer 202 with a count."""
    app = FastAPI()

    @app.post("/v1/events")
    async def events(request: Request) -> JSONResponse:
        doc = json.loads(await request.body())
        n = len(doc["events"]) if isinstance(doc, dict) and "events" in doc else 1
        return JSONResponse({"accepted": n, "duplicates": 0, "rejected": 0}, status_code=202)

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, port: int, database_url: str) -> None:
    import uvicorn

    app = api_app(database_url) if kind == "api" else baseline_app()
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1)


class Server:
    """One server subprocess, stopped on exit."""

    def __init__(self, kind: str, database_url: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.ingest", "--serve", kind, "--port", str(self.port),
                                      "--database-url", database_url], stdin=subprocess.DEVNULL)

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

    async def client() -> None:
        nonlocal accepted
        async with httpx.AsyncClient(base_url=url, timeout=60.0) as http:
            while not queue.empty():
                body, n = queue.get_nowait()
                began = time.perf_counter()
                r = await http.post("/v1/events", content=body, headers=headers)
                latencies.append((time.perf_counter() - began) * 1000)
                if r.status_code != 202 or r.json()["accepted"] != n:
                    raise RuntimeError(f"expected {n} accepted, got {r.status_code} {r.text[:300]}")
                accepted += n

    began = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return time.perf_counter() - began, latencies, accepted


def pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))], 1)


async def measure(kind: str, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    server = Server(kind, f"sqlite:///{folder / (kind + '.db')}")
    try:
        await server.ready()
        run = uuid.uuid4().hex[:8]
        warm = make_events(200, f"{run}-warm")
        await post_all(server.url, [json.dumps({"events": warm}).encode()], 1, [len(warm)])
        events = make_events(args.events, f"{run}-b")
        bodies = [json.dumps({"events": events[i:i + args.batch]}).encode() for i in range(0, len(events), args.batch)]
        sizes = [len(events[i:i + args.batch]) for i in range(0, len(events), args.batch)]
        seconds, lat, accepted = await post_all(server.url, bodies, args.clients, sizes)
        singles = make_events(args.singles, f"{run}-s")
        s_seconds, s_lat, s_accepted = await post_all(server.url, [json.dumps(e).encode() for e in singles],
                                                      args.clients, [1] * len(singles))
        return {"events_per_s": round(accepted / seconds), "p50_ms": pct(lat, 50), "p99_ms": pct(lat, 99),
                "requests": len(lat), "singles_events_per_s": round(s_accepted / s_seconds) if singles else 0,
                "singles_p99_ms": pct(s_lat, 99) if singles else 0.0}
    finally:
        server.stop()


async def bench(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        api = await measure("api", args, Path(tmp))
        print(f"api: {api}", flush=True)
        base = await measure("baseline", args, Path(tmp))
        print(f"baseline: {base}", flush=True)
    return {"events_per_s": api["events_per_s"], "p99_ms": api["p99_ms"], "p50_ms": api["p50_ms"],
            "events": args.events, "batch_size": args.batch, "clients": args.clients,
            "singles": args.singles, "singles_events_per_s": api["singles_events_per_s"],
            "singles_p99_ms": api["singles_p99_ms"], "baseline_events_per_s": base["events_per_s"],
            "baseline_p99_ms": base["p99_ms"], "baseline_singles_events_per_s": base["singles_events_per_s"],
            "ratio": round(api["events_per_s"] / base["events_per_s"], 3), "cpus": os.cpu_count()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20000, help="events posted in batches (default 20000)")
    parser.add_argument("--batch", type=int, default=100, help="events per batch (default 100, at most 1000)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument("--singles", type=int, default=1000, help="events then posted one per request (default 1000)")
    parser.add_argument("--serve", choices=("api", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.database_url)
        return 0
    figures = asyncio.run(bench(args))
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
