"""Resolving a party (who) to people through the coverage model, recording how.

Rules, in order (docs/coverage.md explains them for ops):

- ``owner``: the holder of the account segment's ``owner_role`` (through ``roles``); without an
  owner role, the account's owner in the CRM. If that is nobody and the segment has a ``team``,
  a member of that team: always the same one for the same account, the next one while they are away.
- ``owner.manager``: the manager of that owner (before any out-of-office cover): the ``managers``
  override, else the CRM's manager.
- ``role:NAME``: the user the account field of ``roles[NAME]`` names (``owner`` or ``fields.X``);
  without ``roles`` in the model, the custom field ``NAME_id`` or ``roles.NAME``.
- ``user:EMAIL``: that user.
- ``team:NAME``: the next member in turn among those not away (the store's counter).
- Out of office (the CRM's flag, or an ``out_of_office`` entry on its dates): the backup (the
  entry's, else the CRM's), followed while backups are away too; away without a backup: nobody.
- Nobody: the segment's ``fallback_owner``, else ``default_fallback_owner``, else CoverageError.

``#channel``, ``primary_contact`` and ``contacts:ROLE`` are not coverage matters: the result says
so by its ``kind`` and names nobody; the caller addresses channels and customer contacts itself.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

from connectors.base import AccountView, User
from engine.errors import CsopsError
from engine.language.coverage import Coverage, Segment
from engine.language.parties import Party, parse_party

__all__ = ["CoverageError", "Directory", "NextInPool", "Resolution", "check_people", "resolve"]

Directory = Callable[[str], Awaitable[User | None]]
"""Looks a user up by id or email (the CRM's ``get_user``)."""
NextInPool = Callable[[str, int], Awaitable[int]]
"""``(team, size)``: the next turn of a team, atomically, as an index in ``range(size)``."""
_MAX_BACKUPS = 10


class CoverageError(CsopsError):
    """Nobody to address and no fallback owner to give the work to; retrying cannot help."""


@dataclass(frozen=True, kw_only=True)
class Resolution:
    """Who a party resolved to, and how."""

    party: str
    """The party as written."""
    kind: Literal["people", "channel", "contacts"]
    """people: ``people`` holds the result; channel, contacts: not a coverage matter (``people`` is empty)."""
    people: tuple[User, ...] = ()
    """The chosen people (one for every people party)."""
    fallback: str = ""
    """Why it fell back to a fallback owner ("" when it did not)."""
    path: tuple[str, ...] = ()
    """How it was resolved, step by step, for the run's record."""


async def resolve(coverage: Coverage, party_text: str, view: AccountView, *, directory: Directory,
                  next_in_pool: NextInPool, today: date) -> Resolution:
    """Who ``party_text`` is for the account in ``view``.

    Args:
        coverage: The model (``Coverage.default(...)`` without a coverage file).
        party_text: A party as a playbook writes it.
        view: The account as read for this step, with its owner and the owner's manager.
        directory: Looks users up by id or email; its connector errors propagate.
        next_in_pool: The team round-robin counter.
        today: The run's date (absences are by date).

    Raises:
        CoverageError: not a party, or nobody to address and no fallback owner.
    """
    party = parse_party(party_text)
    if party is None:
        raise CoverageError(f"{party_text!r} is not a party")
    if party.kind == "channel":
        return Resolution(party=party_text, kind="channel", path=(f"{party_text} is a Slack channel",))
    if party.kind in ("primary_contact", "contacts"):
        return Resolution(party=party_text, kind="contacts",
                          path=(f"{party_text} names customer contacts, which come from the CRM",))
    return await _Resolver(coverage, view, directory, next_in_pool, today).run(party, party_text)


class _Resolver:
    """One resolution: its lookups (each user read once) and the path it records."""

    def __init__(self, coverage: Coverage, view: AccountView, directory: Directory, next_in_pool: NextInPool,
                 today: date) -> None:
        self.cov, self.view, self.directory, self.next_in_pool, self.today = (
            coverage, view, directory, next_in_pool, today)
        self.segment: Segment | None = coverage.segment(view.account.segment)
        self.path: list[str] = []
        # the owner and manager came with the account: no second lookup for them
        self.known: list[User] = [u for u in (view.owner, view.manager) if u is not None]
        self.missing: set[str] = set()

    async def run(self, party: Party, text: str) -> Resolution:
        user, why = await self._person(party)
        fallback = ""
        if user is None:
            user, fallback = await self._fallback(text, why)
        return Resolution(party=text, kind="people", people=(user,), fallback=fallback, path=tuple(self.path))

    async def _person(self, party: Party) -> tuple[User | None, str]:
        """The person and, when nobody, why not."""
        if party.kind == "user":
            user = await self._user(party.value)
            if user is None:
                return None, f"user {party.value} is not among the CRM's users"
            self.path.append(f"user {user.email}")
            return await self._cover(user)
        if party.kind == "role":
            user, why = await self._role(party.value)
            return await self._cover(user) if user else (None, why)
        if party.kind == "team":
            return await self._team(party.value)
        owner, why = await self._owner()
        if owner is None:
            return None, why
        if party.kind == "owner":
            return await self._cover(owner)
        manager, why = await self._manager(owner)
        return await self._cover(manager) if manager else (None, why)

    async def _user(self, ref: str) -> User | None:
        """The user ``ref`` (id or email) names, read once per resolution."""
        key = ref.casefold()
        for user in self.known:
            if user.id == ref or user.email.casefold() == key:
                return user
        if key in self.missing:
            return None
        found = await self.directory(ref)
        if found is None:
            self.missing.add(key)
        else:
            self.known.append(found)
        return found

    async def _owner(self) -> tuple[User | None, str]:
        seg, account = self.segment, self.view.account
        if seg and seg.owner_role:
            self.path.append(f"owner of a {account.segment} account is role {seg.owner_role}")
            owner, why = await self._role(seg.owner_role)
        elif account.owner_id:
            owner = await self._user(account.owner_id)
            why = f"the account's owner {account.owner_id} is not among the CRM's users"
            if owner is not None:
                self.path.append(f"owner -> account.owner -> {owner.email}")
        else:
            owner, why = None, "the account has no owner"
        if owner is None and seg and seg.team:
            pooled = await self._pooled(seg.team)
            if pooled is not None:
                return pooled, ""
            why = f"{why}, and nobody in team {seg.team} is available"
        return owner, why

    async def _role(self, role: str) -> tuple[User | None, str]:
        fields = self.view.account.fields
        if self.cov.roles is None:
            where = f"account.fields.{role}_id"
            ref = fields.get(f"{role}_id")
            if not ref and isinstance(fields.get("roles"), dict):
                where, ref = f"account.fields.roles.{role}", fields["roles"].get(role)
        elif role in self.cov.roles:
            where = "account." + self.cov.roles[role].field
            ref = (self.view.account.owner_id if where == "account.owner"
                   else fields.get(where.removeprefix("account.fields.")))
        else:
            return None, f"role {role} is not in the coverage model"
        if not ref:
            return None, f"the account has no {role} ({where} is empty)"
        user = await self._user(str(ref))
        if user is None:
            return None, f"{where} names {ref}, who is not among the CRM's users"
        self.path.append(f"role {role} -> {where} -> {user.email}")
        return user, ""

    async def _manager(self, owner: User) -> tuple[User | None, str]:
        override = self.cov.managers.get(owner.email.casefold()) or self.cov.managers.get(owner.id.casefold())
        if override:
            manager = await self._user(override)
            if manager is None:
                return None, f"the manager coverage.yaml names for {owner.email}, {override}, is not among the " \
                             "CRM's users"
            self.path.append(f"manager of {owner.email} -> {manager.email} (coverage.yaml managers)")
            return manager, ""
        if not owner.manager_id:
            return None, f"{owner.email} has no manager in the CRM"
        manager = await self._user(owner.manager_id)
        if manager is None:
            return None, f"the manager of {owner.email}, {owner.manager_id}, is not among the CRM's users"
        self.path.append(f"manager of {owner.email} -> {manager.email}")
        return manager, ""

    def _away(self, user: User) -> tuple[bool, str, str]:
        """Whether ``user`` is away today, their backup, and how the record says it."""
        entry = self.cov.out_of_office.get(user.email.casefold()) or self.cov.out_of_office.get(user.id.casefold())
        if entry is not None and entry.active(self.today):
            until = f" until {entry.until.isoformat()}" if entry.until else ""
            return True, entry.backup or user.backup_id or "", f"is out of office{until} (coverage.yaml)"
        return user.out_of_office, user.backup_id or "", "is out of office (CRM)"

    async def _cover(self, user: User) -> tuple[User | None, str]:
        """The person who does the work for ``user`` today: them, or their backup's chain."""
        seen = {user.id}
        for _ in range(_MAX_BACKUPS):
            away, backup_ref, how = self._away(user)
            if not away:
                return user, ""
            if not backup_ref:
                self.path.append(f"{user.email} {how}, no backup")
                return None, f"{user.email} {how} and has no backup"
            backup = await self._user(backup_ref)
            if backup is None:
                return None, f"{user.email} {how}; their backup {backup_ref} is not among the CRM's users"
            self.path.append(f"{user.email} {how} -> backup {backup.email}")
            if backup.id in seen:
                return None, f"{user.email} {how} and every backup in turn is away too"
            seen.add(backup.id)
            user = backup
        return None, f"{user.email} is away, as are {_MAX_BACKUPS} backups in a row"

    async def _usable(self, team: str, ref: str) -> User | None:
        """The member ``ref`` of ``team`` if they can take work today; the path says why not."""
        user = await self._user(ref)
        if user is None:
            self.path.append(f"team {team}: {ref} is not among the CRM's users, skipped")
            return None
        away, _, how = self._away(user)
        if away:
            self.path.append(f"team {team}: {user.email} {how}, skipped")
            return None
        return user

    async def _team(self, team: str) -> tuple[User | None, str]:
        pool = self.cov.teams.get(team)
        if pool is None:
            where = f"in {self.cov.source}" if self.cov.source else "(there is no coverage file)"
            return None, f"team {team} is not defined {where}"
        members = [u for u in [await self._usable(team, ref) for ref in pool.members] if u is not None]
        if not members:
            return None, f"nobody in team {team} is available"
        turn = await self.next_in_pool(team, len(members)) % len(members)
        user = members[turn]
        self.path.append(f"team {team}: turn {turn + 1} of {len(members)} available -> {user.email}")
        return user, ""

    async def _pooled(self, team: str) -> User | None:
        """The team member who owns this account: fixed by the account id, the next one while away."""
        pool = self.cov.teams.get(team)
        if pool is None:
            return None
        start = int.from_bytes(hashlib.sha256(self.view.account.id.encode()).digest()[:8], "big") % len(pool.members)
        for i in range(len(pool.members)):
            user = await self._usable(team, pool.members[(start + i) % len(pool.members)])
            if user is not None:
                self.path.append(f"owner -> team {team} member for this account -> {user.email}")
                return user
        return None

    async def _fallback(self, text: str, why: str) -> tuple[User, str]:
        seg, name = self.segment, self.view.account.segment
        tried = []
        for ref, source in ((seg.fallback_owner if seg else "", f"fallback owner of segment {name}"),
                            (self.cov.default_fallback_owner, "default fallback owner")):
            if not ref:
                continue
            user = await self._user(ref)
            if user is None:
                tried.append(f"the {source} {ref} is not among the CRM's users")
                self.path.append(tried[-1])
                continue
            self.path.append(f"{text} resolved to nobody ({why}) -> {source} {user.email}")
            return user, f"{why}; fell back to {user.email} ({source})"
        what = "; ".join(tried) if tried else "no fallback owner is configured"
        raise CoverageError(f"nobody to address for {text}: {why}, and {what}; set default_fallback_owner in "
                            "coverage.yaml or fallback_owner in csops.yaml to a user the CRM knows")


async def check_people(coverage: Coverage, directory: Directory) -> list[str]:
    """Everyone the model names whom the CRM does not know, in plain words (for ``csops check-config``)."""
    named: dict[str, list[str]] = {}
    for name, seg in coverage.segments.items():
        if seg.fallback_owner:
            named.setdefault(seg.fallback_owner, []).append(f"segments.{name}.fallback_owner")
    if coverage.default_fallback_owner:
        named.setdefault(coverage.default_fallback_owner, []).append("default_fallback_owner")
    for name, team in coverage.teams.items():
        for member in team.members:
            named.setdefault(member, []).append(f"teams.{name}")
    for who, boss in coverage.managers.items():
        named.setdefault(who, []).append("managers")
        named.setdefault(boss, []).append(f"managers.{who}")
    for who, absence in coverage.out_of_office.items():
        named.setdefault(who, []).append("out_of_office")
        if absence.backup:
            named.setdefault(absence.backup, []).append(f"out_of_office.{who}.backup")
    source = coverage.source or "the coverage model"
    return [f"{source}: {ref} ({', '.join(places)}) is not a user of the CRM; fix the address or add the user"
            for ref, places in named.items() if await directory(ref) is None]
