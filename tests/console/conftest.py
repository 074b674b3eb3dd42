"""The console app over real parts (SQLite store and CRM, the real Ingestor) for the HTTP tests.

Temporal is the API tests' stand-in (status query and cancel signal): the browser tests run the
real workflows in the time-skipping test server."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.sqlcrm import SQLCRM
from engine.api.app import create_app
from engine.api.console.web import ConsoleConfig
from engine.language.context import Calendar
from engine.root import Registry
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from tests.console.seed import NOW, playbooks_folder, recorded_run, seed_crm, seed_users
from tests.unit.test_api import FakeWorkflows, Starts, no_signal

BASE = "http://console.test"


@dataclass
class Console:
    client: httpx.AsyncClient
    store: Store
    crm: SQLCRM
    workflows: FakeWorkflows
    app: Any
    runs: dict[str, str]


@pytest.fixture
async def console(tmp_path: Path) -> AsyncIterator[Console]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    seed_crm(crm)
    await seed_users(store)
    registry = Registry(playbooks_folder(tmp_path))
    ingestor = Ingestor(store=store, crm=crm, playbooks=registry, start=Starts(), signal_run=no_signal,
                        calendar=Calendar())
    runs = {"acme": await recorded_run(store, crm, "save-plan", "acme", "u-carl", started=NOW - timedelta(hours=2),
                                       due=NOW.date() - timedelta(days=1)),
            "globex": await recorded_run(store, crm, "save-plan", "globex", "u-cora", started=NOW - timedelta(hours=1),
                                         due=NOW.date())}
    workflows = FakeWorkflows(running={r: "plan" for r in runs.values()})
    app = create_app(store=store, ingestor=ingestor, token="api-token-for-tests-0123456789", workflows=workflows,
                     crm=crm, playbooks=registry, calendar=Calendar(), process=False)
    app.state.console = ConsoleConfig()
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as client:
        yield Console(client, store, crm, workflows, app, runs)
    store.close()
    crm.close()
