"""The coverage model: every party form, out of office, round robin, fallbacks, and the loader's problems."""

from __future__ import annotations

import json
from collections import Counter
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from connectors.base import Account, AccountView, User
from engine.language.coverage import SCHEMA_FILE, Coverage, load_coverage, parse_coverage
from engine.language.coverage_resolve import CoverageError, Resolution, check_people, resolve
from engine.language.parties import parse_party
from engine.language.yamlpos import load, read
from tests.conftest import ROOT

TODAY = date(2026, 11, 15)

MODEL = """\
segments:
  strategic: {motion: high_touch, owner_role: csm, fallback_owner: maria@example.com}
  commercial: {motion: mid_touch}
  smb: {motion: tech_touch, owner_role: csm, team: smb-pool, fallback_owner: sam@example.com}
default_fallback_owner: ops@example.com
roles:
  csm: {field: owner}
  ae: {field: fields.ae_id}
  exec_sponsor: {field: fields.exec_sponsor}
teams:
  smb-pool: {members: [p1@example.com, p2@example.com, p3@example.com], mode: round_robin}
  ae-pool: {members: [ed@example.com, Fay@Example.com]}
managers:
  carl@example.com: nora@example.com
out_of_office:
  dana@example.com: {until: 2026-12-01, backup: erin@example.com}
  p3@example.com: {from: 2026-11-01, until: 2026-11-20}
"""


def user(name: str, **kw: Any) -> User:
    return User(id=f"u-{name}", email=f"{name}@example.com", name=name.title(), **kw)


class Directory:
    """The CRM's get_user over a fixed set of users, counting lookups."""

    def __init__(self, *users: User) -> None:
        self.users = {u.id: u for u in users}
        self.calls: list[str] = []

    async def __call__(self, ref: str) -> User | None:
        self.calls.append(ref)
        return self.users.get(ref) or next((u for u in self.users.values() if u.email == ref.lower()), None)


class Pool:
    """An in-memory round-robin counter, as the store provides it."""

    def __init__(self) -> None:
        self.turns: Counter[str] = Counter()

    async def __call__(self, team: str, size: int) -> int:
        turn = self.turns[team] % size
        self.turns[team] += 1
        return turn


CARL = user("carl", manager_id="u-maria")
PEOPLE = [CARL, user("maria"), user("nora"), user("ops"), user("sam"), user("ed"), user("fay"),
          user("dana", manager_id="u-maria"), user("erin"), user("p1"), user("p2"), user("p3")]


def model(text: str = MODEL) -> Coverage:
    coverage, problems = parse_coverage(text)
    assert problems == [] and coverage is not None
    return coverage


def view(segment: str = "strategic", owner: User | None = CARL, manager: User | None = None,
         account_id: str = "acc-1", **fields: Any) -> AccountView:
    account = Account(id=account_id, name="Acme", segment=segment, owner_id=owner.id if owner else None,
                      fields=fields)
    return AccountView(account=account, owner=owner, manager=manager)


async def run(party: str, v: AccountView, *people: User, coverage: Coverage | None = None,
              pool: Pool | None = None, today: date = TODAY) -> tuple[Resolution, Directory]:
    directory = Directory(*(people or PEOPLE))
    found = await resolve(coverage or model(), party, v, directory=directory, next_in_pool=pool or Pool(),
                          today=today)
    return found, directory


def who(found: Resolution) -> list[str]:
    return [u.email for u in found.people]


# --- every party form -------------------------------------------------------------------------------

async def test_owner_is_the_segment_owner_role_read_from_the_account_owner_without_a_lookup() -> None:
    found, directory = await run("owner", view())
    assert (found.kind, who(found), found.fallback, found.party) == ("people", ["carl@example.com"], "", "owner")
    assert found.path == ("owner of a strategic account is role csm", "role csm -> account.owner -> carl@example.com")
    assert directory.calls == []  # the view carried the owner


