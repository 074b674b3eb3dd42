"""The part of ``audience.when`` the built-in CRM checks in SQL never leaves out an account the matcher passes.

engine/triggers/whenfilter.py ``numbers`` takes from a ``when`` the comparisons of a numeric account field with a
number that every passing account passes too; ``SQLCRM.list_accounts(numbers=...)`` keeps the accounts that pass
them (and a null field). On both databases, for edge values (a null score, -0.0, negatives, huge and tiny
numbers, NaN on PostgreSQL) and a set of ``when`` forms, every account the expression passes is among those the
SQL keeps, and the SQL does leave out some (so the test can fail both ways).
"""

from __future__ import annotations

import math
from datetime import date

import pytest

from connectors.base import NUMBER_COLUMNS, NUMBER_OPERATORS, Account
from connectors.sqlcrm import SQLCRM
from connectors.sqlcrm_pages import number_holds
from engine.language.context import evaluate
from engine.payloads.runcontext import account_data
from engine.triggers.matcher import account_seen
from engine.triggers.whenfilter import COLUMNS, OPS, holds, numbers

WHENS = ("account.arr > 0", "0 < account.arr", "account.arr >= -0.0", "account.arr < 12.5", "account.arr <= -5",
         "account.arr == 0", "account.arr != 0", "account['arr'] > 0.1", "-7 < account.arr",
         "account.arr > 9007199254740992", "account.health.score >= 49", "account.health.score != 49",
         "account.health.score < 0", "account.health.previous_score == 3",
         "account.arr > 0 and account.health.score <= 50 and account.name != 'x'")


def test_only_comparisons_of_numeric_fields_with_numbers_are_taken() -> None:
    assert numbers("account.arr > 0") == numbers("0 < account.arr") == (("arr", ">", 0.0),)
    assert numbers("account.arr > -5 and account.fields.tier == 'gold' and account.health.score <= 3") == (
        ("arr", ">", -5.0), ("health_score", "<=", 3))
    assert numbers("--3 < account.health.previous_score") == (("previous_health_score", ">", 3),)
    assert numbers("account.arr > 0 and (account.fields.x or account.arr < 100)") == (("arr", ">", 0.0),)
    for src in (None, "", "account.arr > '5'", "account.arr > true", "account.arr > 0 or account.arr < -3",
                "not account.arr > 0", "0 < account.arr < 1000", "account.arr > 1e400", "account.arr > 2**60",
                "account.arr > 9007199254740993", "account.health.score >= 2.5", "account.usage.seats > 3",
                "account.arr > limit", "account.arr > 0 garbage", "account.arr >", "account.arr in [1, 2]",
                "account.arr | abs > 3", "account.items > 3", "{{ account.arr > 0 }}"):
        assert numbers(src) == (), src


def test_only_a_when_made_of_such_comparisons_is_answered_without_jinja() -> None:
    account = {"arr": 5.0, "health": {"score": None, "previous_score": 3}, "name": "x"}
    assert holds("account.arr > 0 and 0 <= account.health.previous_score", account) is True
    assert holds("account.arr > 5 and account.health.score > 3", account) is False  # stops at the first false
    assert holds("account.arr > 0 and account.health.score > 3", account) is None  # a null: Jinja's error
    assert holds("account.arr > 0 and account.name != 'x'", account) is None
    assert holds("account.arr > 0 or account.arr < 0", account) is None
    assert holds("account.arr > 0", {"arr": True}) is None and holds("account.arr > 0", {}) is None


def test_every_field_and_operator_the_filter_takes_is_one_the_crms_take() -> None:
    assert set(COLUMNS.values()) <= NUMBER_COLUMNS and set(OPS.values()) <= set(NUMBER_OPERATORS)


def test_a_comparison_the_crm_cannot_make_is_refused() -> None:
    for name, op in (("name", ">"), ("arr", "<>"), ("usage", "==")):
        with pytest.raises(ValueError, match="cannot compare"):
            number_holds(name, op, 1.0)


async def test_the_sql_keeps_every_account_the_expression_passes(db_url: str) -> None:
    arrs = [-math.inf, -7.25, -5.0, -0.0, 0.0, 1e-300, 0.1, 12.5, 2.0**53, 1e308, math.inf]
    scores: list[int | None] = [None, -3, 0, 3, 49, 50, 2**31 - 1]
    if db_url.startswith("postgresql"):
        arrs.append(math.nan)  # SQLite stores NaN as null, which arr (not null) refuses
    crm = SQLCRM(db_url)
    try:
        accounts = [Account(id=f"a{i:03d}", name="x" if i % 5 == 0 else "A", arr=arr, health_score=score,
                            previous_health_score=scores[(i + 3) % len(scores)], renewal_date=date(2027, 1, 1))
                    for i, (arr, score) in enumerate((a, s) for a in arrs for s in scores)]
        for a in accounts:
            crm.add_account(a)
        for when in WHENS:
            found = numbers(when)
            assert found, when
            kept = {a.id for a in await crm.list_accounts(None, 1000, numbers=found)}
            passed, answered = set(), 0
            for a in accounts:
                quick = holds(when, account_data(a, None))
                try:
                    if evaluate(when, {"account": account_seen(account_data(a, None))}):
                        passed.add(a.id)
                except Exception:  # noqa: BLE001 - an error fails the audience too
                    assert quick is None, (when, a)  # left to Jinja, which reports it
                    continue
                if quick is not None:  # holds answers as Jinja does, or leaves it to Jinja
                    assert quick == (a.id in passed), (when, a)
                    answered += 1
            if "name" in when:  # not all comparisons of numbers: always Jinja's
                assert answered == 0, when
            else:
                assert answered >= len(accounts) // 2, when
            assert passed <= kept, (when, sorted(passed - kept))
            assert len(kept) < len(accounts), when  # the SQL does leave some out
    finally:
        crm.close()
