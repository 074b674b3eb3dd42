"""The scan's fast path decides exactly as the matcher does one account at a time.

The fast path (engine/triggers/scan.py ``find_due``) filters audience segments and stages in SQL, reads
an account's people only when an expression may read them, reads runs a page at a time, and
remembers expression results and milestone probes (engine/triggers/evalmemo.py ``Memo``). The
general path reads each account on its own (``account_view``, ``facts_for``) and calls ``decide``
without a memo. On a corpus with conditions, an audience, cooldowns, an active run, a used
occurrence key, expressions that fail and accounts with missing fields, the two give the same
decisions, field for field; the only ones the fast path leaves out are the audience segment and
stage suppressions its SQL filters away.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

from jinja2 import Undefined

from connectors.base import Account, Contact, User
from connectors.sqlcrm import SQLCRM
from engine.payloads.runcontext import view_data
from engine.store.store import Store
from engine.triggers.enrol import facts_for
from engine.triggers.evalmemo import Memo, paths, seen_key, unread, value_key
from engine.triggers.matcher import account_seen, decide
from engine.triggers.scan import find_due, page_facts
from engine.triggers.scanmatch import decide_scan
from engine.triggers.signals import Decision, Facts, Scan, scans
from engine.triggers.whenfilter import numbers
from tests.unit.test_scan import BERLIN, NOW, TODAY, compile_text

SINCE = TODAY - timedelta(days=3)  # a catch-up window of three days


PLAYBOOKS = [compile_text(t) for t in ("""
playbook: renewals
title: Renewals
triggers:
  - contract_milestone: { field: renewal_date, days_before: 120 }
  - contract_milestone: { field: renewal_date, days_before: 90 }
audience:
  segments: [strategic, commercial]
  when: account.arr > 0
entry:
  key: account.renewal_date
  cooldown: 30d
steps:
  - id: t
    task: { title: T }
""", """
playbook: kickoff
title: Kickoff
triggers:
  - contract_milestone: { field: fields.kickoff, days_after: 3, business_days: true }
audience:
  lifecycle_stages: [onboard]
  when: contacts | length > 0 and account.owner.manager.name == 'Mia'
steps:
  - id: t
    task: { title: T }
""", """
playbook: at-risk
title: At risk
triggers:
  - contract_milestone: { field: renewal_date, days_before: 30 }
audience:
  when: account.health.score < 50 or account.fields.tier == 'gold'
entry:
  key: account.arr * 2
steps:
  - id: t
    task: { title: T }
""", """
playbook: scored
title: Scored
triggers:
  - contract_milestone: { field: renewal_date, days_before: 30 }
audience:
  when: account.fields.score > 3
steps:
  - id: t
    task: { title: T }
""", *(f"""
playbook: numbers-{n}
title: Numbers {n}
triggers:
  - contract_milestone: {{ field: renewal_date, days_before: 30 }}
audience:
  when: "{when}"
steps:
  - id: t
    task: {{ title: T }}
