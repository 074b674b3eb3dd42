"""Static checks of expressions and templates against the documented context."""

from __future__ import annotations

from datetime import date

import pytest

from engine.language import expressions as ex

RUN = ex.Scope(frozenset({"account", "contacts", "trigger", "run", "steps", "now", "today", "days",
                          "business_days"}), frozenset({"kickoff", "risk-alert"}),
               frozenset({"kickoff", "risk-alert", "later"}))


def rules(findings: list[ex.Finding]) -> list[tuple[str, str]]:
    return [(f.rule, f.message) for f in findings]


@pytest.mark.parametrize("src", [
    "account.arr >= 10000", "account.health.score < 50 and account.segment in ['smb', 'commercial']",
    "account.renewal_date - days(90)", "today + business_days(3)", "account.fields.anything_custom == 1",
    "steps.kickoff.status == 'done'", "steps['risk-alert'].result", "steps.risk_alert.status",
    "contacts | selectattr('role', 'eq', 'billing') | list | length > 0", "contacts[0].email",
    "account.owner.manager.email", "2027-01-15",
])
def test_valid_expressions(src: str) -> None:
    assert ex.check_expression(src, RUN) == []


@pytest.mark.parametrize(("src", "rule", "needle", "hint"), [
    ("account.helth.score", "unknown-name", ("account.helth", ".helth"), 'did you mean "account.health"?'),
    ("acount.arr", "unknown-name", "acount", 'did you mean "account"?'),
    ("contact.email", "unknown-name", "contact", ""),
    ("steps.later.status", "step-reference", ("steps.\0later", "steps['\0later']", 'steps["\0later"]', "later"),
     "steps.<id> can only name a step that comes before this one"),
    ("steps.nope", "step-reference", ("steps.\0nope", "steps['\0nope']", 'steps["\0nope"]', "nope"), ""),
    ("steps.risk-alert.status", "step-reference", ("steps.\0risk", "steps['\0risk']", 'steps["\0risk"]', "risk"),
     "a step id with hyphens is written steps['risk-alert']"),
    ("account.name | shout", "unknown-filter", "shout", ""),
    ("contacts.email", "unknown-name", ".email", "use contacts[0].email"),
    ("account.arr = 5", "expression", "=", "use == to compare"),
    ("{{ account.arr }} > 5", "braces-in-expression", "{{", "write: account.arr  > 5"),
])
def test_expression_findings(src: str, rule: str, needle: str | tuple[str, ...], hint: str) -> None:
    found = ex.check_expression(src, RUN)
    assert found, src
    assert (found[0].rule, found[0].needle) == (rule, needle)
    assert found[0].hint.startswith(hint)


@pytest.mark.parametrize("src", ["true", "1 == 1", "'yes'", "2027-01-15"])
def test_constant_conditions(src: str) -> None:
    assert [f.rule for f in ex.check_expression(src, RUN, condition=True)] == ["constant-condition"]


def test_template_scoping_of_loop_and_set_names() -> None:
    src = "{% set n = account.name %}{{ n }}{% for c in contacts %}{{ c.email }}{{ loop.index }}{% endfor %}"
    assert ex.check_template(src, RUN) == []
    assert rules(ex.check_template("{% for c in contacts %}{% endfor %}{{ c }}", RUN)) == [
        ("unknown-name", '"c" is not defined')]


def test_template_finding_reports_its_line() -> None:
    found = ex.check_template("Hello,\n\n{{ account.nmae }}\n", RUN)
    assert [(f.rule, f.line, f.needle) for f in found] == [("unknown-name", 2, ("account.nmae", ".nmae"))]


def test_hyphenated_step_reference_is_one_finding() -> None:
    assert [f.rule for f in ex.check_expression("steps.risk-alert.status == 'done'", RUN)] == ["step-reference"]


def test_sandbox_runs_the_documented_functions() -> None:
    env = ex.make_env()
    renewal = date(2027, 3, 5)
    assert env.compile_expression("d - days(90)")(d=renewal) == date(2026, 12, 5)
    assert env.compile_expression("d + business_days(1)")(d=date(2026, 11, 20)) == date(2026, 11, 23)  # Fri → Mon
    assert env.from_string("{{ d | date }}").render(d=renewal) == "March 5, 2027"


def test_sandbox_refuses_unsafe_access() -> None:
    from jinja2.exceptions import SecurityError
    with pytest.raises(SecurityError):
        ex.make_env().from_string("{{ x.__class__.__mro__ }}").render(x=1)
