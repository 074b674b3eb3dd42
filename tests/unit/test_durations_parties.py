"""Durations and parties: every documented form, and clear refusals."""

from __future__ import annotations

import pytest

from engine.language.durations import DurationError, parse_duration
from engine.language.parties import Party, parse_party, why_not


@pytest.mark.parametrize(("text", "seconds", "business"), [
    ("30m", 1800, 0), ("12h", 43200, 0), ("5d", 432000, 0), ("2w", 1209600, 0),
    ("5 business days", 0, 5), ("1 business day", 0, 1), ("P5D", 432000, 0), ("PT12H", 43200, 0),
    ("P1W", 604800, 0), ("P1DT2H30M", 95400, 0), ("3 days", 259200, 0), ("90 minutes", 5400, 0),
])
def test_durations(text: str, seconds: int, business: int) -> None:
    d = parse_duration(text)
    assert (d.seconds, d.business_days, d.text) == (seconds, business, text)


@pytest.mark.parametrize(("text", "says"), [
    ("0d", "longer than zero"), ("3 months", "months"), ("P1M", "months"), ("5 bussiness days", "business days"),
    ("soon", "not a duration"), ("P", "not a duration"), ("5D", "not a duration"), ("99999w", "ten years"),
])
def test_bad_durations_say_why(text: str, says: str) -> None:
    with pytest.raises(DurationError, match=says):
        parse_duration(text)


@pytest.mark.parametrize(("text", "party"), [
    ("owner", Party("owner")), ("owner.manager", Party("owner.manager")), ("role:ae", Party("role", "ae")),
    ("user:ops@example.com", Party("user", "ops@example.com")), ("team:cs-pool", Party("team", "cs-pool")),
    ("#cs-risk", Party("channel", "cs-risk")), ("primary_contact", Party("primary_contact")),
    ("contacts:billing", Party("contacts", "billing")),
])
def test_party_forms_round_trip(text: str, party: Party) -> None:
    assert parse_party(text) == party
    assert str(party) == text


@pytest.mark.parametrize("text", ["Owner", "owner.boss", "role:", "user:nobody", "#", "contacts", "me"])
def test_not_parties(text: str) -> None:
    assert parse_party(text) is None


def test_where_parties_can_resolve() -> None:
    def ok(place: str, text: str) -> bool:
        party = parse_party(text)
        assert party is not None
        return why_not(place, party) is None  # type: ignore[arg-type]

    assert ok("assign", "team:pool") and not ok("assign", "#cs") and not ok("assign", "primary_contact")
    assert ok("notify", "#cs") and not ok("notify", "contacts:billing")
    assert ok("recipient", "contacts:billing") and not ok("recipient", "#cs")
    assert ok("sender", "owner") and not ok("sender", "team:pool") and not ok("sender", "primary_contact")
