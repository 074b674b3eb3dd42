"""Each HTTP connector accepts an httpx transport, and csops.yaml kinds map to factories whose connectors
have the lifecycle (check, close) of connectors.base.Lifecycle (issue 12).

The webhook caller's transport is tests/connectors/test_webhook_ssrf.py's; Slack's client is
slack_sdk's (aiohttp, not httpx), tested against the loopback Slack of tests/fakes/slack.py.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
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

SF_ACCOUNT, SF_OWNER = "001000000000001AAA", "005000000000001AAA"
READS: dict[str, tuple[Callable[[httpx.MockTransport], Any], str, dict[str, Any], str, tuple[str, str]]] = {
    "hubspot": (lambda t: HubSpotCRM("tok", transport=t, max_retries=0), "42",
                {"id": "42", "properties": {"name": "Acme", "hubspot_owner_id": "7"}},
                "GET /crm/v3/objects/companies/42 Bearer tok", ("Acme", "7")),
    "pipedrive": (lambda t: PipedriveCRM("tok", transport=t, max_retries=0), "42",
                  {"success": True, "data": {"id": 42, "name": "Acme", "owner_id": {"id": 7}}},
                  "GET /v1/organizations/42 tok", ("Acme", "7")),
    "salesforce": (lambda t: SalesforceCRM("https://acme.my.salesforce.com", access_token="tok", transport=t,
                                           max_retries=0), SF_ACCOUNT,
                   {"Id": SF_ACCOUNT, "Name": "Acme", "OwnerId": SF_OWNER},
                   f"GET /services/data/v61.0/sobjects/Account/{SF_ACCOUNT} Bearer tok", ("Acme", SF_OWNER)),
}


@pytest.mark.parametrize("vendor", sorted(READS))
async def test_each_http_crm_reads_through_the_transport_it_is_given(vendor: str) -> None:
    build, account_id, body, request_seen, (name, owner) = READS[vendor]
    seen: list[str] = []

    def answer(request: httpx.Request) -> httpx.Response:
        credential = request.headers.get("authorization") or request.url.params["api_token"]
        seen.append(f"{request.method} {request.url.path} {credential}")
        return httpx.Response(200, json=body)

    crm = build(httpx.MockTransport(answer))
    try:
        account = await crm.get_account(account_id)
    finally:
        await crm.close()
    assert account is not None and (account.id, account.name, account.owner_id) == (account_id, name, owner)
    assert seen == [request_seen]


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

