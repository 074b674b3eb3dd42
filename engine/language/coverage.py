"""The coverage model (``coverage.yaml``): who covers which account, and its loader.

The file is read with the position-keeping loader (engine.language.yamlpos) and checked against
``schemas/coverage.schema.json`` by the playbook validator's schema walker, so every problem is
``coverage.yaml:LINE:COL`` with a rule id and a hint; hooks check what the schema cannot (an email,
a date, a role field) and cross-checks the references between sections. ``Coverage.default``
stands in when there is no file and resolves as the engine did before the model existed. How a
party resolves against the model is engine.language.coverage_resolve; ``check_parties`` holds a playbook's
``role:`` and ``team:`` parties against it at validation time.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from engine.language.parties import parse_party
from engine.language.problems import CATALOGUE, Problem, problem_at
from engine.language.schemafiles import parsed_schema, schema_file
from engine.language.structure import Hook, Walker, describe, label, walk_top_level
from engine.language.yamlpos import Document, Path, load, read_checked

if TYPE_CHECKING:
    pass

__all__ = ["RULES", "SCHEMA_FILE", "Absence", "Coverage", "Role", "Segment", "Team", "load_coverage",
           "parse_coverage"]

SCHEMA_FILE = schema_file("coverage.schema.json")
#: The rules of this file beside the playbook validator's (unknown-key, type, ...): all errors (their
#: severity and text are in the one catalogue, engine.language.problems.CATALOGUE).
RULES: dict[str, str] = {rule: text for rule, (_, text) in CATALOGUE["coverage"].items()}
_UNKNOWN_RULES = {"role": "unknown-role", "team": "unknown-team"}
"""The rule of a party (role:NAME, team:NAME) or segment reference that coverage.yaml does not define."""
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_ROLE_FIELD = re.compile(r"^(owner|fields\.[A-Za-z0-9_]+)$")


@dataclass(frozen=True, kw_only=True)
class Segment:
    """How accounts of one segment are covered."""

    motion: str = ""
    """high_touch, mid_touch, tech_touch...: descriptive, does not change resolution."""
    owner_role: str = ""
    """The role whose holder is ``owner``; empty: the account's owner in the CRM."""
    team: str = ""
    """The team whose members own accounts the owner role leaves without anyone; empty: none."""
    fallback_owner: str = ""
    """Who gets work nobody else gets, for this segment; empty: the default fallback owner."""
    capacity: int = 0
    """Target accounts of this segment per CSM (``csops report workload``); 0: none set."""


@dataclass(frozen=True, kw_only=True)
class Role:
    """Where the account names the holder of a role."""

    field: str
    """``owner`` or ``fields.NAME``."""


@dataclass(frozen=True, kw_only=True)
class Team:
    """A round-robin pool."""

    members: tuple[str, ...]
    """Emails or user ids, in turn order."""
    mode: str = "round_robin"
    """How work is shared (round_robin is the only mode)."""


@dataclass(frozen=True, kw_only=True)
class Absence:
    """A planned absence from coverage.yaml."""

    start: date | None = None
    """``from``: the first day away; None: away now."""
    until: date | None = None
    """The last day away (inclusive); None: until the entry is removed."""
    backup: str = ""
    """Who covers (email or id); empty: the CRM's backup."""

    def active(self, today: date) -> bool:
        """Whether the person is away on ``today``."""
        return (self.start is None or self.start <= today) and (self.until is None or today <= self.until)


