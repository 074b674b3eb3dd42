"""A console over real parts: the store and the built-in CRM on SQLite, the ingestor, a playbooks folder.

Shared by the plain HTTP tests and the browser tests. Data goes in through the real code paths:
accounts and users through the CRM, events through the Ingestor (which records the health
history and the trigger decisions), runs as the starter records them, tasks as a run's step
creates them (CRM create_task with the run's idempotency key).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from connectors.base import Account, NewTask, User
from connectors.sqlcrm import SQLCRM
from engine.store.console_auth import add_user
from engine.store.store import Store

PASSWORD = "correct horse battery"
OPS, CSM, OTHER = "olivia@example.com", "carl@example.com", "cora@example.com"
VALID = """playbook: save-plan
title: Save plan
triggers:
  - health_drop: { below: 50 }
steps:
  - id: plan
    task:
      assign: owner
      title: "Save plan for {{ account.name }}"
      due: 3d
      wait_for_completion: true
  - id: check-in
    task:
      assign: owner
      title: "Check in with {{ account.name }}"
"""
INVALID = """playbook: broken-play
title: Broken
triggers:
  - health_drop: { below: 50 }
steps:
  - id: remind
    task:
      assign: owner
      title: Remind
      due: 3 dayz
"""
"""An invalid playbook: the duration on line 10 is a typo."""


HEALTH = """model: console-test
missing: skip
weights_total: 100
buckets:
  usage:
    weight: 60
    measures:
      logins_30d:
        source: { count: usage.login, within: 30d }
        weight: 100
        range: { from: 5, to: 45 }
  commercial:
    weight: 40
    measures:
      arr:
        source: { field: arr }
        weight: 100
        range: { from: 0, to: 200000 }
bands:
  red_below: 45
  yellow_below: 65
"""
"""A health model beside the playbooks: Acme (ARR 120,000, no logins) scores 0.6 × 0 + 0.4 × 60 = 24."""


def playbooks_folder(root: Path) -> Path:
    folder = root / "playbooks"
    folder.mkdir()
    (folder / "save-plan.yaml").write_text(VALID, encoding="utf-8")
    (folder / "health.yaml").write_text(HEALTH, encoding="utf-8")
    (folder / "broken-play.yaml").write_text(INVALID, encoding="utf-8")
    return folder


def seed_crm(crm: SQLCRM) -> None:
    crm.add_user(User(id="u-carl", email=CSM, name="Carl CSM"))
    crm.add_user(User(id="u-cora", email=OTHER, name="Cora CSM"))
    crm.add_account(Account(id="acme", name="Acme Corp", segment="strategic", lifecycle_stage="adopt",
                            owner_id="u-carl", arr=120000.0, health_score=80, health_band="green"))
    crm.add_account(Account(id="globex", name="Globex", segment="commercial", lifecycle_stage="adopt",
                            owner_id="u-cora", arr=50000.0, health_score=75, health_band="green"))
    crm.add_account(Account(id="initech", name="Initech", segment="smb", lifecycle_stage="renew",
                            owner_id="u-cora", arr=9000.0, health_score=None, health_band=""))


async def seed_users(store: Store) -> None:
    await add_user(store, OPS, role="ops", password=PASSWORD, name="Olivia Ops")
    await add_user(store, CSM, role="csm", password=PASSWORD, name="Carl CSM", crm_user="u-carl")
    await add_user(store, OTHER, role="csm", password=PASSWORD, name="Cora CSM", crm_user="u-cora")


EMAILS = {"u-carl": CSM, "u-cora": OTHER}


async def recorded_run(store: Store, crm: SQLCRM, playbook: str, account: str, assignee: str, *,
                       started: datetime, due: date | None = None) -> str:
    """A run as the starter records it, with the task its first step creates (keyed by the run, as
    activities do) and recorded in the store's run_tasks as a refresh records it."""
    from engine.runtime.runtasks import save_tasks

    run_id = f"pb:{playbook}:{account}:once"
    await store.add_run(run_id=run_id, temporal_run_id="t-1", playbook=playbook, version="v" * 64,
                        account_id=account, trigger={"type": "health_drop"}, started_at=started)
    task = await crm.create_task(NewTask(account_id=account, assignee_id=assignee, title=f"Save plan for {account}",
                                         due=due), idempotency_key=f"{run_id}/plan")
    await save_tasks(store, [{"task_id": task.id, "run_id": run_id, "step": "plan", "playbook": playbook,
                              "version": "v" * 64, "account_id": account, "assignee": EMAILS[assignee],
                              "title": task.title, "due": due, "created_at": started, "status": "open",
                              "closed_at": None, "escalations": 0}])
    return run_id


def week_start(now: datetime) -> datetime:
    return (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)


NOW = datetime.now(UTC)
