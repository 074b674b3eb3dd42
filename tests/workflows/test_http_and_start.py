"""The http step against a real HTTP server on loopback, and start_playbook enrolling the account
in another playbook (once: a second start while it runs reports "already running")."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from connectors.webhook import Webhook
from engine.runtime.workflow import PlaybookRun
from tests.workflows.harness import stack


class Receiver(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []  # noqa: RUF012 - one list per server class, reset per test
    fail_first: int = 0

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if type(self).fail_first:
            type(self).fail_first -= 1
            self.send_response(503)
            self.send_header("Retry-After", "1")
            self.end_headers()
            return
        type(self).received.append({"path": self.path, "key": self.headers["Idempotency-Key"],
                                    "auth": self.headers.get("X-Signature"), "body": body})
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[str]:
    Receiver.received, Receiver.fail_first = [], 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


HOOK = """\
playbook: hook
title: Hook
triggers: [{manual: {}}]
steps:
  - id: tell-billing
    http:
      url: "URL/accounts/{{ account.id }}"
      headers: {X-Signature: "sig-{{ account.id }}"}
      json: {account: "{{ account.name }}", arr: "{{ account.arr | int }}", tags: ["{{ account.segment }}"]}
"""


async def test_http_step_calls_the_webhook_once_through_a_retry(tmp_path: Path, receiver: str) -> None:
    # A loopback receiver is a private address: it must be allowed explicitly, with its port.
    webhook = Webhook([receiver.removeprefix("http://")], allow_private=["127.0.0.1/32"])
    try:
        async with stack(tmp_path, http=webhook) as s:
            out = await (await s.start(HOOK.replace("URL", receiver))).result()
    finally:
        await webhook.close()
    assert out.outcome == "completed" and out.steps["tell-billing"].result["status"] == 200
    assert Receiver.received == [{"path": "/accounts/acme", "key": "pb:hook:acme:once/tell-billing",
                                  "auth": "sig-acme",
                                  "body": {"account": "Acme Corp", "arr": "120000", "tags": ["strategic"]}}]


async def test_http_step_refuses_hosts_off_the_allow_list(tmp_path: Path, receiver: str) -> None:
    webhook = Webhook(["hooks.example.com"])
    try:
        async with stack(tmp_path, http=webhook) as s:
            out = await (await s.start(HOOK.replace("URL", receiver))).result()
    finally:
        await webhook.close()
    assert out.outcome == "failed" and "not on the webhook allow-list" in out.reason
    assert Receiver.received == []


MAIN = """\
playbook: main
title: Main
triggers: [{manual: {}}]
steps:
  - id: enrol
    start_playbook: follow-up
  - id: enrol-again
    start_playbook: follow-up
"""
FOLLOW_UP = """\
playbook: follow-up
title: Follow-up
triggers: [{manual: {}}]
steps:
  - id: pause
    wait: 2d
  - id: log
    note: {text: "follow-up for {{ account.name }} (from {{ trigger.from }})"}
"""


async def test_start_playbook_enrols_the_account_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        follow_up = s.register(FOLLOW_UP)
        out = await (await s.start(MAIN)).result()
        child = s.env.client.get_workflow_handle_for(PlaybookRun.run, f"pb:{follow_up.id}:acme:once")
        await s.env.sleep(timedelta(days=3))  # past the child's wait: it was not started by this client
        child_out = await child.result()
    assert (out.steps["enrol"].result, out.steps["enrol-again"].result) == ("started", "already running")
    assert child_out.outcome == "completed"
    assert [n.text for n in s.crm.list_notes("acme")] == ["follow-up for Acme Corp (from main)"]


NARROW = """\
playbook: narrow
title: Only for SMB accounts
triggers: [{event: {type: custom.never}}]
audience:
  segments: [smb]
steps:
  - id: log
    note: {text: "narrow for {{ account.name }}"}
"""
TO_NARROW = """\
playbook: to-narrow
title: Enrols in narrow
triggers: [{manual: {}}]
steps:
  - id: enrol
    start_playbook: narrow
  - id: after
    note: {text: "went on"}
"""


async def test_a_start_playbook_the_audience_refuses_says_so_and_the_run_goes_on(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        s.register(NARROW)
        out = await (await s.start(TO_NARROW)).result()
        assert s.store is not None
        decisions = [(d.playbook, d.outcome, d.reason) for d in await s.store.decisions(account_id="acme")]
    assert out.steps["enrol"].result == ("suppressed (audience_segment): segment is 'strategic', not one of the "
                                         "audience segments (smb)")
    assert out.outcome == "completed"
    assert decisions == [("narrow", "suppressed", "audience_segment")]
    assert [n.text for n in s.crm.list_notes("acme")] == ["went on"]
