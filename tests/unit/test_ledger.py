"""The exactly-once ledger, on SQLite and on PostgreSQL (``db_url`` in tests/conftest.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from connectors.ledger import Ledger
from connectors.sqlcrm import SQLCRM


@pytest.fixture
def ledger(db_url: str) -> Iterator[Ledger]:
    ledger = Ledger(db_url)
    yield ledger
    ledger.close()


async def test_missing_key_is_none(ledger: Ledger) -> None:
    assert await ledger.get("wf-1/a") is None
    assert ledger.count() == 0


async def test_record_then_get(ledger: Ledger) -> None:
    result = {"task_id": "t1", "assignee": "cara@example.com", "fallback": "", "n": [1, 2.5, None, True]}
    assert await ledger.record("wf-1/a", result) == result
    assert await ledger.get("wf-1/a") == result
    assert ledger.count() == 1


async def test_first_writer_wins(ledger: Ledger) -> None:
    assert await ledger.record("wf-2/a", "<first@csops.local>") == "<first@csops.local>"
    assert await ledger.record("wf-2/a", "<second@csops.local>") == "<first@csops.local>"
    assert await ledger.get("wf-2/a") == "<first@csops.local>"
    assert ledger.count() == 1


async def test_concurrent_writers_all_get_the_winner(ledger: Ledger, db_url: str) -> None:
    other = Ledger(db_url)
    try:
        results = await asyncio.gather(*(lg.record("wf-3/a", i) for i, lg in enumerate([ledger, other] * 4)))
    finally:
        other.close()
    assert len(set(results)) == 1
    assert await ledger.get("wf-3/a") == results[0]
    assert ledger.count() == 1


async def test_survives_a_new_instance(db_url: str) -> None:
    first = Ledger(db_url)
    try:
        await first.record("wf-4/a", {"ok": True})
    finally:
        first.close()
    second = Ledger(db_url)
    try:
        assert await second.get("wf-4/a") == {"ok": True}
        assert await second.record("wf-4/a", {"ok": False}) == {"ok": True}
        assert second.count() == 1
    finally:
        second.close()


async def test_results_come_back_as_json_gives_them(ledger: Ledger) -> None:
    assert await ledger.record("wf-5/a", ("a", 1)) == ["a", 1]
    assert await ledger.record("wf-5/b", True) is True
    assert await ledger.get("wf-5/b") is True


@pytest.mark.parametrize("bad", [object(), {"x": {1, 2}}, float("nan")])
async def test_non_json_results_are_refused(ledger: Ledger, bad: object) -> None:
    with pytest.raises(TypeError, match="JSON"):
        await ledger.record("wf-6/a", bad)
    assert ledger.count() == 0


async def test_shares_a_database_with_the_crm(db_url: str) -> None:
    crm, ledger = SQLCRM(db_url), Ledger(db_url)
    try:
        await ledger.record("wf-7/a", 1)
        assert crm.count_tasks() == 0 and ledger.count() == 1
    finally:
        crm.close()
        ledger.close()
