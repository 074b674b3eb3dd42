"""200 playbook webhook calls through a receiver that fails 30% of requests (429, 5xx, connections
cut before and after it processed the request): every run completes, and the receiver, which
dedupes on the Idempotency-Key header as docs/connectors.md asks receivers to, acts on each call
exactly once, though some keys arrive more than once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from aiohttp import web

from connectors.webhook import Webhook
from engine.payloads.runtypes import run_id_for
from tests.fakes.http import FAULT_KINDS, FakeServer, Faults
from tests.workflows.harness import stack

RUNS = 200
HOOK = """\
playbook: hook-faults
title: Webhook under faults
triggers: [{manual: {}}]
steps:
  - id: notify
    http: {url: "URL/accounts/{{ account.id }}", json: {account: "{{ account.name }}", arr: "{{ account.arr }}"}}
"""


class Receiver(FakeServer):
    """A webhook receiver that acts once per Idempotency-Key and answers a repeat as the first time."""

    def __init__(self, faults: Faults) -> None:
        super().__init__(faults)
        self.arrivals: Counter[str] = Counter()
        self.faulted: Counter[str] = Counter()
        self.acted: dict[str, Any] = {}

    def fault_for(self, request: web.Request) -> str | None:
        # At most 3 faults per key: the seeded draws otherwise give one run 7 in a row, which costs
        # 127 s of real retry backoff and tests nothing that 3 do not.
        key = request.headers.get("Idempotency-Key", "")
        if self.faulted[key] >= 3:
            return None
        kind = super().fault_for(request)
        self.faulted[key] += kind is not None
        return kind

    def routes(self, app: web.Application) -> None:
        app.router.add_post("/accounts/{account}", self.receive)

    async def receive(self, request: web.Request) -> web.StreamResponse:
        key = request.headers["Idempotency-Key"]
        self.arrivals[key] += 1
        if key not in self.acted:
            self.acted[key] = await request.json()
        return web.json_response({"received": key})


async def test_every_webhook_call_is_acted_on_once_through_faults(tmp_path: Path) -> None:
    faults = Faults(rate=0.3, seed=7, retry_after=1)
    async with Receiver(faults) as receiver:
        webhook = Webhook([receiver.url.removeprefix("http://")], allow_private=["127.0.0.1/32"])
        try:
            async with stack(tmp_path, http=webhook) as s:
                text = HOOK.replace("URL", receiver.url)
                handles = [await s.start(text, occurrence=f"h{i}") for i in range(RUNS)]
                with s.env.auto_time_skipping_disabled():  # many runs awaited at once: see DESIGN.md
                    outs = await asyncio.gather(*(h.result() for h in handles))
        finally:
            await webhook.close()

    assert [o.outcome for o in outs] == ["completed"] * RUNS
    keys = {f"{run_id_for('hook-faults', 'acme', f'h{i}')}/notify" for i in range(RUNS)}
    assert set(receiver.acted) == keys  # each call acted on once: none missing, none extra
    assert all(body == {"account": "Acme Corp", "arr": "120000.0"} for body in receiver.acted.values())
    assert all(o.steps["notify"].result["status"] == 200 for o in outs)
    # The faults happened, and some keys did arrive twice (processed, answer lost): the receiver's
    # dedupe on the key is what keeps those once.
    assert all(faults.injected[kind] > 0 for kind in FAULT_KINDS), faults.injected
    assert max(receiver.arrivals.values()) >= 2
    assert max(receiver.faulted.values()) == 3  # some keys met the cap: retried through 3 faults
    print(f"\n{len(receiver.requests)} requests, faults {dict(faults.injected)}, "
          f"{sum(n - 1 for n in receiver.arrivals.values())} repeated keys, {len(receiver.acted)} acted on")
