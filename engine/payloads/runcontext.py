"""The context expressions and templates see at run time, read fresh from the CRM.

Before a step evaluates anything the account is re-read (SPEC section 5). For a step with a side
effect that happens inside the step's own activity (one activity per step); for waits, branches
and ``wait_for`` the workflow reads it through the ``load_context`` local activity. Both build the
same context here: the account (with owner and manager) and contacts as JSON-safe data, plus the
workflow's part (trigger, now, today, steps, run).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime
from typing import Any

from connectors.base import CRM, Account, AccountView, AccountViews, Contact, User
from engine.language.context import Calendar, business_days_fn, evaluate, to_eval
from engine.language.coverage import Coverage
from engine.language.coverage_resolve import CoverageError, Directory, NextInPool, resolve
from engine.payloads.runtypes import StepOutcome, StepScope


def user_data(user: User | None) -> dict[str, Any] | None:
    """A user as templates see it (``account.owner``, ``account.owner.manager``)."""
    if user is None:
        return None
    first, _, last = user.name.partition(" ")
    return {"id": user.id, "name": user.name, "email": user.email, "first_name": first, "last_name": last,
            "title": user.title, "timezone": user.timezone, "manager": None}


def contact_data(c: Contact) -> dict[str, Any]:
    """A contact as templates see it (``contact``, ``contacts[i]``)."""
    return {"id": c.id, "email": c.email, "first_name": c.first_name, "last_name": c.last_name,
            "name": f"{c.first_name} {c.last_name}".strip(), "title": c.title, "role": c.role, "phone": c.phone,
            "primary": c.primary}


def account_data(a: Account, owner: dict[str, Any] | None) -> dict[str, Any]:
    """An account as expressions see it (JSON-safe: dates as ISO text)."""
    renewal, start = a.renewal_date, a.contract_start  # inline, not a helper: a scan makes thousands
    return {"id": a.id, "name": a.name, "segment": a.segment, "lifecycle_stage": a.lifecycle_stage, "owner": owner,
            "arr": a.arr, "renewal_date": renewal.isoformat() if renewal else None,
            "contract_start": start.isoformat() if start else None,
            "renewal_status": a.renewal_status,
            "health": {"score": a.health_score, "band": a.health_band, "previous_score": a.previous_health_score},
            "usage": dict(a.usage), "fields": dict(a.fields)}


async def read_view(crm: CRM, account_id: str) -> AccountView | None:
    """The account and its people: in one call where the CRM offers it, else in four."""
    if isinstance(crm, AccountViews):
        return await crm.account_view(account_id)
    account = await crm.get_account(account_id)
    return None if account is None else await view_of(crm, account)


async def view_of(crm: CRM, account: Account,
                  get_user: Callable[[str], Awaitable[User | None]] | None = None) -> AccountView:
    """``account`` with its people from the CRM: owner, the owner's manager (through ``get_user``,
    by default the CRM's own) and contacts."""
    user = get_user or crm.get_user
    owner = await user(account.owner_id) if account.owner_id else None
    manager = await user(owner.manager_id) if owner is not None and owner.manager_id else None
    return AccountView(account=account, owner=owner, manager=manager,
                       contacts=tuple(await crm.list_contacts(account.id)))


def view_data(view: AccountView) -> dict[str, Any]:
    """The JSON-safe ``account`` and ``contacts`` of the context (what ``load_context`` returns)."""
    owner = user_data(view.owner)
    if owner is not None:
        owner["manager"] = user_data(view.manager)
        owner["fallback"] = ""  # the CRM names the owner (covered_data fills it when it does not)
    return {"account": account_data(view.account, owner), "contacts": [contact_data(c) for c in view.contacts]}


async def covered_data(view: AccountView, coverage: Coverage, *, directory: Directory, next_in_pool: NextInPool,
                       today: date) -> dict[str, Any]:
    """``view_data``, with ``account.owner`` the coverage model's owner when the CRM names none.

    SPEC section 4: ``owner`` is the account owner per the coverage model, so an account without an
    owner in the CRM (a tech-touch SMB account) is owned by its team's member or the fallback owner,
    in templates as in parties. The owner's ``fallback`` says how it was found (it is "" for an owner
    the CRM names). Resolved only when the CRM's owner is missing: the common case costs nothing.
    Nobody to resolve to leaves ``account.owner`` None. Connector errors propagate.
    """
    data = view_data(view)
    if view.owner is not None:
        return data
    try:
        found = await resolve(coverage, "owner", view, directory=directory, next_in_pool=next_in_pool, today=today)
    except CoverageError:
        return data
    owner = found.people[0]
    manager = await directory(owner.manager_id) if owner.manager_id else None
    covered = user_data(owner)
    if covered is not None:  # always: owner is a User
        covered["manager"] = user_data(manager)
        covered["fallback"] = found.fallback or "the account has no owner in the CRM; " + "; ".join(found.path)
        data["account"]["owner"] = covered
    return data


def full_context(data: dict[str, Any], *, now: datetime, calendar: Calendar, trigger: dict[str, Any],
                 steps: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """Everything an expression may name (SPEC section 5)."""
    started = run.get("started_at")
    if isinstance(started, str) and started:
        # Carried as ISO text (it crosses Temporal's converter); expressions compute with it:
        # `wait: {until: run.started_at + days(14)}`.
        run = {**run, "started_at": datetime.fromisoformat(started)}
    # business_days(n) counts on the run's calendar, so `today + business_days(5)` is `due: 5 business days`.
    return {**to_eval(data), "trigger": trigger, "now": now, "today": calendar.today(now),
            "business_days": business_days_fn(calendar), "steps": steps, "run": run}


def scoped_context(data: dict[str, Any], scope: StepScope) -> dict[str, Any]:
    """The context of an effect step, from the account data and the workflow's part."""
    return full_context(data, now=datetime.fromisoformat(scope.now), calendar=Calendar.from_dict(scope.calendar),
                        trigger=scope.trigger, steps=scope.steps, run=scope.run)


def guard(scope: StepScope, ctx: dict[str, Any]) -> StepOutcome | None:
    """The exit criteria, then the step's ``when``: the outcome when the step must not go ahead."""
    if scope.exit_when and evaluate(scope.exit_when, ctx):
        return StepOutcome(status="exited", detail=f"exit criteria met: {scope.exit_when}")
    if scope.when and not evaluate(scope.when, ctx):
        return StepOutcome(status="skipped")
    return None
