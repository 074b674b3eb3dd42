"""Each HTTP connector accepts an httpx transport, and csops.yaml kinds map to factories whose connectors
have the lifecycle (check, close) of connectors.base.Lifecycle (issue 12).

The webhook caller's transport is tests/connectors/test_webhook_ssrf.py's; Slack's client is
slack_sdk's (aiohttp, not httpx), tested against the loopback Slack of tests/fakes/slack.py.
"""

from __future__ import annotations

import inspect
from typing import Any

import httpx
import pytest

from connectors.base import Lifecycle
from connectors.hubspot import HubSpotCRM
from connectors.pipedrive import PipedriveCRM
from connectors.salesforce import SalesforceCRM
from engine.config.config import SlackConfig, SMTPConfig
from engine.config.crmconfig import HubSpotConfig, PipedriveConfig, SalesforceConfig
from engine.config.secret import Secret
from engine.registry import FACTORIES


async def test_hubspot_reads_through_a_mock_transport() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.headers['authorization']}")
        return httpx.Response(200, json={"id": "42", "properties": {"name": "Acme", "hubspot_owner_id": "7"}})

    crm = HubSpotCRM("tok", transport=httpx.MockTransport(answer), max_retries=0)
    try:
        account = await crm.get_account("42")
    finally:
        await crm.close()
    assert account is not None and (account.id, account.name, account.owner_id) == ("42", "Acme", "7")
    assert seen == ["GET /crm/v3/objects/companies/42 Bearer tok"]


async def test_salesforce_reads_through_a_mock_transport() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/services/data/v61.0/sobjects/Account/001000000000001AAA"
        return httpx.Response(200, json={"Id": "001000000000001AAA", "Name": "Acme", "OwnerId": "005000000000001AAA"})

    crm = SalesforceCRM("https://acme.my.salesforce.com", access_token="tok", transport=httpx.MockTransport(answer),
                        max_retries=0)
    try:
        account = await crm.get_account("001000000000001AAA")
    finally:
        await crm.close()
    assert account is not None and (account.name, account.owner_id) == ("Acme", "005000000000001AAA")


async def test_pipedrive_reads_through_a_mock_transport() -> None:
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(f"{request.method} {request.url.path} {request.url.params['api_token']}")
        return httpx.Response(200, json={"success": True, "data": {"id": 42, "name": "Acme", "owner_id": {"id": 7}}})

    crm = PipedriveCRM("tok", transport=httpx.MockTransport(answer), max_retries=0)
    try:
        account = await crm.get_account("42")
    finally:
        await crm.close()
    assert account is not None and (account.id, account.name, account.owner_id) == ("42", "Acme", "7")
    assert seen == ["GET /v1/organizations/42 tok"]


def test_each_configurable_kind_has_a_factory() -> None:
    assert sorted(FACTORIES) == [("chat", "slack"), ("crm", "hubspot"), ("crm", "pipedrive"), ("crm", "salesforce"),
                                 ("email", "smtp")]


CONFIGS: dict[tuple[str, str], Any] = {
    ("crm", "hubspot"): HubSpotConfig(token=Secret("tok")),
    ("crm", "pipedrive"): PipedriveConfig(api_token=Secret("tok")),
    ("crm", "salesforce"): SalesforceConfig(instance_url="https://acme.my.salesforce.com", access_token=Secret("tok")),
    ("email", "smtp"): SMTPConfig(host="127.0.0.1"),
    ("chat", "slack"): SlackConfig(token=Secret("xoxb-tok")),
}
SECTION: dict[str, tuple[str, ...]] = {
    "crm": ("get_account", "list_contacts", "get_user", "create_task", "get_task", "update_task", "update_account",
            "add_note"),
    "email": ("send",), "chat": ("post",)}


@pytest.mark.parametrize("key", sorted(FACTORIES))
async def test_what_each_factory_builds_has_the_lifecycle_and_its_sections_calls(key: tuple[str, str]) -> None:
    built = FACTORIES[key](CONFIGS[key])
    try:
        assert isinstance(built, Lifecycle)
        assert inspect.iscoroutinefunction(built.check) and inspect.iscoroutinefunction(built.close)
        assert [name for name in SECTION[key[0]] if not inspect.iscoroutinefunction(getattr(built, name, None))] == []
    finally:
        await built.close()