async def test_owner_without_an_owner_role_is_the_crm_owner() -> None:
    found, _ = await run("owner", view("commercial"))
    assert who(found) == ["carl@example.com"]
    assert found.path == ("owner -> account.owner -> carl@example.com",)


async def test_owner_manager_comes_from_the_crm_unless_coverage_overrides_it() -> None:
    dana = next(u for u in PEOPLE if u.email == "dana@example.com")
    found, _ = await run("owner.manager", view(owner=dana), today=date(2026, 12, 2))  # dana is back by then
    assert who(found) == ["maria@example.com"]
    assert found.path[-1] == "manager of dana@example.com -> maria@example.com"
    found, _ = await run("owner.manager", view())  # carl: the CRM says maria, coverage.yaml says nora
    assert who(found) == ["nora@example.com"]
    assert found.path[-1] == "manager of carl@example.com -> nora@example.com (coverage.yaml managers)"


async def test_role_reads_the_field_the_model_names() -> None:
    found, _ = await run("role:ae", view(ae_id="u-ed"))
    assert (who(found), found.path) == (["ed@example.com"], ("role ae -> account.fields.ae_id -> ed@example.com",))
    found, _ = await run("role:exec_sponsor", view(exec_sponsor="FAY@example.com"))  # an email, any case
    assert who(found) == ["fay@example.com"]


async def test_a_role_nobody_holds_falls_back_to_the_segment_fallback_owner() -> None:
    found, _ = await run("role:ae", view())
    assert who(found) == ["maria@example.com"]
    assert found.fallback == ("the account has no ae (account.fields.ae_id is empty); "
                              "fell back to maria@example.com (fallback owner of segment strategic)")


async def test_a_role_outside_the_model_falls_back_and_says_so() -> None:
    found, _ = await run("role:se", view(se_id="u-ed"))
    assert who(found) == ["maria@example.com"]
    assert found.fallback.startswith("role se is not in the coverage model;")


async def test_user_is_that_user_and_an_unknown_one_falls_back() -> None:
    found, _ = await run("user:erin@example.com", view())
    assert (who(found), found.fallback) == (["erin@example.com"], "")
    found, _ = await run("user:ghost@example.com", view())
    assert who(found) == ["maria@example.com"]
    assert found.fallback.startswith("user ghost@example.com is not among the CRM's users;")


async def test_channels_and_customer_contacts_are_not_coverage_matters() -> None:
    for party, kind in (("#cs-risk", "channel"), ("primary_contact", "contacts"), ("contacts:billing", "contacts")):
        found, directory = await run(party, view())
        assert (found.kind, found.people, found.fallback, directory.calls) == (kind, (), "", [])


async def test_a_text_that_is_no_party_is_an_error() -> None:
    with pytest.raises(CoverageError, match="'boss' is not a party"):
        await run("boss", view())


# --- out of office ---------------------------------------------------------------------------------

async def test_crm_out_of_office_goes_to_the_crm_backup() -> None:
    away = user("carl", out_of_office=True, backup_id="u-erin")
    found, _ = await run("owner", view(owner=away), *PEOPLE)
    assert (who(found), found.fallback) == (["erin@example.com"], "")
    assert found.path[-1] == "carl@example.com is out of office (CRM) -> backup erin@example.com"


async def test_crm_out_of_office_without_backup_is_nobody_so_the_fallback_gets_it() -> None:
    away = user("carl", out_of_office=True)
    found, _ = await run("owner", view(owner=away))
    assert who(found) == ["maria@example.com"]
    assert found.fallback == ("carl@example.com is out of office (CRM) and has no backup; "
                              "fell back to maria@example.com (fallback owner of segment strategic)")


async def test_an_absence_in_coverage_counts_through_its_last_day_only() -> None:
    dana = next(u for u in PEOPLE if u.email == "dana@example.com")
    found, _ = await run("owner", view(owner=dana), today=date(2026, 12, 1))
    assert who(found) == ["erin@example.com"]
    assert found.path[-1] == ("dana@example.com is out of office until 2026-12-01 (coverage.yaml) "
                              "-> backup erin@example.com")
    found, _ = await run("owner", view(owner=dana), today=date(2026, 12, 2))
    assert (who(found), found.fallback) == (["dana@example.com"], "")


