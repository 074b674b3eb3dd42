"""Trigger matching in the child process: same answers as in-process, cut off when slow, capped in memory."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest

from engine.triggers.matcher import decide
from engine.triggers.matchproc import MatchTimeout, MatchWorker
from engine.triggers.signals import EventSignal, Facts
from tests.unit.test_api import compiled

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)
ACCOUNT = {"id": "acme", "name": "Acme", "segment": "strategic", "health": {"score": 72}}


def playbook(where: str) -> Any:
    return compiled(f"""playbook: check
title: Check
triggers:
  - event: {{type: nps.submitted, where: "{where}"}}
steps:
  - id: call
    task: {{title: Call them}}
""")


def signal(score: int = 3) -> EventSignal:
    return EventSignal(id="e1", type="nps.submitted", account_id="acme", occurred_at=NOW, data={"score": score})


@pytest.fixture
async def worker() -> AsyncIterator[MatchWorker]:
    w = MatchWorker(timeout=1.0)
    yield w
    w.close()


SLOWEST = " and ".join(["(range(9999)|list|sort(reverse=true)|first) > 0"] * 12)
"""About as much work as one evaluation may do (engine/language/sandbox.py MAX_WORK): 0.3-1 s here."""


async def test_the_child_answers_as_decide_does(worker: MatchWorker) -> None:
    pb = playbook("event.data.score <= 6")
    facts = Facts(account=ACCOUNT, now=NOW)
    for score in (3, 9):
        assert await worker.decide(pb, signal(score), facts) == decide(pb, signal(score), facts)


async def test_a_slow_condition_is_cut_off_and_the_next_call_gets_a_new_child(worker: MatchWorker) -> None:
    facts = Facts(account=ACCOUNT, now=NOW)
    await worker.decide(playbook("event.data.score <= 6"), signal(), facts)
    began = time.monotonic()
    worker.timeout = 0.15  # the sandbox bounds evaluation to about a second: the slowest it allows, cut shorter
    with pytest.raises(MatchTimeout, match=r"checking the triggers of playbook 'check' took over 0\.15 s"):
        await worker.decide(playbook(SLOWEST), signal(), facts)
    worker.timeout = 1.0
    assert time.monotonic() - began < 3
    answer = await worker.decide(playbook("event.data.score <= 6"), signal(), facts)
    assert answer is not None and answer.reason == "started"


async def test_a_condition_building_a_huge_value_fails_in_the_child_not_the_host(worker: MatchWorker) -> None:
    # 72 * 40,000,000 characters: 2.9 GB, over the child's 1 GiB cap, so MemoryError there at once
    # (uncapped, it would be built and the condition would be true: a run would start).
    worker.timeout = 30
    huge = playbook("('A' * (account.health.score * 40000000)) != ''")
    answer = await worker.decide(huge, signal(), Facts(account=ACCOUNT, now=NOW))
    assert answer is not None and answer.reason == "expression_error", answer
    again = await worker.decide(playbook("event.data.score <= 6"), signal(), Facts(account=ACCOUNT, now=NOW))
    assert again is not None and again.reason == "started"