@dataclass(frozen=True, kw_only=True)
class Coverage:
    """The coverage model; ``Coverage.default(...)`` when there is no coverage file."""

    segments: Mapping[str, Segment] = field(default_factory=dict)
    """By segment name, lower-cased."""
    default_fallback_owner: str = ""
    """Who gets work nobody else gets when the segment names no one; empty: nobody (an error)."""
    roles: Mapping[str, Role] | None = None
    """By role name; None: ``role:NAME`` reads the account's custom field NAME_id (or roles.NAME)."""
    teams: Mapping[str, Team] = field(default_factory=dict)
    """By team name."""
    managers: Mapping[str, str] = field(default_factory=dict)
    """Manager overrides: user (lower-cased email or id) to manager (email or id)."""
    out_of_office: Mapping[str, Absence] = field(default_factory=dict)
    """Absences: user (lower-cased email or id) to the absence."""
    source: str = ""
    """The file it was read from; empty for the default model."""

    @classmethod
    def default(cls, fallback_owner: str = "") -> Coverage:
        """The model without a coverage file: owner and manager from the CRM, role:NAME from the
        account's custom fields, team:NAME to the fallback owner."""
        return cls(default_fallback_owner=fallback_owner)

    def segment(self, name: str) -> Segment | None:
        """The segment of that name (any case), if the model has it."""
        return self.segments.get(name.casefold()) if name else None

    def check_parties(self, doc: Document) -> list[Problem]:
        """The ``role:`` and ``team:`` parties of a playbook document that this model does not define.

        The default model (no coverage file) defines every role and resolves every team to the
        fallback owner, so it finds nothing. Positions are the party's own.
        """
        if not self.source:
            return []
        problems = []
        for text, p in _parties(doc):
            party = parse_party(text)
            if party is None or party.kind not in ("role", "team"):
                continue
            known: Mapping[str, Any] | None = self.roles if party.kind == "role" else self.teams
            if known is None or party.value in known:
                continue
            section = "roles" if party.kind == "role" else "teams"
            near = difflib.get_close_matches(party.value, list(known), n=1, cutoff=0.6)
            hint = (f'did you mean "{party.kind}:{near[0]}"?' if near
                    else f"add it under {section}: in {self.source}" + (f" (it has {', '.join(known)})" if known
                                                                          else ""))
            problems.append(problem_at(doc, p, _UNKNOWN_RULES[party.kind],
                                       f"{text} is not a {party.kind} of the coverage model ({self.source})", hint))
        return problems


def load_coverage(path: str | os.PathLike[str]) -> tuple[Coverage | None, list[Problem]]:
    """Read and check a coverage file: the model (None when there is any problem) and every problem."""
    return read_checked(path, check_coverage, rule="coverage-file", what="the coverage file",
                        hint="check the path; without a coverage file owners come from the CRM")


def parse_coverage(text: str, path: str = "coverage.yaml") -> tuple[Coverage | None, list[Problem]]:
    """Check coverage text as if read from ``path``, like :func:`load_coverage`."""
    return check_coverage(load(text, path))


def check_coverage(doc: Document) -> tuple[Coverage | None, list[Problem]]:
    """The model and every problem of a parsed coverage document."""
    problems = list(doc.problems)
    data = doc.data
    if data is None and not problems:
        problems.append(problem_at(doc, (), "coverage-file", "the coverage file is empty",
                                   "start with segments:, roles: and teams:, or remove the file to take owners "
                                   "from the CRM"))
    if not isinstance(data, dict):
        if data is not None:
            problems.append(problem_at(doc, (), "type", f"the coverage model must be a mapping (key: value "
                                       f"lines), found {describe(data)}", "start with segments:, roles: and teams:"))
        return None, problems
    schema = coverage_schema()
    walker = Walker(doc, _HOOKS)
    problems.extend(walk_top_level(walker, doc, data, schema, "the coverage model"))
    problems.extend(_cross_checks(doc, data))
    problems = sorted(dict.fromkeys(problems), key=Problem.sort_key)
    if problems:
        return None, problems
    return _typed(doc.path, data), []


def coverage_schema() -> dict[str, Any]:
    """The coverage schema, parsed once per process."""
    return parsed_schema("coverage.schema.json")


def _report(walker: Walker, p: Path, rule: str, message: str, hint: str = "") -> None:
    walker.flagged.append(p)
    if p not in walker.doc.flagged:
        walker.problems.append(problem_at(walker.doc, p, rule, message, hint))