async def test_an_absence_without_backup_uses_the_crm_backup_and_starts_on_its_from_date() -> None:
    p3 = user("p3", backup_id="u-p1")
    found, _ = await run("user:p3@example.com", view(), *PEOPLE, p3)
    assert who(found) == ["p1@example.com"]
    found, _ = await run("user:p3@example.com", view(), *PEOPLE, p3, today=date(2026, 10, 31))  # not yet away
    assert who(found) == ["p3@example.com"]


async def test_backups_are_followed_while_away_and_a_loop_is_nobody() -> None:
    chain = [user("carl", out_of_office=True, backup_id="u-dana"), user("dana", backup_id="u-erin"), user("erin"),
             user("maria")]
    found, _ = await run("owner", view(owner=chain[0]), *chain)  # dana is away by coverage.yaml
    assert who(found) == ["erin@example.com"]
    loop = [user("carl", out_of_office=True, backup_id="u-fay"),
            user("fay", out_of_office=True, backup_id="u-carl"), user("maria")]
    found, _ = await run("owner", view(owner=loop[0]), *loop)
    assert who(found) == ["maria@example.com"]
    assert "every backup in turn is away too" in found.fallback


# --- teams -----------------------------------------------------------------------------------------

async def test_team_round_robin_shares_work_exactly() -> None:
    pool, seen = Pool(), []
    for _ in range(9):
        found, _ = await run("team:ae-pool", view(), pool=pool)
        seen.append(who(found)[0])
    assert seen == ["ed@example.com", "fay@example.com"] * 4 + ["ed@example.com"]
    assert found.path == ("team ae-pool: turn 1 of 2 available -> ed@example.com",)


async def test_team_skips_members_out_of_office_by_crm_flag_or_coverage() -> None:
    async def share(people: list[User], today: date) -> Counter[str]:
        pool, seen = Pool(), Counter[str]()
        for _ in range(12):
            found, _ = await run("team:smb-pool", view(), *people, pool=pool, today=today)
            seen[who(found)[0]] += 1
        return seen

    back = date(2026, 11, 21)  # p3's absence in coverage.yaml ends on the 20th
    assert await share(PEOPLE, TODAY) == {"p1@example.com": 6, "p2@example.com": 6}
    p2_away = [*PEOPLE, user("p2", out_of_office=True, backup_id="u-ed")]
    assert await share(p2_away, back) == {"p1@example.com": 6, "p3@example.com": 6}  # a team skips, never covers
    assert await share(PEOPLE, back) == {"p1@example.com": 4, "p2@example.com": 4, "p3@example.com": 4}


async def test_a_team_nobody_can_take_falls_back() -> None:
    people = [user("sam"), user("maria"), user("ops")]  # no pool member is in the CRM
    found, _ = await run("team:smb-pool", view(), *people)
    assert who(found) == ["maria@example.com"]
    assert found.fallback.startswith("nobody in team smb-pool is available;")
    assert found.path[0] == "team smb-pool: p1@example.com is not among the CRM's users, skipped"


async def test_segment_team_owns_accounts_without_owner_stably_per_account() -> None:
    pool = Pool()
    owners = {}
    for n in range(12):
        v = view("smb", owner=None, account_id=f"acc-{n}")
        first, _ = await run("owner", v, pool=pool, today=date(2026, 11, 21))
        again, _ = await run("owner", v, pool=pool, today=date(2026, 11, 21))
        assert who(first) == who(again) and first.fallback == ""
        owners[v.account.id] = who(first)[0]
    assert sum(pool.turns.values()) == 0  # the owner is not a round-robin turn
    assert len(set(owners.values())) > 1  # accounts spread over the pod
    taken = next(a for a, o in owners.items() if o == "p3@example.com")
    found, _ = await run("owner", view("smb", owner=None, account_id=taken))  # p3 away on TODAY: the next one
    assert who(found) == ["p1@example.com"]
    assert found.path[-1] == "owner -> team smb-pool member for this account -> p1@example.com"


