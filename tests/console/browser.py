"""A live console for the browser tests: real workflows in Temporal's time-skipping test server, a
worker, the API app served by uvicorn on a free port, and headless Chromium driven by selenium.

Everything runs on the test's event loop except the browser, whose blocking calls go through
``asyncio.to_thread``; so the server, the worker and the ingestor keep running while it waits.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import uvicorn
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.ledger import Ledger
from connectors.outbox import ChatOutbox, EmailOutbox
from connectors.sqlcrm import SQLCRM
from engine.api.app import create_app
from engine.api.console.web import ConsoleConfig
from engine.language.context import Calendar
from engine.root import Registry
from engine.runtime.activities import PlaybookActivities
from engine.runtime.runcontrol import TemporalWorkflows
from engine.runtime.temporal import temporal_signaller, temporal_starter
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from engine.store.store import Store
from engine.triggers.ingest import Ingestor
from tests.console.seed import playbooks_folder, seed_crm, seed_users
from tests.workflows.harness import TEST_SERVER

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = "/usr/bin/chromium"
DOC_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
"""Where the screenshots docs/console.md shows are kept: written there with CSOPS_RECORD_SHOTS=1."""
T = TypeVar("T")


@dataclass
class Live:
    base: str
    store: Store
    crm: SQLCRM
    ingestor: Ingestor
    env: WorkflowEnvironment


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@asynccontextmanager
async def live_console(tmp_path: Path) -> AsyncIterator[Live]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm, ledger = Store(url), SQLCRM(url), Ledger(f"sqlite:///{tmp_path / 'ledger.db'}")
    seed_crm(crm)
    await seed_users(store)
    registry = Registry(playbooks_folder(tmp_path))
    queue = f"console-{uuid.uuid4()}"
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    acts = PlaybookActivities(crm=crm, mailer=EmailOutbox(tmp_path / "mail"), chat=ChatOutbox(tmp_path / "chat.jsonl"),
                              ledger=ledger, fallback_owner="ops@example.com")

    async def client() -> Any:
        return env.client

    ingestor = Ingestor(store=store, crm=crm, playbooks=registry, calendar=Calendar(),
                        start=temporal_starter(env.client, queue, calendar=Calendar()),
                        signal_run=temporal_signaller(env.client))
    app = create_app(store=store, ingestor=ingestor, token="api-token-for-tests-0123456789",
                     workflows=TemporalWorkflows(client), crm=crm, playbooks=registry, calendar=Calendar())
    app.state.console = ConsoleConfig()
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False))
    try:
        async with env, Worker(env.client, task_queue=queue, workflows=[PlaybookRun], activities=acts.all(),
                               workflow_runner=sandbox_runner()):
            serving = asyncio.create_task(server.serve())
            while not server.started:
                await asyncio.sleep(0.05)
            try:
                yield Live(f"http://127.0.0.1:{port}", store, crm, ingestor, env)
            finally:
                server.should_exit = True
                await serving
    finally:
        store.close()
        crm.close()
        ledger.close()


async def health(live: Live, account: str, score: int, band: str, event_id: str) -> None:
    """A health.updated event through the ingestor, processed at once (as ``csops event`` does)."""
    [result] = await live.ingestor.ingest([{"id": event_id, "type": "health.updated", "account_id": account,
                                            "occurred_at": datetime.now(UTC).isoformat(),
                                            "data": {"score": score, "band": band}}], process=True)
    assert result.status == "accepted", result


async def until(check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting")
        await asyncio.sleep(0.2)


class Browser:
    """Headless Chromium through chromedriver, with a fresh profile; blocking calls (run them in a thread)."""

    def __init__(self, base: str, width: int = 1280, height: int = 900) -> None:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service

        self.base = base
        for attempt in range(3):  # on a loaded machine Chromium may miss the driver's start-up deadline
            self.profile = tempfile.mkdtemp(prefix="csops-chromium-")
            options = webdriver.ChromeOptions()
            options.binary_location = CHROMIUM
            for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                         "--disable-background-networking", "--disable-component-update", "--disable-sync",
                         "--no-first-run", f"--user-data-dir={self.profile}", f"--window-size={width},{height}"):
                options.add_argument(flag)
            try:
                self.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
                break
            except WebDriverException:
                shutil.rmtree(self.profile, ignore_errors=True)
                if attempt == 2:
                    raise
        if width < 500:  # headless windows are at least 500 px wide: emulate the phone's screen instead
            self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                                        {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": True})

    def close(self) -> None:
        try:
            self.driver.quit()
        finally:
            shutil.rmtree(self.profile, ignore_errors=True)

    def open(self, path: str) -> None:
        self.driver.get(self.base + path)

    def css(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return list(self.driver.find_elements(By.CSS_SELECTOR, selector))

    def text(self, selector: str = "main") -> str:
        found: str = self.css(selector).text
        return found

    @property
    def path(self) -> str:
        url: str = self.driver.current_url
        return url[len(self.base):] if url.startswith(self.base) else url

    def sign_in(self, email: str, password: str) -> None:
        from selenium.common.exceptions import WebDriverException

        for attempt in range(3):
            try:
                for name, value in (("email", email), ("password", password)):
                    field = self.css(f"input[name={name}]")
                    field.clear()  # after a failed attempt the form keeps the email typed
                    field.send_keys(value)
                break
            except WebDriverException:  # Chromium under load may swap the node while typing: type again
                if attempt == 2:
                    raise
        self.click("main form button[type=submit]")

    def click(self, selector: str, accept: bool = False) -> None:
        """Click and wait for the next page to load (accepting the confirm dialog first when asked)."""
        from selenium.webdriver.support import expected_conditions
        from selenium.webdriver.support.wait import WebDriverWait

        page = self.css("html")
        self.css(selector).click()
        if accept:
            self.driver.switch_to.alert.accept()
        WebDriverWait(self.driver, 15).until(expected_conditions.staleness_of(page))

    def widths(self) -> tuple[int, int]:
        """The page's scroll width and the window's inner width (no horizontal scroll: the first <= the second)."""
        found = self.driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        return int(found[0]), int(found[1])

    def shot(self, name: str) -> Path:
        """A screenshot of the window: into docs/console with CSOPS_RECORD_SHOTS=1, else the profile folder."""
        folder = DOC_SHOTS if os.environ.get("CSOPS_RECORD_SHOTS") == "1" else Path(self.profile) / "shots"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path
