"""A real stack for workflow tests: the time-skipping Temporal server, the SQL CRM on SQLite, the
email and chat outboxes and the ledger, with a worker on a task queue of its own."""

from __future__ import annotations

import dataclasses
import os
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from connectors.base import CRM, Account, Chat, Contact, Http, Mailer, User
from connectors.ledger import Ledger
from connectors.outbox import ChatOutbox, EmailOutbox
from connectors.sqlcrm import SQLCRM
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.language.validate import check_text
from engine.payloads.runtypes import RULES, RunInput, StartInput, run_id_for
from engine.runtime.activities import PlaybookActivities
from engine.runtime.temporal import temporal_starter
from engine.runtime.workflow import PlaybookRun, sandbox_runner
from engine.store.store import Store
from engine.triggers.door import Door, start_from_step

TEST_SERVER = os.path.join(os.path.dirname(sys.executable), "temporal-test-server")
HISTORIES = Path(__file__).resolve().parent / "histories"


async def record_history(handle: WorkflowHandle[Any, Any], name: str) -> None:
    """With CSOPS_RECORD_HISTORIES=1, save the run's history for tests/workflows/test_replay.py."""
    if os.environ.get("CSOPS_RECORD_HISTORIES") != "1":
        return
    history = await handle.fetch_history()
    HISTORIES.mkdir(exist_ok=True)
    (HISTORIES / f"{name}.json").write_text(history.to_json(), encoding="utf-8")


@dataclass
class Stack:
    env: WorkflowEnvironment
    crm: SQLCRM
    mail: EmailOutbox
    chat: ChatOutbox
    ledger: Ledger
    queue: str
    activities: PlaybookActivities
    registry: dict[str, Playbook] = dataclasses.field(default_factory=dict)
    """Playbooks start_playbook can start (what the worker loads from CSOPS_PLAYBOOKS)."""
    store: Store | None = None
    """The engine's store start_playbook records its decisions and runs in (as the worker's does)."""

    async def crm_renewal(self, day: date) -> None:
        self.crm.add_account(dataclasses.replace(await self._acme(), renewal_date=day))

    async def crm_health(self, score: int) -> None:
        self.crm.add_account(dataclasses.replace(await self._acme(), health_score=score,
                                                 health_band="green" if score >= 70 else "red"))

    async def crm_account_copy(self, account_id: str) -> Account:
        return dataclasses.replace(await self._acme(), id=account_id, name=account_id.title())

    async def _acme(self) -> Account:
        account = await self.crm.get_account("acme")
        assert account is not None
        return account

    def register(self, text: str) -> Playbook:
        result = check_text(text, "<test>")
        assert result.playbook is not None, [p.message for p in result.problems]
        self.registry[result.playbook.id] = result.playbook
        return result.playbook

    async def starter(self, inp: StartInput) -> str:
        """The worker's start_playbook path: through the door (engine/triggers/door.py), recorded in ``store``."""
        assert self.store is not None
        door = Door(store=self.store, crm=self.crm, playbooks=lambda: self.registry, calendar=Calendar(),
                    start=temporal_starter(self.env.client, self.queue, calendar=Calendar()))
        return await start_from_step(door, inp)

    async def start(self, text: str, account_id: str = "acme", occurrence: str = "",
                    trigger: dict[str, Any] | None = None) -> WorkflowHandle[Any, Any]:
        result = check_text(text, "<test>")
        assert [p.message for p in result.problems if p.severity == "error"] == []
        assert result.playbook is not None
        pb = result.playbook
        import yaml
        data = yaml.safe_load(text)
        return await self.env.client.start_workflow(
            PlaybookRun.run, RunInput(rules=RULES, playbook=data, version=pb.version, account_id=account_id,
                                      occurrence=occurrence, trigger=trigger or {"type": "manual"}),
            id=run_id_for(pb.id, account_id, occurrence), task_queue=self.queue)


def seed(crm: SQLCRM, *, renewal: date | None = None, health: int = 80) -> None:
    crm.add_user(User(id="u-mgr", email="maria@example.com", name="Maria Manager"))
    crm.add_user(User(id="u-csm", email="carl@example.com", name="Carl CSM", manager_id="u-mgr"))
    crm.add_user(User(id="u-ops", email="ops@example.com", name="Ops Fallback"))
    crm.add_account(Account(id="acme", name="Acme Corp", segment="strategic", lifecycle_stage="renew",
                            owner_id="u-csm", arr=120000.0, renewal_date=renewal, renewal_status="open",
                            health_score=health, health_band="green" if health >= 70 else "red"))
    crm.add_contact(Contact(id="c-1", account_id="acme", email="pat@acme.example", first_name="Pat",
                            last_name="Lee", role="champion", primary=True))
    crm.add_contact(Contact(id="c-2", account_id="acme", email="bill@acme.example", first_name="Bill",
                            role="billing"))


@asynccontextmanager
async def stack(tmp_path: Path, http: Http | None = None, *, mailer: Mailer | None = None, chat: Chat | None = None,
                crm: CRM | None = None, **seed_args: Any) -> AsyncIterator[Stack]:
    """The stack; ``mailer``/``chat``/``crm`` replace the embedded defaults for the side effects
    (the built-in CRM is still seeded and returned as ``Stack.crm``, for reads by the test)."""
    env = await WorkflowEnvironment.start_time_skipping(test_server_existing_path=TEST_SERVER)
    sql = SQLCRM(f"sqlite:///{tmp_path}/crm.db")
    seed(sql, **seed_args)
    ledger = Ledger(f"sqlite:///{tmp_path}/ledger.db")
    store = Store(f"sqlite:///{tmp_path}/harness-store.db")
    mail, outbox = EmailOutbox(tmp_path / "mail"), ChatOutbox(tmp_path / "chat.jsonl")
    acts = PlaybookActivities(crm=crm or sql, mailer=mailer or mail, chat=chat or outbox, ledger=ledger, http=http,
                              fallback_owner="ops@example.com")
    queue = f"test-{uuid.uuid4()}"
    try:
        async with env, Worker(env.client, task_queue=queue, workflows=[PlaybookRun], activities=acts.all(),
                               workflow_runner=sandbox_runner(),
                               workflow_failure_exception_types=[Exception]):
            s = Stack(env, sql, mail, outbox, ledger, queue, acts, store=store)
            acts.starter = s.starter
            yield s
    finally:
        store.close()
        sql.close()
        ledger.close()
