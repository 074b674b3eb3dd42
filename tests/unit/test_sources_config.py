"""csops.yaml ``sources:``: typed when valid; each mistake reported as csops.yaml:LINE:COL with a hint,
and a secret never written out nor repeated."""

from __future__ import annotations

import pytest

from engine.config.config import ConfigError, Secret, parse_config
from engine.sources import GenericMap, GenericSignature

ENV = {"STRIPE_WEBHOOK_SECRET": "whsec_abc", "BILLING_WEBHOOK_SECRET": "b-secret"}

GOOD = """sources:
  stripe:
    secret: ${STRIPE_WEBHOOK_SECRET}
  billing:
    kind: generic
    secret: ${BILLING_WEBHOOK_SECRET}
    tolerance: 120
    signature: {header: X-Billing-Signature, prefix: "sha256=", timestamp_header: X-Billing-Time}
    map:
      id: event.uuid
      type: billing.invoice_overdue
      account_id: customer.external_id
      data: {invoice: invoice.number}
"""


def problems(text: str, env: dict[str, str] | None = None) -> list[tuple[int, int, str, str]]:
    with pytest.raises(ConfigError) as caught:
        parse_config(text, "csops.yaml", ENV if env is None else env)
    return [(p.line, p.col, p.message, p.hint) for p in caught.value.problems]


def test_a_valid_section_is_typed_with_its_secrets_resolved() -> None:
    cfg = parse_config(GOOD, "csops.yaml", ENV)
    stripe, billing = cfg.sources["stripe"], cfg.sources["billing"]
    assert (stripe.kind, stripe.tolerance) == ("stripe", 300)
    assert stripe.secret == Secret("whsec_abc", "STRIPE_WEBHOOK_SECRET")
    assert billing.kind == "generic" and billing.tolerance == 120
    assert billing.signature == GenericSignature(header="X-Billing-Signature", prefix="sha256=",
                                                 timestamp_header="X-Billing-Time")
    assert billing.map == GenericMap(id="event.uuid", type="billing.invoice_overdue",
                                     account_id="customer.external_id", data={"invoice": "invoice.number"})
    assert "whsec_abc" not in repr(cfg)


def test_a_secret_written_out_is_refused_where_it_is_without_repeating_it() -> None:
    found = problems("sources:\n  stripe:\n    secret: whsec_live_123\n")
    assert len(found) == 1
    line, col, message, hint = found[0]
    assert (line, col) == (3, 13)
    assert message == ("the stripe webhook secret is written out in the file; secrets must come from environment "
                       "variables")
    assert hint == "put the stripe webhook secret in an environment variable and write ${STRIPE_WEBHOOK_SECRET}"
    assert "whsec_live_123" not in message + hint


def test_an_unset_variable_is_named() -> None:
    found = problems("sources:\n  stripe:\n    secret: ${NOPE}\n")
    assert found[0][:2] == (3, 13) and "environment variable NOPE is not set" in found[0][2]


@pytest.mark.parametrize(("text", "where", "message"), [
    ("sources:\n  paddle:\n    secret: ${STRIPE_WEBHOOK_SECRET}\n", (2, 3),
     'source "paddle" is not a vendor csops knows, so it needs a kind'),
    ("sources:\n  stripe: {}\n", (2, 3), 'source "stripe" has no secret: its deliveries could not be verified'),
    ("sources:\n  billing:\n    kind: generic\n    secret: ${BILLING_WEBHOOK_SECRET}\n", (2, 3),
     'generic source "billing" needs map:'),
    ("sources:\n  stripe:\n    secret: ${STRIPE_WEBHOOK_SECRET}\n    map: {id: a, type: x.y, account_id: b}\n",
     (4, 5), "map: is for kind: generic; stripe has its own"),
])
def test_what_the_schema_lets_through_is_caught(text: str, where: tuple[int, int], message: str) -> None:
    found = problems(text)
    assert (found[0][0], found[0][1]) == where
    assert found[0][2] == message


@pytest.mark.parametrize(("text", "where", "fragment"), [
    ("sources:\n  stripe:\n    kind: strype\n    secret: ${STRIPE_WEBHOOK_SECRET}\n", (3, 11), "strype"),
    ("sources:\n  stripe:\n    secret: ${STRIPE_WEBHOOK_SECRET}\n    tolerance: 0\n", (4, 16), "tolerance"),
    ("sources:\n  Stripe!:\n    kind: stripe\n    secret: ${STRIPE_WEBHOOK_SECRET}\n", (2, 3), "Stripe!"),
    ("sources:\n  stripe:\n    secret: ${STRIPE_WEBHOOK_SECRET}\n    acount_path: a.b\n", (4, 5), "acount_path"),
    ("sources:\n  b:\n    kind: generic\n    secret: ${BILLING_WEBHOOK_SECRET}\n"
     "    signature: {header: X-S, algorithm: md5}\n    map: {id: a, type: x.y, account_id: b}\n", (5, 41), "md5"),
])
def test_the_schema_reports_a_bad_value_at_its_position(text: str, where: tuple[int, int], fragment: str) -> None:
    found = problems(text)
    assert (found[0][0], found[0][1]) == where, found
    assert fragment in found[0][2] + found[0][3]


def test_the_calendars_send_window_is_typed_and_checked() -> None:
    text = 'calendar:\n  timezone: Europe/Berlin\n  send_window: {days: [mon, tue], hours: "08:30-12:00"}\n'
    cfg = parse_config(text, "csops.yaml", ENV)
    assert cfg.calendar.send_window == {"days": ["mon", "tue"], "hours": "08:30-12:00"}
    assert cfg.calendar.as_dict()["send_window"] == {"days": ["mon", "tue"], "hours": "08:30-12:00"}
    assert "send_window" not in parse_config("", "csops.yaml", ENV).calendar.as_dict()
    found = problems('calendar:\n  send_window: {hours: "18:00-09:00"}\n')
    assert found[0][:3] == (2, 24, "calendar.send_window hours 18:00-09:00 close before they open")
    found = problems('calendar:\n  send_window: {hours: "9-5"}\n')
    assert found[0][:2] == (2, 24)