# --- fallbacks -------------------------------------------------------------------------------------

async def test_segment_fallback_then_default_fallback_then_a_clear_error() -> None:
    found, _ = await run("owner", view("smb", owner=None), user("sam"), user("ops"))  # the pool is not in the CRM
    assert who(found) == ["sam@example.com"]
    found, _ = await run("owner", view("enterprise", owner=None))  # a segment the model does not know
    assert who(found) == ["ops@example.com"]
    assert found.fallback == "the account has no owner; fell back to ops@example.com (default fallback owner)"
    found, _ = await run("owner", view("strategic", owner=None), user("ops"))  # maria is not in the CRM
    assert who(found) == ["ops@example.com"]
    assert "the fallback owner of segment strategic maria@example.com is not among the CRM's users" in found.path
    with pytest.raises(CoverageError) as caught:
        await run("owner", view("", owner=None), coverage=Coverage.default())
    assert str(caught.value) == ("nobody to address for owner: the account has no owner, and no fallback owner is "
                                 "configured; set default_fallback_owner in coverage.yaml or fallback_owner in "
                                 "csops.yaml to a user the CRM knows")


# --- without a coverage file ------------------------------------------------------------------------

async def test_default_model_resolves_as_the_engine_did_before() -> None:
    bare = Coverage.default("ops@example.com")
    maria = user("maria")
    found, directory = await run("owner.manager", view(manager=maria), coverage=bare)
    assert (who(found), directory.calls) == (["maria@example.com"], [])  # owner and manager from the view
    found, _ = await run("role:ae", view(ae_id="u-ed"), coverage=bare)
    assert found.path == ("role ae -> account.fields.ae_id -> ed@example.com",)
    found, _ = await run("role:ae", view(roles={"ae": "fay@example.com"}), coverage=bare)
    assert found.path == ("role ae -> account.fields.roles.ae -> fay@example.com",)
    found, _ = await run("team:smb-pool", view(), coverage=bare)
    assert who(found) == ["ops@example.com"]
    assert found.fallback == ("team smb-pool is not defined (there is no coverage file); "
                              "fell back to ops@example.com (default fallback owner)")
    carl_away = user("carl", out_of_office=True, backup_id="u-dana")
    found, _ = await run("owner", view(owner=carl_away), coverage=bare)
    assert who(found) == ["dana@example.com"]


async def test_check_people_names_everyone_the_crm_does_not_know() -> None:
    directory = Directory(*[u for u in PEOPLE if u.email not in ("p2@example.com", "nora@example.com")])
    assert await check_people(model(), directory) == [
        "coverage.yaml: p2@example.com (teams.smb-pool) is not a user of the CRM; fix the address or add the user",
        "coverage.yaml: nora@example.com (managers.carl@example.com) is not a user of the CRM; fix the address or "
        "add the user",
    ]
    assert len(directory.calls) == 12  # each person named once, looked up once


# --- the loader ------------------------------------------------------------------------------------

def where(text: str) -> list[tuple[int, int, str, str, str]]:
    coverage, problems = parse_coverage(text)
    assert coverage is None
    return [(p.line, p.col, p.rule, p.message, p.hint) for p in problems]


def test_unknown_keys_with_did_you_mean() -> None:
    text = "segmnts: {}\nteams:\n  a: {members: [a@x.com], mdoe: round_robin}\n"
    assert where(text) == [
        (1, 1, "unknown-key", 'unknown key "segmnts" in the coverage model', 'did you mean "segments"?'),
        (3, 27, "unknown-key", 'unknown key "mdoe" in a', 'did you mean "mode"?'),
    ]


