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
from temporalio.api.enums.v1 import EventType

from connectors import redact
from engine.config.settings import Settings
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


ECHO_PLAYBOOK = """\
playbook: echoes
title: Servers that quote the secrets back
triggers: [{manual: {}}]
steps:
  - id: tell
    alert: {to: ["#no-such-channel"], text: "this fails"}
    on_error: continue
  - id: mail
    email: {to: primary_contact, subject: "Hello {{ account.name }}", body: "Hi {{ contact.first_name }}"}
    on_error: continue
"""


def echo_leaks(text: str) -> list[str]:
    """``leaks`` and also the secrets inside longer base64 (AUTH PLAIN: ``\\0login\\0password``)."""
    found = leaks(text)
    for name, value in CANARIES.items():
        for prefix in ("", "\0", "\0c", "\0csops\0"):
            encoded = base64.b64encode((prefix + value).encode()).decode()
            if encoded[8:24] in text and name not in found:
                found.append(name)
    return found


async def test_secrets_echoed_by_servers_are_redacted_everywhere(
        tmp_path: Path, cert: tuple[str, str], caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An SMTP server answers the (wrong) login with 535 quoting it, plain and base64; Slack's errors
    quote the bearer token. Neither reaches the history, a log line or the terminal, and each
    failure still says what went wrong, with [redacted] where the secret was."""
    redact.install_logging()  # as the worker and the CLI do at start
    caplog.set_level(logging.DEBUG)
    for name, value in CANARIES.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SSL_CERT_FILE", cert[0])
    async with (MailServer(mode="starttls", cert=cert, users={"csops": "the-right-one"}, echo_login=True) as smtp,
                FakeSlack(token=CANARIES["SLACK_BOT_TOKEN"], echo_token=True) as slack,
                FakeHubSpot(CANARIES["HUBSPOT_TOKEN"]) as hubspot):
        csm = hubspot.add_owner("carl@example.com", "Carl", "CSM")
        company = hubspot.add_company(name="Echo Corp", hubspot_owner_id=csm)
        hubspot.add_contact(company, email="pat@echo.example", firstname="Pat", csops_primary_contact="true")
        config = tmp_path / "csops.yaml"
        config.write_text(CONFIG.format(hubspot=hubspot.url, smtp=smtp.port, slack=slack.base_url))
        settings = Settings.load(env={**os.environ, "CSOPS_HOME": str(tmp_path / "home")}, config_file=str(config))
        connectors = await build_connectors(settings)
        try:
            async with stack(tmp_path, crm=connectors.crm, mailer=connectors.mailer, chat=connectors.chat) as s:
                handle = await s.start(ECHO_PLAYBOOK, account_id=company)
                outcome = await handle.result()
                events = (await handle.fetch_history()).events
                history = (await handle.fetch_history()).to_json()
        finally:
            await connectors.close()
        await asyncio.sleep(0)

    assert outcome.outcome == "completed"
    assert [outcome.steps[s].status for s in ("tell", "mail")] == ["failed", "failed"]
    assert smtp.logins == [] and smtp.received == [] and slack.posted == []
    failures = [e.activity_task_failed_event_attributes.failure for e in events
                if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    messages = [f.message for f in failures]
    # Each failure still says what went wrong, the secret replaced where it was quoted.
    assert any(m.startswith("the SMTP server at 127.0.0.1:") and "rejected the login (535 5.7.8 login csops with "
               "password [redacted] (" in m for m in messages), messages
    assert any("Slack said channel_not_found (request authorized as Bearer [redacted])" in m
               for m in messages), messages
    causes = [c.message for f in failures for c in (f.cause, f.cause.cause) if c.message]
    assert any("535" in c for c in causes), causes  # the cause chain is kept, redacted too
    assert "[redacted]" in history and "[redacted]" in caplog.text

    captured = capfd.readouterr()
    assert echo_leaks(history) == []
    assert echo_leaks(caplog.text) == [] and caplog.records
    assert echo_leaks(captured.out + captured.err) == []
