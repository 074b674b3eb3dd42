"""Each HTTP connector accepts an httpx transport, and csops.yaml kinds map to factories (issue 12)."""

from __future__ import annotations

import httpx

from connectors.base import Lifecycle
from connectors.hubspot import HubSpotCRM
from connectors.salesforce import SalesforceCRM
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


def test_each_configurable_kind_has_a_factory() -> None:
    assert sorted(FACTORIES) == [("chat", "slack"), ("crm", "hubspot"), ("crm", "pipedrive"), ("crm", "salesforce"),
                                 ("email", "smtp")]


async def test_the_built_connectors_have_the_lifecycle() -> None:
    for crm in (HubSpotCRM("tok"), SalesforceCRM("https://acme.my.salesforce.com", access_token="tok")):
        part: Lifecycle = crm  # mypy checks each against the Protocol
        assert callable(part.check)
        await part.close()