def test_references_between_sections() -> None:
    text = ("segments:\n  smb:\n    team: smb-pol\n    owner_role: cms\nroles:\n  csm: {field: owner}\n"
            "teams:\n  smb-pool: {members: [a@x.com]}\n")
    assert where(text) == [
        (3, 11, "unknown-team", 'team "smb-pol" of segment smb is not in teams', 'did you mean "smb-pool"?'),
        (4, 17, "unknown-role", 'owner_role "cms" of segment smb is not in roles', 'did you mean "csm"?'),
    ]
    assert where("segments:\n  smb: {team: pod}\n") == [
        (2, 15, "unknown-team", 'team "pod" of segment smb is not in teams', "add pod under teams:")]


def test_fallback_owners_must_be_emails() -> None:
    text = "default_fallback_owner: ops\nsegments:\n  smb: {fallback_owner: 7}\n"
    assert where(text) == [
        (1, 25, "fallback-owner", 'default_fallback_owner "ops" is not an email address',
         "write the email of a user the CRM knows, e.g. ops@example.com"),
        (3, 25, "type", "fallback_owner must be text, found the number 7", ""),
    ]


def test_duplicate_members_and_closed_mode() -> None:
    text = "teams:\n  pod:\n    members: [a@x.com, b@x.com, A@X.com]\n    mode: round-robin\n  empty: {members: []}\n"
    assert where(text) == [
        (3, 33, "duplicate-member", "A@X.com is already a member of pod (item 1)",
         "list each person once: a member listed twice gets twice the work"),
        (4, 11, "unknown-value", 'mode must be one of round_robin; found text "round-robin"',
         'did you mean "round_robin"?'),
        (5, 11, "empty-value", "members must not be empty", ""),
    ]


def test_role_fields() -> None:
    text = "roles:\n  ae: {field: ae_id}\n  csm: {field: account.owner}\n  se: {field: fields.se id}\n  x: {}\n"
    assert where(text) == [
        (2, 15, "role-field", 'field "ae_id" is not owner or fields.NAME', 'did you mean "fields.ae_id"?'),
        (3, 16, "role-field", 'field "account.owner" is not owner or fields.NAME', 'did you mean "owner"?'),
        (4, 15, "role-field", 'field "fields.se id" is not owner or fields.NAME',
         "write owner (the account's owner) or fields.NAME (a custom field holding the user's email or id), "
         "e.g. fields.ae_id"),
        (5, 3, "missing-key", 'x is missing "field"', ""),
    ]


def test_absences() -> None:
    text = ("out_of_office:\n  a@x.com: {until: 2026-13-01, backup: A@x.com}\n"
            "  b@x.com: {from: 2026-12-02, until: 2026-12-01}\n  c@x.com: {until: 20261201}\n")
    assert where(text) == [
        (2, 20, "date", 'until must be a date YYYY-MM-DD, found text "2026-13-01"', "e.g. until: 2026-12-01"),
        (2, 40, "self-backup", "a@x.com cannot be their own backup", "name the colleague who covers"),
        (3, 38, "date", "until 2026-12-01 is before from 2026-12-02", "until is the last day away"),
        (4, 20, "date", "until must be a date YYYY-MM-DD, found the number 20261201", "e.g. until: 2026-12-01"),
    ]


def test_files_that_are_not_a_model(tmp_path: Path) -> None:
    assert where("") == [(1, 1, "coverage-file", "the coverage file is empty",
                          "start with segments:, roles: and teams:, or remove the file to take owners from the CRM")]
    assert [p[:3] for p in where("- a\n- b\n")] == [(1, 1, "type")]
    assert [p[:3] for p in where("teams: {a: [\n")] == [(2, 1, "yaml-syntax")]
    coverage, problems = load_coverage(tmp_path / "nope.yaml")
    assert coverage is None and [(p.line, p.col, p.rule) for p in problems] == [(1, 1, "coverage-file")]
    assert problems[0].message == "cannot read the coverage file: No such file or directory"


