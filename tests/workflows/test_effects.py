"""Effect activities on their own: each re-reads the account, checks the exit criteria and the
step's ``when``, renders and does its effect once; plans for several recipients are kept."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from connectors.base import Account, AccountView, Contact, User
from connectors.sqlcrm import SQLCRM
from engine.language.coverage import parse_coverage
from engine.payloads.runtypes import AlertInput, EmailInput, NoteInput, StepOutcome, StepScope, TaskInput
from tests.workflows.harness import stack

NOW = "2026-11-23T09:00:00+00:00"


def scope(**kw: str) -> StepScope:
    return StepScope(now=NOW, run={"id": "pb:x:acme:once", "playbook": "x"}, **kw)  # type: ignore[arg-type]


async def test_exit_criteria_and_when_are_checked_against_the_account_read_now(tmp_path: Path) -> None:
    async with stack(tmp_path, health=30) as s:
        env, acts = ActivityEnvironment(), s.activities
        note = NoteInput(key="pb:x:acme:once/n", account_id="acme", text="Health {{ account.health.score }}",
                         scope=scope(exit_when="account.health.score >= 70"))
        assert await env.run(acts.add_note, note) == StepOutcome(status="done", result=s.crm.list_notes("acme")[0].id)
        await s.crm_health(85)  # the CRM changes between two steps: the next one sees it
        exited = await env.run(acts.add_note, dataclasses.replace(note, key="pb:x:acme:once/n2"))
        assert exited == StepOutcome(status="exited", detail="exit criteria met: account.health.score >= 70")
        skipped = await env.run(acts.add_note, dataclasses.replace(
            note, key="pb:x:acme:once/n3", scope=scope(when="account.health.score < 50")))
        assert skipped == StepOutcome(status="skipped")
        assert [n.text for n in s.crm.list_notes("acme")] == ["Health 30"]


async def test_a_mistake_in_a_text_is_a_non_retryable_failure_and_does_nothing(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        note = NoteInput(key="pb:x:acme:once/bad", account_id="acme", text="{{ account.nope.deeper }}", scope=scope())
        with pytest.raises(ApplicationError) as err:
            await ActivityEnvironment().run(s.activities.add_note, note)
        assert err.value.non_retryable and err.value.type == "ExpressionError"
        assert "nope" in str(err.value)
        assert s.crm.list_notes("acme") == [] and await s.ledger.get(note.key) is None


async def test_without_a_scope_texts_are_literal(tmp_path: Path) -> None:
    # The engine's own messages (a failed run's alert) may contain braces from an error text.
    async with stack(tmp_path) as s:
        alert = AlertInput(key="pb:x:acme:once/failed", account_id="acme", to=["#cs-ops"], text="bad {{ x }}")
        out = await ActivityEnvironment().run(s.activities.send_alert, alert)
        assert out.status == "done" and [m["text"] for m in s.chat.messages()] == ["bad {{ x }}"]


async def test_a_retried_alert_sends_the_rest_of_the_recorded_plan(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        env = ActivityEnvironment()
        alert = AlertInput(key="pb:x:acme:once/a", account_id="acme", to=["#cs-risk", "owner"],
                           text="{{ account.name }} at risk", scope=scope())
        # As if a first attempt planned, sent to the channel, then crashed: the plan and the
        # first message are in the ledger; the CRM changes before the retry.
        plan = {"text": "Acme Corp at risk", "blocks": [],
                "to": [{"key": "pb:x:acme:once/a/0.0", "channel": "cs-risk", "user_email": ""},
                       {"key": "pb:x:acme:once/a/1.0", "channel": "", "user_email": "carl@example.com"}]}
        await s.ledger.record("pb:x:acme:once/a/plan", plan)
        await s.ledger.record("pb:x:acme:once/a/0.0", "cs-risk:1")
        s.crm.add_account(dataclasses.replace(await s.crm_account_copy("acme"), name="Renamed Inc"))
        out = await env.run(s.activities.send_alert, alert)
        assert out == StepOutcome(status="done", result=["cs-risk:1", out.result[1]])
        sent = s.chat.messages()
        assert [(m["user_email"], m["text"]) for m in sent] == [("carl@example.com", "Acme Corp at risk")]
        again = await env.run(s.activities.send_alert, alert)
        assert again == out and len(s.chat.messages()) == 1


async def test_an_email_step_renders_for_each_recipient_and_sends_each_once(tmp_path: Path) -> None:
    async with stack(tmp_path) as s:
        s.crm.add_contact(Contact(id="c-3", account_id="acme", email="zoe@acme.example", first_name="Zoe",
                                  role="billing"))
        mail = EmailInput(key="pb:x:acme:once/e", account_id="acme", to="contacts:billing", sender="owner",
                          subject="Invoice for {{ account.name }}", body="Hi {{ contact.first_name }}",
                          scope=scope())
        env = ActivityEnvironment()
        first = await env.run(s.activities.send_email, mail)
        assert await env.run(s.activities.send_email, mail) == first
        got = sorted((m["To"], m["From"], m["Subject"], m.get_content().strip()) for m in s.mail.messages())
        assert got == [("bill@acme.example", "Carl CSM <carl@example.com>", "Invoice for Acme Corp", "Hi Bill"),
                       ("zoe@acme.example", "Carl CSM <carl@example.com>", "Invoice for Acme Corp", "Hi Zoe")]


class CountingCRM(SQLCRM):
    """The real SQL CRM, counting how the engine reads accounts."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reads: list[str] = []

    async def get_account(self, account_id: str) -> Account | None:
        self.reads.append("account")
        return await super().get_account(account_id)

    async def account_view(self, account_id: str) -> AccountView | None:
        self.reads.append("view")
        return await super().account_view(account_id)


