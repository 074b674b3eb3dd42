"""Explain for one account (csops explain, GET /v1/accounts/{id}/explain, the console's account page):
each playbook's checks (engine/triggers/explain.py) over the account as the CRM has it now.

It raises the engine's errors (engine.errors: ``NotFound``, ``Unavailable``), never an HTTP one;
the API answers them at its boundary (engine/api/api_errors.py), the CLI with exit codes. Its own
module, apart from explain.py, because the matching child (matchproc) runs ``explain`` and this
uses the matching child.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.errors import NotFound, Unavailable
from engine.language.context import Calendar
from engine.language.model import Playbook
from engine.payloads.runcontext import read_view, view_data
from engine.store.store import Store
from engine.triggers.enrol import facts_for
from engine.triggers.explain import explain
from engine.triggers.matcher import today_of
from engine.triggers.matchproc import MatchTimeout, MatchWorker
from engine.triggers.signals import Check

__all__ = ["Explained", "explain_account"]


@dataclass(frozen=True, kw_only=True)
class Explained:
    """Explain for one account."""

    account_id: str
    """The account."""
    checks: dict[str, list[Check]]
    """Each playbook's checks, by playbook id."""


async def explain_account(*, store: Store, crm: Any, playbooks: Mapping[str, Playbook], account_id: str,
                          playbook: str | None, now: datetime, calendar: Calendar,
                          matcher: MatchWorker | None = None) -> Explained:
    """The matcher's explain for the account and each playbook (or the one named).

    With ``matcher`` the conditions are evaluated in its child process, off the event loop, each
    playbook within the matcher's time bound: one over it is explained as a single ``error`` check.

    Raises:
        NotFound: ``unknown_playbook``, ``unknown_account``.
        Unavailable: ``crm_unavailable``, no CRM configured.
    """
    if playbook is not None and playbook not in playbooks:
        raise NotFound("unknown_playbook", f"there is no valid playbook {playbook!r}; "
                       f"known: {', '.join(sorted(playbooks)) or 'none'} (csops validate says why one is missing)")
    if crm is None:
        raise Unavailable("crm_unavailable", "no CRM is configured here, so accounts cannot be read")
    view = await read_view(crm, account_id)
    if view is None:
        raise NotFound("unknown_account", f"the CRM has no account {account_id!r}")
    data = view_data(view)
    account = data["account"]
    chosen = [playbooks[playbook]] if playbook is not None else [playbooks[k] for k in sorted(playbooks)]
    checks = {}
    for pb in chosen:
        facts = await facts_for(store, pb, account, now=now, calendar=calendar, contacts=tuple(data["contacts"]),
                                previous_score=account["health"].get("previous_score"))
        if matcher is None:
            checks[pb.id] = explain(pb, facts, today_of(facts))
            continue
        try:
            checks[pb.id] = await matcher.explain(pb, facts, today_of(facts))
        except MatchTimeout as exc:
            checks[pb.id] = [Check(name="conditions", state="error", text=str(exc),
                                   seen={"timeout_s": matcher.timeout})]
    return Explained(account_id=account_id, checks=checks)