def test_a_model_without_roles_reads_roles_from_custom_fields_like_the_default() -> None:
    coverage = model("teams:\n  pod: {members: [a@x.com]}\n")
    assert coverage.roles is None and coverage.teams["pod"].members == ("a@x.com",)
    assert model(MODEL).out_of_office["dana@example.com"].until == date(2026, 12, 1)


# --- playbooks against the model ---------------------------------------------------------------------

PLAYBOOK = """\
playbook: p
title: t
triggers: [{manual: {}}]
steps:
  - id: a
    task:
      assign: role:aee
      title: t
      escalate:
        - {after: 2d, reassign: team:smb-pol}
  - id: b
    alert: {to: [owner, "#x", team:nope, role:ae], text: hi}
"""


def test_check_parties_reports_roles_and_teams_the_model_lacks() -> None:
    doc = load(PLAYBOOK, "p.yaml")
    found = [(p.line, p.col, p.rule, p.message, p.hint) for p in model().check_parties(doc)]
    assert found == [
        (7, 15, "unknown-role", "role:aee is not a role of the coverage model (coverage.yaml)",
         'did you mean "role:ae"?'),
        (10, 33, "unknown-team", "team:smb-pol is not a team of the coverage model (coverage.yaml)",
         'did you mean "team:smb-pool"?'),
        (12, 31, "unknown-team", "team:nope is not a team of the coverage model (coverage.yaml)",
         "add it under teams: in coverage.yaml (it has smb-pool, ae-pool)"),
    ]
    assert Coverage.default("ops@example.com").check_parties(doc) == []
    roleless = model("teams:\n  smb-pool: {members: [a@x.com]}\n")
    assert [p.rule for p in roleless.check_parties(doc)] == ["unknown-team", "unknown-team"]


# --- what ships ------------------------------------------------------------------------------------

SCHEMA: dict[str, Any] = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
SHIPPED_MODEL = ROOT / "playbooks" / "coverage.yaml"
SHIPPED_PLAYBOOKS = sorted(p for p in (ROOT / "playbooks").glob("*.yaml")
                           if p != SHIPPED_MODEL and not p.name.endswith(".test.yaml"))


def test_the_shipped_model_loads_clean_and_covers_every_shipped_playbook() -> None:
    coverage, problems = load_coverage(SHIPPED_MODEL)
    assert problems == [] and coverage is not None
    used: set[str] = set()
    for path in SHIPPED_PLAYBOOKS:
        doc = read(str(path))
        assert coverage.check_parties(doc) == []
        used |= {str(p) for p in map(parse_party, _strings(doc.data)) if p and p.kind in ("role", "team")}
    assert used == {"role:ae", "team:ae-pool", "team:smb-pod"}  # the check above really had work to do
    assert {s: coverage.segments[s].owner_role for s in ("strategic", "commercial", "smb")} == dict.fromkeys(
        ("strategic", "commercial", "smb"), "csm")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return [value] if isinstance(value, str) else []


def test_the_schema_is_documented_2020_12_and_closed() -> None:
    Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["$id"] == "https://csops.dev/schemas/coverage/v1.json"
    objects = [SCHEMA, *(d for d in SCHEMA["$defs"].values() if d.get("type") == "object")]
    assert len(objects) == 5 and all(d["additionalProperties"] is False for d in objects)
    props = [(name, sub) for d in objects for name, sub in d["properties"].items()]
    assert len(props) == 17 and [n for n, sub in props if "description" not in sub] == []  # 17: segments.capacity


def test_a_plain_json_schema_validator_agrees_on_the_shipped_model_and_a_bad_one() -> None:
    validator = Draft202012Validator(SCHEMA)
    assert list(validator.iter_errors(read(str(SHIPPED_MODEL)).data)) == []
    bad = load("teams:\n  a: {members: [], mode: rr}\nsegmnts: {}\n", "c.yaml").data
    assert len(list(validator.iter_errors(bad))) == 3
