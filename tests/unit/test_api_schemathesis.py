"""Property-based requests against the API's own OpenAPI document (schemathesis, over ASGI).

Every operation gets generated requests (valid and invalid bodies, parameters and paths) with the
bearer token; each answer must be no 5xx, have a status code and a body the document declares.
The last test checks that at least MIN_REQUESTS requests were made in all.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from connectors.base import Account
from connectors.mailpolicy import Unsubscribe
from connectors.sqlcrm import SQLCRM
from connectors.suppression import SuppressionList
from engine.api import create_app
from engine.context import Calendar
from engine.ingest import Ingestor
from engine.signals import Decision
from engine.store import Store
from tests.unit.test_api import compiled

TOKEN = "schemathesis-token-0123456789"
NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
MAX_EXAMPLES = 80
"""Per operation; eleven operations, some with few distinct requests (health has one)."""
MIN_REQUESTS = 500
CHECKS = (not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance)
made: list[tuple[str, int]] = []

async def start(playbook: Any, decision: Decision) -> tuple[str, str]:
    return "started", "temporal-run"


async def delivered(run_id: str, event: Any) -> bool:
    return True


class Workflows:
    async def status(self, run_id: str) -> dict[str, Any] | None:
        return {"current_step": "call", "outcome": "", "open_tasks": [], "steps": {}}

    async def cancel(self, run_id: str, reason: str) -> str:
        return "cancelling"


def build() -> tuple[Any, list[Any]]:
    """The app over real stores in a temporary folder, and what to close after."""
    url = f"sqlite:///{Path(TMP.name) / 'csops.db'}"
    store, crm, suppressions = Store(url), SQLCRM(url), SuppressionList(url)
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", health_score=70))
    playbooks = {"nps-follow-up": compiled()}
    ingestor = Ingestor(store=store, crm=crm, playbooks=lambda: playbooks, start=start, signal_run=delivered,
                        calendar=Calendar(), now=lambda: NOW)
    app = create_app(store=store, ingestor=ingestor, token=TOKEN, workflows=Workflows(), crm=crm,
                     playbooks=playbooks, suppressions=suppressions, now=lambda: NOW,
                     unsubscribe=Unsubscribe("https://csops.example.com/v1/unsubscribe/{token}", "",
                                             "a-secret-of-sixteen-chars"))
    return app, [store, crm, suppressions]


# schemathesis collects the operations at import, so the app is built then (from_fixture does not
# work with this pytest); the module fixture closes it.
TMP = tempfile.TemporaryDirectory()
APP, OPEN = build()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@pytest.fixture(scope="module", autouse=True)
def _close() -> Iterator[None]:
    yield
    for closable in OPEN:
        closable.close()
    TMP.cleanup()


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_server_errors_and_answers_match_the_document(case: schemathesis.Case[Any]) -> None:
    if case.operation.path != "/v1/health" and not case.operation.path.startswith("/v1/unsubscribe"):
        auth = {"Authorization": f"Bearer {TOKEN}"}
    else:
        auth = {}
    response = case.call(headers=auth)
    made.append((case.operation.label, response.status_code))
    case.validate_response(response, checks=list(CHECKS))


def test_enough_requests_were_made() -> None:
    if not made:
        pytest.skip("run with the generated tests (the whole file)")
    by_operation: dict[str, int] = {}
    for label, _ in made:
        by_operation[label] = by_operation.get(label, 0) + 1
    assert len(made) >= MIN_REQUESTS, by_operation
    assert len(by_operation) == 12, by_operation  # 12: GET /v1/accounts/{id}/health (engine/health/api.py)
    assert all(status < 500 for _, status in made)
    # Not only refusals: valid requests got through too.
    assert any(label == "POST /v1/events" and status == 202 for label, status in made)