""" for n, when in enumerate((
    # Left to SQL in part (engine/triggers/whenfilter.py): a null score passes != in Python and fails >=
    # with an error; -0.0 and a negative arr sit on the bounds; the second conjunct is the matcher's alone.
    "account.health.score != 49", "account.health.score >= 42 and account.fields.tier != 'gold'",
    "-5 < account.arr and account.arr <= 12.5", "account.arr == 0",
    # Left to the matcher alone: text, a chained comparison, not.
    "account.arr > '5'", "0 < account.arr < 1000", "not account.arr > 0"))))]


def corpus(crm: SQLCRM) -> None:
    crm.add_user(User(id="mia", email="mia@example.com", name="Mia"))
    crm.add_user(User(id="u1", email="u1@example.com", name="Una", manager_id="mia"))
    crm.add_user(User(id="u2", email="u2@example.com", name="Ugo"))
    segments, stages, owners = ("strategic", "commercial", "smb"), ("onboard", "adopt", "renew"), ("u1", "u2", None)
    arrs = (0.0, 1000.0, 50000.0, -0.0, 12.5, -5.0, -7.25)
    kickoffs: tuple[object, ...] = ("2026-02-25", "2026-02-26T15:00:00+01:00", "2026-02-24", "soon", None, "")
    fields_of: tuple[dict[str, object], ...] = (
        {"tier": "gold"}, {"tier": "silver", "score": 5}, {}, {"score": "high"}, {"score": 1})
    for i in range(60):
        days = (120, 90, 30, 119, 28, 200, 88)[i % 7]
        fields: dict[str, object] = dict(fields_of[i % 5])
        if kickoffs[i % 6] is not None:
            fields["kickoff"] = kickoffs[i % 6]
        crm.add_account(Account(
            id=f"x{i:02d}", name=f"X {i}", segment=segments[i % 3], lifecycle_stage=stages[(i // 3) % 3],
            owner_id=owners[i % 3], arr=arrs[i % 5], health_score=None if i % 4 == 0 else (i * 7) % 100,
            renewal_date=None if i % 11 == 10 else TODAY + timedelta(days=days - i % 3), fields=fields))
        if i % 2:
            crm.add_contact(Contact(id=f"c{i}", account_id=f"x{i:02d}", email=f"c{i}@example.com", primary=True))


async def runs(store: Store, crm: SQLCRM) -> None:
    """An active run, a used occurrence key (ended long ago), and a run that ended 5 days ago (cooldown)."""
    accounts = {a.id: a for a in await crm.list_accounts(None, 100)}
    due = [a.id for a in accounts.values() if a.segment != "smb" and a.arr > 0 and a.renewal_date is not None
           and any(0 <= (a.renewal_date - TODAY).days - n < 3 for n in (90, 120)) and a.id not in ("x01", "x07")]
    for n, (account_id, ended) in enumerate((("x01", None), ("x07", NOW - timedelta(days=400)),
                                             (due[0], NOW - timedelta(days=5)), ("x15", NOW - timedelta(days=5)))):
        renewal = accounts[account_id].renewal_date
        key = renewal.isoformat() if renewal and account_id == "x07" else "an-older-renewal"
        run_id = f"pb:renewals:{account_id}:{key}"
        await store.add_run(run_id=run_id, temporal_run_id=f"t{n}", playbook="renewals", version="v1",
                            account_id=account_id, occurrence=key, started_at=NOW - timedelta(days=500))
        if ended is not None:
            await store.end_run(run_id, status="completed", at=ended)


async def general(crm: SQLCRM, store: Store) -> dict[tuple[str, str], Decision]:
    out = {}
    for account in await crm.list_accounts(None, 100):
        view = await crm.account_view(account.id)
        assert view is not None
        data = view_data(view)
        for playbook in PLAYBOOKS:
            facts = await facts_for(store, playbook, data["account"], now=NOW, calendar=BERLIN,
                                    contacts=tuple(data["contacts"]))
            decision = decide(playbook, Scan(account_id=account.id, since=SINCE, today=TODAY), facts)
            if decision is not None:
                out[(playbook.id, account.id)] = decision
    return out


async def test_the_fast_path_and_the_general_path_agree(db_url: str) -> None:
    crm, store = SQLCRM(db_url), Store(db_url)
    try:
        corpus(crm)
        await runs(store, crm)
        found, candidates = await find_due(crm, store, PLAYBOOKS, since=SINCE, today=TODAY, now=NOW,
                                           calendar=BERLIN, page=4)
        slow = await general(crm, store)
    finally:
        crm.close()
        store.close()
    fast = {(f.playbook.id, f.decision.account_id): f.decision for f in found}
    assert len(fast) == len(found) <= candidates
    left_out = {k: d.reason for k, d in slow.items() if k not in fast}
    assert set(left_out.values()) <= {"audience_segment", "audience_stage", "audience_when", "expression_error"}
    # audience.when drops an account only in SQL, and only where its numbers fail (never a start).
    when_sql = {p.id for p in PLAYBOOKS if numbers(p.audience.when)}
    assert when_sql == {"renewals", "numbers-0", "numbers-1", "numbers-2", "numbers-3"}
    dropped = {p for (p, _), r in left_out.items() if r in ("audience_when", "expression_error")}
    assert dropped == when_sql - {"numbers-0"}
    assert fast[("numbers-0", "x16")].reason == "started"  # a null score: != passes it; SQL kept it
    assert fast[("numbers-1", "x16")].reason == "expression_error"  # >= cannot compare it: kept, reported
    assert fast == {k: d for k, d in slow.items() if k not in left_out}
    # The corpus reaches every outcome the fast path can take, so the comparison is not empty.
    assert {d.reason for d in fast.values()} == {"started", "already_active", "duplicate_occurrence", "cooldown",
                                                 "audience_when", "expression_error"}
    assert len(left_out) >= 5 and {p for p, _ in fast} == {p.id for p in PLAYBOOKS}


def test_only_expressions_that_read_plain_values_are_remembered() -> None:
    assert paths("account.arr > 0") == (("account", "arr"),)
    assert paths("account['fields'].tier == 'gold' or today > account.renewal_date") == (
        ("account", "fields", "tier"), ("today",), ("account", "renewal_date"))
    for src in ("contacts | length > 0", "account.items()", "account.name ~ 'x'", "now + days(3)", "account.x is none",
                "account.items", "account[account.key]", "{{"):
        assert paths(src) is None, src
    plain = {"name", "arr", "renewal_date", "contract_start", "renewal_status", "health"}
    assert unread(["account.arr > 0", None, "account.renewal_date"]) == {"people", "usage", "fields", *plain} - {
        "arr", "renewal_date"}
    assert unread(["account.owner.name == 'x'", "account.usage.logins > 3"]) == {"fields", *plain}
    assert unread(["contacts[0].email"], ["fields.kickoff", "contract_start"]) == {"usage", *plain} - {"contract_start"}
    assert unread(["account.health.score < 3 and account.name"]) == {"people", "usage", "fields", *plain} - {
        "health", "name"}
    assert unread(["account | length"]) == unread(["account == 1"]) == set()


def test_the_raw_key_tells_apart_what_expressions_see_differently() -> None:
    """seen_key reads the account as the facts hold it (dates as ISO text) and still keys apart every two
    accounts that account_seen (what expressions see) makes different: the Memo's own key of the seen
    values, plus whether the date fields become dates (all of them valid ISO text, or none converted)."""
    reads = (("account", "renewal_date"), ("account", "arr"), ("account", "health", "score"))
    accounts: list[dict[str, Any]] = [
        {"renewal_date": d, "contract_start": c, "arr": arr, "health": h}
        for d in ("2026-05-01", "2026-05-02", "soon", None, 20260501)
        for c in ("2025-05-01", "not a date", None)
        for arr in (0, 0.0, -0.0, False, 3)
        for h in ({"score": 4}, {"score": None}, {}, None)]
    keys: dict[Any, Any] = {}
    for account in accounts:
        key = seen_key(account, reads, True)
        seen = {"account": account_seen(account)}
        want = tuple(value_key(seen, p) for p in reads)
        if key is None:
            assert None in want
            continue
        assert None not in want
        assert keys.setdefault(key, want) == want, account  # one key, one set of seen values
    assert len(keys) == 180  # the corpus reaches many kinds, so the comparison is not empty
    # A malformed contract_start leaves renewal_date as text: a different key for the same renewal_date.
    valid = {"renewal_date": "2026-05-01", "contract_start": "2025-05-01"}
    assert seen_key(valid, reads[:1], True) != seen_key({**valid, "contract_start": "x"}, reads[:1], True)
    assert seen_key({"health": {"score": [1]}}, reads[2:], False) is None  # not a plain value


def test_the_memo_tells_apart_values_that_compare_equal() -> None:
    memo = Memo()
    for arr, want in ((0, "0"), (0.0, "0.0"), (False, "False"), (-0.0, "-0.0"), (None, "None"), (0, "0")):
        assert str(memo.evaluate("account.arr", {"account": {"arr": arr}})) == want
    assert isinstance(memo.evaluate("account.arr", {"account": {}}), Undefined)  # evaluated, never remembered
    assert memo.evaluate("account.arr * 2", {"account": {"arr": 2}}) == 4
    assert memo.evaluate("account.arr * 2", {"account": {"arr": 3}}) == 6
    assert len(memo.answers) == 7


def test_the_memo_builds_the_context_only_when_it_must_evaluate() -> None:
    memo, built = Memo(), []

    def full(arr: float) -> Callable[[], dict[str, Any]]:
        def make() -> dict[str, Any]:
            built.append(arr)
            return {"account": {"arr": arr}, "limit": 3}
        return make

    def account(arr: float) -> Callable[[], dict[str, Any]]:
        return lambda: {"account": {"arr": arr}}

    assert memo.evaluate("account.arr > 0", full(5), account(5)) is True
    assert memo.evaluate("account.arr > 0", full(5), account(5)) is True  # answered from the account alone
    assert memo.evaluate("account.arr > 0", full(0), account(0)) is False
    assert built == [5, 0]
    # An expression that reads more than the account takes its key from the whole context, every time.
    assert memo.evaluate("account.arr > limit", full(5), account(5)) is True
    del built[:]
    assert memo.evaluate("account.arr > limit", full(5), account(5)) is True  # remembered, by both values
    assert built == [5]


async def test_a_decision_is_made_once_per_kind_of_account_and_copied_exactly(db_url: str) -> None:
    """decide_scan (engine/triggers/scanmatch.py) answers as the matcher without a memo, field for field, while
    asking it only once per kind of account; the signals and facts it is given, set up without their
    dataclasses' __init__, equal those made by it."""
    crm, store = SQLCRM(db_url), Store(db_url)
    try:
        corpus(crm)
        await runs(store, crm)
        accounts = await crm.list_accounts(None, 100)
        for playbook in PLAYBOOKS:
            facts = await page_facts(crm, store, playbook, accounts, now=NOW, calendar=BERLIN, users={})
            memo, made = Memo(), 0
            for signal in scans([a.id for a in accounts], SINCE, TODAY):
                assert signal == Scan(account_id=signal.account_id, since=SINCE, today=TODAY)
                f = facts[signal.account_id]
                assert f == Facts(**{k: getattr(f, k) for k in Facts.__dataclass_fields__})
                want = decide(playbook, signal, f)
                assert decide_scan(playbook, signal, f, memo) == want
                made += want is not None
            if playbook.id == "renewals":  # many accounts of one kind: decided once each kind
                plan = memo.decisions["scan-plan"]
                assert 0 < sum(len(kind.shapes) for kind in plan.kinds.values()) < made
    finally:
        crm.close()
        store.close()