NOTES = """\
playbook: reads
title: What each step reads
triggers: [{manual: {}}]
steps:
  - id: plain
    note: {text: "Hello {{ account.name }}"}
  - id: named
    note: {text: "Owner {{ account.owner.name }}"}
  - id: pause
    wait: 1d
  - id: call
    task: {title: "Call {{ account.name }}"}
"""


async def test_a_step_reads_the_people_only_when_it_needs_them(tmp_path: Path) -> None:
    # Each read of the account's people costs CRM calls (API calls for HubSpot or Salesforce).
    crm = CountingCRM(f"sqlite:///{tmp_path}/crm.db")
    try:
        async with stack(tmp_path, crm=crm) as s:
            out = await (await s.start(NOTES)).result()
    finally:
        crm.close()
    assert out.outcome == "completed"
    assert [n.text for n in s.crm.list_notes("acme")] == ["Hello Acme Corp", "Owner Carl CSM"]
    # plain: the account alone; named: it names the owner; the wait evaluates nothing, so reads
    # nothing; the task resolves its assignee (owner).
    assert crm.reads == ["account", "view", "view"]


COVERAGE = """\
default_fallback_owner: ops@example.com
teams:
  pod: {members: [carl@example.com, maria@example.com, dana@example.com], mode: round_robin}
out_of_office:
  maria@example.com: {until: 2026-11-30, backup: ops@example.com}
"""


async def test_parties_resolve_through_the_coverage_model_and_say_how(tmp_path: Path) -> None:
    coverage, problems = parse_coverage(COVERAGE)
    assert problems == [] and coverage is not None
    async with stack(tmp_path) as s:
        s.crm.add_user(User(id="u-dana", email="dana@example.com", name="Dana CSM"))
        s.activities.coverage = coverage
        env = ActivityEnvironment()
        made = [await env.run(s.activities.create_task, TaskInput(
            key=f"pb:x:acme:once/t{i}", account_id="acme", assignee="team:pod", title="T", scope=scope()))
            for i in range(4)]
        # Maria is away on 2026-11-23 (the scope's today), so the pod's turns go to Carl and Dana.
        assert [m.result["assignee"] for m in made] == ["carl@example.com", "dana@example.com"] * 2
        backed = await env.run(s.activities.create_task, TaskInput(
            key="pb:x:acme:once/m", account_id="acme", assignee="user:maria@example.com", title="T", scope=scope()))
        assert backed.result["assignee"] == "ops@example.com"
        assert any("out of office" in step for step in backed.result["resolved"]), backed.result["resolved"]
        later = StepScope(now="2026-12-01T09:00:00+00:00", run={"id": "pb:x:acme:once"})
        back = await env.run(s.activities.create_task, TaskInput(
            key="pb:x:acme:once/m2", account_id="acme", assignee="user:maria@example.com", title="T", scope=later))
        assert back.result["assignee"] == "maria@example.com"
