"""Secrets never leave the connectors: three canary values (a Slack bot token, an SMTP password,
a HubSpot token) go from the environment through csops.yaml's ``${VAR}`` into real connectors
that use them against loopback servers, and then neither the runs' recorded workflow histories
nor anything logged or printed (at DEBUG, Python and the Temporal core alike) contains them."""

from __future__ import annotations

import asyncio
import base64
import logging
import os
from pathlib import Path

import pytest

from engine.settings import Settings
from engine.wiring import build_connectors
from tests.fakes.hubspot import FakeHubSpot
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import MailServer
from tests.workflows.harness import stack

CANARIES = {
    "SLACK_BOT_TOKEN": "xoxb-canary-7c1d-5a9e-slack",
    "SMTP_PASSWORD": "canary-smtp-Pw-4f2b81",
    "HUBSPOT_TOKEN": "pat-na1-canary-3e77-hubspot",
}

PLAYBOOK = """\
playbook: canary
title: Every connector once
triggers: [{manual: {}}]
steps:
  - id: call
    task: {title: "Call {{ account.name }}"}
  - id: tell
    alert: {to: ["#cs-risk", owner], text: "{{ account.name }} needs a call"}
  - id: mail
    email: {to: primary_contact, subject: "Hello {{ account.name }}", body: "Hi {{ contact.first_name }}"}
  - id: nowhere
    alert: {to: ["#no-such-channel"], text: "this fails"}
    on_error: continue
"""

CONFIG = """\
crm: {{kind: hubspot, token: "${{HUBSPOT_TOKEN}}", base_url: "{hubspot}"}}
email: {{kind: smtp, host: 127.0.0.1, port: {smtp}, security: starttls, username: csops,
        password: "${{SMTP_PASSWORD}}"}}
chat: {{kind: slack, token: "${{SLACK_BOT_TOKEN}}", base_url: "{slack}"}}
"""


def leaks(text: str) -> list[str]:
    """Which canaries appear in ``text``, plain or base64-encoded (as SMTP AUTH sends them)."""
    found = []
    for name, value in CANARIES.items():
        encoded = base64.b64encode(value.encode()).decode().rstrip("=")
        if value in text or encoded[:16] in text:
            found.append(name)
    return found


async def test_no_canary_secret_in_history_or_logs(tmp_path: Path, cert: tuple[str, str],
                                                   caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    caplog.set_level(logging.DEBUG)
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])  # the default TLS context trusts the test server's certificate
    async with (MailServer(mode="starttls", cert=cert, users={"csops": CANARIES["SMTP_PASSWORD"]}) as smtp,
                FakeSlack(token=CANARIES["SLACK_BOT_TOKEN"]) as slack,
                FakeHubSpot(CANARIES["HUBSPOT_TOKEN"]) as hubspot):
        slack.add_channel("cs-risk")
        csm = hubspot.add_owner("carl@example.com", "Carl", "CSM")
        company = hubspot.add_company(name="Canary Corp", hubspot_owner_id=csm)
        hubspot.add_contact(company, email="pat@canary.example", firstname="Pat", csops_primary_contact="true")
        config = tmp_path / "csops.yaml"
        config.write_text(CONFIG.format(hubspot=hubspot.url, smtp=smtp.port, slack=slack.base_url))
        settings = Settings.load(env={**os.environ, "CSOPS_HOME": str(tmp_path / "home")}, config_file=str(config))
        connectors = await build_connectors(settings)
        try:
            async with stack(tmp_path, crm=connectors.crm, mailer=connectors.mailer, chat=connectors.chat) as s:
                handle = await s.start(PLAYBOOK, account_id=company)
                outcome = await handle.result()
                history = (await handle.fetch_history()).to_json()
        finally:
            await connectors.close()
        await asyncio.sleep(0)  # let the connectors' last log records out

    # The secrets were really used: each server accepted them and did its part.
    assert outcome.outcome == "completed"
    assert [outcome.steps[s].status for s in ("call", "tell", "mail", "nowhere")] == ["done", "done", "done", "failed"]
    assert smtp.logins == ["csops"] and len(smtp.received) == 1
    assert len(hubspot.tasks()) == 1 and len(slack.posted) == 2
    assert "channel_not_found" in history or "no-such-channel" in history  # an error did reach the history

    captured = capfd.readouterr()
    assert leaks(history) == []
    assert leaks(caplog.text) == [] and caplog.records  # something was logged, at DEBUG
    assert leaks(captured.out + captured.err) == []
