"""``account.owner`` in templates is the coverage model's owner when the CRM names none (SPEC 4, 5)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from engine.language.coverage import Coverage, load_coverage
from engine.language.validate import check_text
from engine.sim.simulate import format_timeline, simulate

COVERAGE = Path(__file__).resolve().parents[2] / "playbooks/coverage.yaml"

SIGNED = """\
playbook: signed
title: Signed
triggers:
  - manual: {}
steps:
  - id: mail
    email:
      to: primary_contact
      from: owner
      subject: "Hello from {{ account.owner.name if account.owner else 'nobody' }}"
      body: >-
        {{ account.owner.name if account.owner else 'nobody' }} /
        {{ account.owner.manager.name if account.owner and account.owner.manager else '-' }} /
        {{ account.owner.fallback if account.owner else '' }}
  - id: wait
    wait: 1h
  - id: branch
    branch:
      cases:
        - when: account.owner.email in ['priya.shah@example.com', 'tom.becker@example.com', 'lena.vogel@example.com']
          steps:
            - { id: pod, update: { account: { fields.covered_by: "{{ account.owner.email }}" } } }
"""
UNSIGNED = """\
playbook: unsigned
title: Unsigned
triggers:
  - manual: {}
steps:
  - id: sign
    update: { account: { fields.signed_by: "{{ account.owner.name if account.owner else 'nobody' }}" } }
"""
CONTACTS = [{"id": "c-1", "email": "pat@hooli.example", "first_name": "Pat", "primary": True}]
USERS = [{"id": "u-priya", "email": "priya.shah@example.com", "name": "Priya Shah", "manager_id": "u-sam"},
         {"id": "u-tom", "email": "tom.becker@example.com", "name": "Tom Becker", "manager_id": "u-sam"},
         {"id": "u-lena", "email": "lena.vogel@example.com", "name": "Lena Vogel", "manager_id": "u-sam"},
         {"id": "u-sam", "email": "sam.okafor@example.com", "name": "Sam Okafor"},
         {"id": "u-maria", "email": "maria.lopez@example.com", "name": "Maria Lopez"},
         {"id": "u-ops", "email": "cs-ops@example.com", "name": "CS Ops"}]


async def _entries(account: dict[str, object], coverage: Coverage | None, text: str = SIGNED) -> list[Any]:
    pb = check_text(text).playbook
    assert pb is not None
    timeline = await simulate(pb, account, contacts=CONTACTS, users=USERS, days=1, coverage=coverage)
    data = json.loads(format_timeline(timeline, "json"))
    return [e for e in data["entries"] if e["action"] in ("email", "update", "failed", "end")]


async def test_an_ownerless_smb_account_is_owned_by_its_pod_member_in_templates_and_branches() -> None:
    coverage, _ = load_coverage(COVERAGE)
    mail, update, end = await _entries({"id": "hooli", "name": "Hooli", "segment": "smb"}, coverage)
    # hooli's member of smb-pod is fixed by its id: the same one that `from: owner` sends as
    assert mail["detail"]["sender"] == "lena.vogel@example.com"
    assert mail["text"] == "Hello from Lena Vogel"
    body = mail["detail"]["body"]
    assert body.startswith("Lena Vogel / Sam Okafor / the account has no owner in the CRM; ")
    assert "team smb-pod member for this account -> lena.vogel@example.com" in body
    # the workflow's own expressions (load_context) see the same owner
    assert (update["step"], update["text"]) == ("pod", "fields.covered_by=lena.vogel@example.com")
    assert end["text"].startswith("completed")


async def test_an_ownerless_strategic_account_is_owned_by_the_segment_fallback_owner() -> None:
    coverage, _ = load_coverage(COVERAGE)
    mail, end = await _entries({"id": "newco", "name": "Newco", "segment": "strategic"}, coverage)
    assert mail["text"] == "Hello from Maria Lopez"
    assert mail["detail"]["body"].startswith("Maria Lopez / - / the account has no csm (account.owner is empty); "
                                             "fell back to maria.lopez@example.com (fallback owner of segment "
                                             "strategic)")
    assert end["text"].startswith("completed")


async def test_an_owner_the_crm_names_is_used_as_it_is() -> None:
    coverage, _ = load_coverage(COVERAGE)
    mail, update, _ = await _entries({"id": "hooli", "name": "Hooli", "segment": "smb", "owner": "u-priya"},
                                     coverage)
    assert mail["detail"]["body"] == "Priya Shah / Sam Okafor / "
    assert update["text"] == "fields.covered_by=priya.shah@example.com"


async def test_nobody_to_resolve_to_leaves_the_owner_empty() -> None:
    # no coverage file and no fallback owner: nobody owns the account, and a template can say so
    update, end = await _entries({"id": "hooli", "name": "Hooli", "segment": "smb"}, Coverage.default(""),
                                 UNSIGNED)
    assert (update["step"], update["text"]) == ("sign", "fields.signed_by=nobody")
    assert end["text"].startswith("completed")