def _email(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if walker.check_type(value, schema, p) and not _EMAIL.match(value):
        _report(walker, p, "fallback-owner", f'{label(p)} "{value}" is not an email address',
                "write the email of a user the CRM knows, e.g. ops@example.com")


def _date(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    text = str(value)
    try:
        ok = isinstance(value, str) and bool(_DATE.match(text)) and bool(date.fromisoformat(text))
    except ValueError:
        ok = False
    if not ok:
        _report(walker, p, "date", f"{label(p)} must be a date YYYY-MM-DD, found {describe(value)}",
                "e.g. until: 2026-12-01")


def _role_field(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p) or _ROLE_FIELD.match(value):
        return
    bare = value.removeprefix("account.")
    fits = bare if _ROLE_FIELD.match(bare) else f"fields.{bare}" if re.fullmatch(r"[A-Za-z0-9_]+", bare) else ""
    _report(walker, p, "role-field", f'field "{value}" is not owner or fields.NAME',
            f'did you mean "{fits}"?' if fits else "write owner (the account's owner) or fields.NAME (a custom "
            "field holding the user's email or id), e.g. fields.ae_id")


_HOOKS: dict[str, Hook] = {"email": _email, "date": _date, "role_field": _role_field}


def _cross_checks(doc: Document, data: dict[str, Any]) -> list[Problem]:
    """References between sections; tolerant of shapes the schema walk already reported."""
    out: list[Problem] = []
    teams, roles = _mapping(data.get("teams")), data.get("roles")
    for name, seg in _mapping(data.get("segments")).items():
        seg = _mapping(seg)
        team, role = seg.get("team"), seg.get("owner_role")
        if isinstance(team, str) and team not in teams:
            out.append(_unknown(doc, ("segments", name, "team"), "team", team, name, teams))
        if isinstance(role, str) and isinstance(roles, dict) and role not in roles:
            out.append(_unknown(doc, ("segments", name, "owner_role"), "role", role, name, roles))
    for name, team in teams.items():
        members = _mapping(team).get("members")
        seen: dict[str, int] = {}
        for i, member in enumerate(members if isinstance(members, list) else []):
            if not isinstance(member, str):
                continue
            first = seen.setdefault(member.casefold(), i)
            if first != i:
                out.append(problem_at(doc, ("teams", name, "members", i), "duplicate-member",
                                      f"{member} is already a member of {name} (item {first + 1})",
                                      "list each person once: a member listed twice gets twice the work"))
    for who, absence in _mapping(data.get("out_of_office")).items():
        absence = _mapping(absence)
        backup, start, until = absence.get("backup"), absence.get("from"), absence.get("until")
        if isinstance(backup, str) and backup.casefold() == who.casefold():
            out.append(problem_at(doc, ("out_of_office", who, "backup"), "self-backup",
                                  f"{who} cannot be their own backup", "name the colleague who covers"))
        if isinstance(start, str) and isinstance(until, str) and _DATE.match(start) and _DATE.match(until) \
                and until < start:
            out.append(problem_at(doc, ("out_of_office", who, "until"), "date",
                                  f"until {until} is before from {start}", "until is the last day away"))
    return out


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _unknown(doc: Document, p: Path, kind: str, name: str, segment: str, known: dict[str, Any]) -> Problem:
    near = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    hint = f'did you mean "{near[0]}"?' if near else f"add {name} under {kind}s:" + (
        f" (defined: {', '.join(known)})" if known else "")
    what = "team" if kind == "team" else "owner_role"
    return problem_at(doc, p, _UNKNOWN_RULES[kind], f'{what} "{name}" of segment {segment} is not in {kind}s', hint)


def _parties(doc: Document) -> list[tuple[Any, Path]]:
    """Every party value of a playbook document and where it is, found by the playbook schema."""
    found: list[tuple[Any, Path]] = []

    def collect(w: Walker, value: Any, p: Path, target: dict[str, Any]) -> None:
        if isinstance(value, str):
            found.append((value, p))

    hooks: dict[str, Hook] = {name: collect for name in ("party_internal", "party_notify", "party_recipient",
                                                         "party_sender")}
    if doc.data is not None:
        Walker(doc, hooks).run()  # its own problems are the validator's business, not ours
    return found


def _typed(path: str, data: dict[str, Any]) -> Coverage:
    """The model from checked data (every value is known to be of the right form)."""
    def day(value: str | None) -> date | None:
        return date.fromisoformat(value) if value else None

    roles = data.get("roles")
    return Coverage(
        segments={name.casefold(): Segment(**(seg or {})) for name, seg in (data.get("segments") or {}).items()},
        default_fallback_owner=data.get("default_fallback_owner") or "",
        roles=None if roles is None else {name: Role(**role) for name, role in roles.items()},
        teams={name: Team(members=tuple(t["members"]), mode=t.get("mode", "round_robin"))
               for name, t in (data.get("teams") or {}).items()},
        managers={who.casefold(): boss for who, boss in (data.get("managers") or {}).items()},
        out_of_office={who.casefold(): Absence(start=day(a.get("from")), until=day(a.get("until")),
                                               backup=a.get("backup") or "")
                       for who, a in (data.get("out_of_office") or {}).items() for a in [a or {}]},
        source=path,
    )
