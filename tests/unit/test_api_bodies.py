"""The corpus of malformed POST /v1/events bodies (tests/data/malformed_api_bodies.json) against the real app.

Each case gives a body (``json``: a value to send as JSON; ``text``: raw text sent as UTF-8;
``hex``: raw bytes; ``repeat``: pieces repeated, for the huge and the deep), optionally a
``content_type``, and the exact answer: ``status`` and the whole JSON ``body``. None may be a 5xx:
before this corpus, deep nesting, 4,301-digit numbers, NaN and dates that overflow in UTC answered
500. The app is the real one (store, CRM and ingestor on SQLite under a temporary folder),
reached over ASGI; events it accepts stay stored, so ids are unique across the corpus.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine.api import api_body
from engine.api.app import create_app
from engine.store.store import Store
from tests.unit.test_api import AUTH, NOW, TOKEN, Starts, compiled, make_ingestor

CORPUS = Path(__file__).resolve().parent.parent / "data" / "malformed_api_bodies.json"
CASES: list[dict[str, Any]] = json.loads(CORPUS.read_text(encoding="utf-8"))


def body_of(case: dict[str, Any]) -> bytes:
    """The bytes a case sends."""
    if "json" in case:
        return json.dumps(case["json"]).encode()
    if "text" in case:
        return str(case["text"]).encode("utf-8", "surrogatepass")
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    return "".join(piece * count for piece, count in case["repeat"]).encode()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", health_score=72))
    playbooks = {"nps-follow-up": compiled()}
    app = create_app(store=store, ingestor=make_ingestor(store, crm, playbooks, Starts()), token=TOKEN, crm=crm,
                     playbooks=playbooks, now=lambda: NOW, process=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c
    store.close()
    crm.close()


async def post(client: httpx.AsyncClient, case: dict[str, Any]) -> httpx.Response:
    headers = {**AUTH, "Content-Type": case.get("content_type", "application/json")}
    return await client.post("/v1/events", content=body_of(case), headers=headers)


def test_the_corpus_is_big_and_names_are_unique() -> None:
    assert len(CASES) >= 100
    assert len({c["name"] for c in CASES}) == len(CASES)
    assert all(c["status"] < 500 for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
async def test_a_malformed_body_gets_its_exact_answer(client: httpx.AsyncClient, case: dict[str, Any]) -> None:
    r = await post(client, case)
    assert (r.status_code, r.json()) == (case["status"], case["body"])
    assert r.headers["content-type"] == "application/json"


async def test_a_body_without_content_type_is_taken_as_json(client: httpx.AsyncClient) -> None:
    event = {"id": "no-type", "type": "nps.submitted", "account_id": "acme", "occurred_at": "2026-11-23T09:00:00Z"}
    r = await client.post("/v1/events", content=json.dumps(event), headers=AUTH)
    assert "content-type" not in r.request.headers
    assert r.status_code == 202 and r.json()["results"] == [{"id": "no-type", "status": "accepted", "errors": []}]


async def test_a_body_at_the_limits_is_accepted(client: httpx.AsyncClient) -> None:
    # 32 levels in all: body, data, then 30 more; a 100-character number; a 65,536-character string.
    data: Any = 1
    for _ in range(30):
        data = {"a": data}
    event = {"id": "at-limits", "type": "x.y", "account_id": "acme", "occurred_at": "2026-11-23T09:00:00Z",
             "data": {"deep": data, "n": int("9" * 100), "text": "t" * 65_536}}
    # "deep" makes data level 2, its value level 3 ... the innermost object level 32.
    r = await client.post("/v1/events", content=json.dumps(event), headers=AUTH)
    assert r.status_code == 202, r.json()


_TEXT = st.text(st.characters(codec=None, exclude_categories=()), max_size=8) | st.sampled_from(
    ["\ud800", "a\udfff", "\\ud800", "\U0001f600", "é"])
_JSON = st.recursive(st.none() | st.integers() | _TEXT | st.booleans(),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_TEXT, inner, max_size=3),
                     max_leaves=60)


@settings(max_examples=400, deadline=None)
@given(doc=_JSON, deep=st.integers(0, 40), plain=st.booleans())
def test_a_small_bodys_short_check_finds_what_the_full_walk_finds(doc: Any, deep: int, plain: bool) -> None:
    # Small bodies have only their nesting walked when the text rules out long strings and lone surrogates;
    # whatever the document (lone surrogates, deep nesting, \u escapes or not), the answer is that of the walk of
    # every string, which a body over MAX_STRING gets.
    for _ in range(deep):
        doc = [doc]
    text = json.dumps(doc, ensure_ascii=plain)
    if not plain and any("\ud800" <= ch <= "\udfff" for ch in text):
        return  # not UTF-8 text: the body's decoding refuses it before any check
    found = []
    padded = text + " " * api_body.MAX_STRING  # over MAX_STRING: every string is walked
    for body in (text, padded):
        try:
            api_body.parse_json(body.encode())
            found.append("ok")
        except api_body.BodyError as exc:
            found.append(f"{exc.code} {exc.details}")
    assert found[0] == found[1]
