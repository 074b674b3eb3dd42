"""The servers of bench/ingest.py: ``csops api``'s command line and environment (it runs the command itself), and,
run in its subprocesses, the API without processing, the processor beside it (``csops process``'s loop, counting
what it marks), and the bare FastAPI baseline."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

TOKEN = "bench-token-" + "0" * 20


def seed_accounts(database_url: str) -> None:
    """The events' accounts in the built-in CRM of the store, so each event comes back accepted (not
    unknown_account)."""
    from connectors.base import Account
    from connectors.sqlcrm import SQLCRM

    crm = SQLCRM(database_url)
    try:
        for i in range(500):
            crm.add_account(Account(id=f"acct-{i}", name=f"Account {i}"))
    finally:
        crm.close()


def csops_api(port: int, database_url: str, folder: Path, processing: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``csops api`` as shipped, over ``database_url`` (its accounts seeded)
    with an empty playbooks folder under ``folder``; ``processing``: its --processing."""
    import os
    import sys

    seed_accounts(database_url)
    (folder / "playbooks").mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CSOPS_")}
    # No run starts (no playbooks), so the Temporal address is never dialled.
    env.update(CSOPS_DATABASE_URL=database_url, CSOPS_API_TOKEN=TOKEN, CSOPS_HOME=str(folder / "home"),
               CSOPS_PLAYBOOKS=str(folder / "playbooks"), CSOPS_TEMPORAL_ADDRESS="127.0.0.1:9",
               CSOPS_FALLBACK_OWNER="ops@example.com")
    return [sys.executable, "-m", "engine.cli", "api", "--port", str(port), "--processing", processing], env


def api_app(database_url: str, *, process: bool = True) -> Any:
    """The real API over a fresh store and CRM, no playbooks; ``process``: its processing loop in the process."""
    from connectors.sqlcrm import SQLCRM
    from engine.api.app import create_app
    from engine.store.store import Store
    from engine.triggers.ingest import Ingestor

    seed_accounts(database_url)
    store, crm = Store(database_url), SQLCRM(database_url)

    async def start(playbook: Any, decision: Any) -> tuple[str, str]:
        raise RuntimeError("no runs start in the benchmark")

    async def signal_run(run_id: str, event: Any) -> bool:
        return True

    ingestor = Ingestor(store=store, crm=crm, playbooks=dict, start=start, signal_run=signal_run)
    return create_app(store=store, ingestor=ingestor, token=TOKEN, process=process)


def process_events(database_url: str, counts: Path) -> None:
    """The processor beside the ``api-split`` server: ``csops process``'s loop over the same store, until SIGTERM;
    then how many times each event was marked processed goes to ``counts`` (JSON), to check each was once."""
    from collections import Counter

    from connectors.sqlcrm import SQLCRM
    from engine.cli.cli_process import process_until
    from engine.store.store import Store
    from engine.triggers.ingest import Ingestor

    store, crm = Store(database_url), SQLCRM(database_url)
    marked: Counter[str] = Counter()
    mark = store.mark_processed

    async def counted(ids: Sequence[str], *, at: datetime | None = None) -> None:
        marked.update(ids)
        await mark(ids, at=at)

    store.mark_processed = counted  # type: ignore[method-assign]

    async def start(playbook: Any, decision: Any) -> tuple[str, str]:
        raise RuntimeError("no runs start in the benchmark")

    async def signal_run(run_id: str, event: Any) -> bool:
        return True

    async def run() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        ingestor = Ingestor(store=store, crm=crm, playbooks=dict, start=start, signal_run=signal_run)
        await process_until(ingestor, stop)

    asyncio.run(run())
    counts.write_text(json.dumps(marked))


class BareEvent:
    """An event as the store takes it (engine.store.store.EventLike), from the body as sent."""

    __slots__ = ("account_id", "data", "id", "occurred_at", "type")

    def __init__(self, doc: dict[str, Any]) -> None:
        self.id, self.type, self.account_id = doc["id"], doc["type"], doc["account_id"]
        self.occurred_at = datetime.fromisoformat(doc["occurred_at"])
        self.data = doc.get("data", {})


def baseline_app(database_url: str) -> Any:
    """A bare FastAPI app: parse the JSON body, one insert of its events into the same store, 202 with a count."""
    from engine.store.store import Store

    store = Store(database_url)
    app = FastAPI()

    @app.post("/v1/events")
    async def events(request: Request) -> JSONResponse:
        doc = json.loads(await request.body())
        stored = await store.add_events([BareEvent(e) for e in doc.get("events", [doc])])
        n = sum(stored)
        return JSONResponse({"accepted": n, "duplicates": len(stored) - n, "rejected": 0}, status_code=202)

    @app.get("/v1/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    return app


def serve(kind: str, port: int, database_url: str) -> None:
    import uvicorn

    app = api_app(database_url, process=False) if kind == "api-split" else baseline_app(database_url)
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, workers=1)
