"""The door for starts by a person or a step (engine/triggers/door.py), on a real store and the built-in CRM,
with a recording ``start``: which rules refuse, what force passes, and what is recorded.

acme is strategic in the renew stage, smallco is smb; it is Monday 2026-11-23, 10:00 UTC.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import Account, User
from connectors.sqlcrm import SQLCRM
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.payloads.runtypes import StartInput
from engine.store.store import Store
from engine.triggers.door import Door, StartRefused, start_by_hand, start_from_step
from engine.triggers.signals import Decision

NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


def playbook(pid: str, triggers: str = "manual: {}", extra: str = "") -> Playbook:
    text = (f"playbook: {pid}\ntitle: T\ntriggers:\n  - {triggers}\naudience:\n  segments: [strategic]\n"
            f"entry:\n  cooldown: 30d\n{extra}steps:\n  - id: t\n    note: {{text: hi}}\n")
    result = check_text(text)
    assert [p.message for p in result.problems if p.severity == "error"] == []
    assert result.playbook is not None
    return result.playbook


@dataclass
class Rig:
    store: Store
    crm: SQLCRM
    books: dict[str, Playbook] = field(default_factory=dict)
    starts: list[Decision] = field(default_factory=list)
    clock: list[datetime] = field(default_factory=lambda: [NOW])

    async def start(self, pb: Playbook, decision: Decision) -> tuple[str, str]:
        self.starts.append(decision)
        return "started", f"trid-{len(self.starts)}"

    def door(self) -> Door:
        return Door(store=self.store, crm=self.crm, playbooks=lambda: self.books, start=self.start,
                    now=lambda: self.clock[0])


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM"))
    crm.add_account(Account(id="acme", name="Acme", segment="strategic", lifecycle_stage="renew", owner_id="u-csm"))
    crm.add_account(Account(id="smallco", name="Small", segment="smb", lifecycle_stage="renew", owner_id="u-csm"))
    r = Rig(store, crm)
    r.books = {b.id: b for b in (playbook("manual"), playbook("events", "event: {type: custom.ping}"))}
    yield r
    store.close()
    crm.close()


async def refused(rig: Rig, playbook_id: str, account_id: str, **kw: str | bool) -> StartRefused:
    with pytest.raises(StartRefused) as caught:
        await start_by_hand(rig.door(), playbook_id, account_id, **kw)  # type: ignore[arg-type]
    return caught.value


async def test_a_manual_start_is_decided_recorded_and_started(rig: Rig) -> None:
    done = await start_by_hand(rig.door(), "manual", "acme", by="ann", via="cli")
    assert (done.outcome, done.decision.reason, done.decision.run_id) == ("started", "started", "pb:manual:acme:once")
    assert [d.trigger_data for d in rig.starts] == [{"type": "manual", "index": 0, "by": "ann"}]
    [run] = (await rig.store.runs(account_id="acme")).runs
    assert (run.run_id, run.temporal_run_id, run.status, run.trigger["by"]) == (
        "pb:manual:acme:once", "trid-1", "running", "ann")
    [decision] = await rig.store.decisions(account_id="acme")
    assert (decision.outcome, decision.reason, decision.signal) == (
        "started", "started", {"kind": "manual", "via": "cli", "by": "ann"})
    again = await refused(rig, "manual", "acme")
    assert (again.code, len(rig.starts)) == ("already_active", 1)
    assert "[rule: already_active]" in again.message


@pytest.mark.parametrize(("playbook_id", "account_id", "code", "words"), [
    ("manual", "smallco", "audience_segment", "segment is 'smb', not one of the audience segments (strategic)"),
    ("events", "acme", "no_manual_trigger", "playbook events has no manual trigger"),
    ("nope", "acme", "unknown_playbook", "there is no valid playbook 'nope'; known: events, manual"),
    ("manual", "nobody", "unknown_account", "the CRM has no account 'nobody'"),
])
async def test_what_the_rules_refuse_is_not_started(rig: Rig, playbook_id: str, account_id: str, code: str,
                                                    words: str) -> None:
    exc = await refused(rig, playbook_id, account_id)
    assert exc.code == code and words in exc.message, exc.message
    assert rig.starts == [] and (await rig.store.runs()).runs == []
    recorded = [(d.outcome, d.reason) for d in await rig.store.decisions()]
    assert recorded == ([("suppressed", code)] if code == "audience_segment" else [])


async def test_force_passes_the_cooldown_and_a_missing_manual_trigger_with_the_reason_recorded(rig: Rig) -> None:
    await start_by_hand(rig.door(), "manual", "acme")
    await rig.store.end_run("pb:manual:acme:once", status="completed", at=NOW)
    rig.clock[0] = NOW + timedelta(days=1)
    cooling = await refused(rig, "manual", "acme")
    assert cooling.code == "cooldown" and "--force --reason TEXT starts it anyway" in cooling.message
    assert (await refused(rig, "manual", "acme", force=True)).code == "reason_required"
    done = await start_by_hand(rig.door(), "manual", "acme", force=True, reason="asked by the customer", by="ann")
    assert (done.outcome, done.decision.reason) == ("started", "forced")
    assert done.message.startswith("started pb:manual:acme:once, forced past cooldown (cooldown 30d after")
    assert done.message.endswith("): asked by the customer")
    forced = {"over": "cooldown", "reason": "asked by the customer", "by": "ann"}
    assert rig.starts[-1].trigger_data["forced"] == forced
    latest = (await rig.store.runs(account_id="acme")).runs[0]
    assert (latest.status, latest.trigger["forced"]) == ("running", forced)
    assert [(d.outcome, d.reason) for d in await rig.store.decisions()][:2] == [("started", "forced"),
                                                                               ("suppressed", "cooldown")]
    # Forced or not, one run at a time.
    assert (await refused(rig, "manual", "acme", force=True, reason="again")).code == "already_active"
    no_trigger = await start_by_hand(rig.door(), "events", "acme", force=True, reason="by hand", by="ann")
    assert rig.starts[-1].trigger_data == {"type": "manual", "index": -1, "by": "ann"}
    assert no_trigger.decision.run_id == "pb:events:acme:once"


async def test_a_start_playbook_step_enrols_through_the_same_rules(rig: Rig) -> None:
    def step(target: str, account_id: str = "acme") -> StartInput:
        return StartInput(key="k", account_id=account_id, playbook=target,
                          trigger={"type": "start_playbook", "from": "parent", "run": "pb:parent:acme:once"})

    # No trigger of the target is needed: events has only an event trigger.
    assert await start_from_step(rig.door(), step("events")) == "started"
    assert rig.starts[-1].trigger_data == {"type": "start_playbook", "index": -1, "from": "parent",
                                           "run": "pb:parent:acme:once"}
    assert await start_from_step(rig.door(), step("events")) == "already running"
    assert await start_from_step(rig.door(), step("manual", "smallco")) == (
        "suppressed (audience_segment): segment is 'smb', not one of the audience segments (strategic)")
    assert (await start_from_step(rig.door(), step("gone"))).startswith("not started: there is no valid playbook")
    decisions = [(d.playbook, d.outcome, d.reason, d.signal["kind"]) for d in await rig.store.decisions()]
    assert decisions == [("manual", "suppressed", "audience_segment", "start_playbook"),
                         ("events", "suppressed", "already_active", "start_playbook"),
                         ("events", "started", "started", "start_playbook")]
    assert [r.run_id for r in (await rig.store.runs()).runs] == ["pb:events:acme:once"]


async def test_a_refusal_over_the_api_says_how_to_force_in_the_body_not_the_cli_flags(rig: Rig) -> None:
    await start_by_hand(rig.door(), "manual", "acme", via="api")
    await rig.store.end_run("pb:manual:acme:once", status="completed", at=NOW)
    rig.clock[0] = NOW + timedelta(days=1)
    cooling = await refused(rig, "manual", "acme", via="api")
    assert cooling.code == "cooldown"
    assert cooling.message.endswith('[rule: cooldown]; "force": true with a "reason" starts it anyway')
    no_manual = await refused(rig, "events", "acme", via="api")
    assert no_manual.message.endswith('or force it with "force": true with a "reason"')
    no_reason = await refused(rig, "manual", "acme", via="api", force=True)
    assert no_reason.message == 'a forced start needs a reason ("reason": TEXT): it is recorded with the run'
    assert "--" not in cooling.message + no_manual.message + no_reason.message
