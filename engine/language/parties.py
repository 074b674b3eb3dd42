"""Parties — who receives a task, an alert or an email — and where each form may be used."""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

PartyKind = Literal["owner", "owner.manager", "role", "user", "team", "channel", "primary_contact", "contacts"]
#: Where a party is used; each place admits only the kinds that can resolve there.
Place = Literal["assign", "notify", "recipient", "sender"]

_FORMS: list[tuple[PartyKind, re.Pattern[str]]] = [
    ("owner", re.compile(r"^owner$")),
    ("owner.manager", re.compile(r"^owner\.manager$")),
    ("role", re.compile(r"^role:([A-Za-z0-9_.-]+)$")),
    ("user", re.compile(r"^user:([^@\s]+@[^@\s]+)$")),
    ("team", re.compile(r"^team:([A-Za-z0-9_.-]+)$")),
    ("channel", re.compile(r"^#([a-z0-9][a-z0-9_-]*)$")),
    ("primary_contact", re.compile(r"^primary_contact$")),
    ("contacts", re.compile(r"^contacts:([A-Za-z0-9_.-]+)$")),
]

ALLOWED: dict[Place, tuple[PartyKind, ...]] = {
    "assign": ("owner", "owner.manager", "role", "user", "team"),
    "notify": ("owner", "owner.manager", "role", "user", "team", "channel"),
    "recipient": ("primary_contact", "contacts", "owner", "owner.manager", "role", "user", "team"),
    "sender": ("owner", "owner.manager", "role", "user"),
}

_WHY: dict[tuple[Place, PartyKind], str] = {
    ("assign", "channel"): "a Slack channel cannot own a CRM task; assign a person or a team",
    ("assign", "primary_contact"): "tasks go to your team, not to the customer; assign owner, a role or a team",
    ("assign", "contacts"): "tasks go to your team, not to customer contacts; assign owner, a role or a team",
    ("notify", "primary_contact"): "alerts go to Slack, where customer contacts are not; email them instead",
    ("notify", "contacts"): "alerts go to Slack, where customer contacts are not; email them instead",
    ("recipient", "channel"): "a Slack channel has no email address; use an alert step for channels",
    ("sender", "channel"): "a Slack channel cannot send email; send as owner or a user",
    ("sender", "primary_contact"): "mail is sent as someone on your team, not as the customer",
    ("sender", "contacts"): "mail is sent as someone on your team, not as the customer",
    ("sender", "team"): "a round-robin team cannot be a sender; send as owner, a role or a user",
}


@dataclass(frozen=True, slots=True)
class Party:
    """A parsed party."""

    kind: PartyKind
    """Which form it is."""
    value: str = ""
    """The role, email, team, channel or contact role it names; empty for owner forms."""

    def __str__(self) -> str:
        if self.kind == "channel":
            return f"#{self.value}"
        if self.kind in ("role", "user", "team", "contacts"):
            return f"{self.kind}:{self.value}"
        return self.kind


@lru_cache(maxsize=1024)
def parse_party(text: str) -> Party | None:
    """The party ``text`` names, or None when it is not a party form (cached: books repeat them)."""
    for kind, pattern in _FORMS:
        m = pattern.match(text)
        if m:
            return Party(kind, m.group(1) if m.groups() else "")
    return None


def why_not(place: Place, party: Party) -> str | None:
    """None when ``party`` can resolve at ``place``; else the reason it cannot."""
    if party.kind in ALLOWED[place]:
        return None
    return _WHY.get((place, party.kind), f"{party} cannot be used here")


FORMS_HELP = "owner, owner.manager, role:NAME, user:EMAIL, team:NAME, #channel, primary_contact or contacts:ROLE"
