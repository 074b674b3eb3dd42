"""The limits of expressions and templates (issue 11, item 2): a corpus of hostile texts, each
reported by ``csops validate`` where the text alone shows it, and each stopped by the sandbox at
run time, quickly, with an error that names the limit.

The corpus is tests/data/dos_corpus.yaml; its header says what each entry holds.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from jinja2.exceptions import SecurityError
from temporalio.exceptions import ApplicationError

from engine.language.context import evaluate, render
from engine.language.sizes import MAX_TEXT, LimitExceeded
from engine.language.validate import check_text
from engine.runtime.activities import Renderer, _expr

CORPUS: list[dict[str, Any]] = yaml.safe_load(
    (Path(__file__).resolve().parent.parent / "data" / "dos_corpus.yaml").read_text(encoding="utf-8"))
ACCOUNT = {"id": "acme", "name": "Acme", "segment": "smb", "lifecycle_stage": "adopt", "owner": None,
           "arr": 4_000_000_000, "renewal_date": date(2027, 3, 1), "contract_start": None, "renewal_status": "",
           "health": {"score": 42, "band": "red", "previous_score": 60}, "usage": {}, "fields": {}}
CTX = {"account": ACCOUNT, "contacts": [], "trigger": {}, "now": datetime(2027, 1, 15, tzinfo=UTC),
       "today": date(2027, 1, 15), "steps": {}, "run": {"id": "r", "playbook": "dos", "version": "1"}}
HEAD = "playbook: dos\ntitle: DoS\ntriggers:\n  - manual: {}\nsteps:\n  - id: a\n"


def playbook(entry: dict[str, Any]) -> tuple[str, int, int]:
    """A playbook holding the entry's text, and the 1-based line and column where the text starts."""
    if entry["kind"] == "expression":
        return HEAD + f"    when: |-\n      {entry['src']}\n    note: {{ text: hi }}\n", 8, 7
    return HEAD + f"    note:\n      text: |-\n        {entry['src']}\n", 9, 9


def test_the_corpus_is_big_enough() -> None:
    assert len(CORPUS) >= 25
    assert sum(1 for e in CORPUS if e["static"]) >= 25
    assert sum(1 for e in CORPUS if not e["static"]) >= 10


@pytest.mark.parametrize("entry", CORPUS, ids=[e["src"][:50] for e in CORPUS])
def test_validate_reports_what_the_text_shows(entry: dict[str, Any]) -> None:
    text, line, col = playbook(entry)
    found = [(p.line, p.col, p.rule) for p in check_text(text, "dos.yaml").problems]
    if not entry["static"]:
        assert found == [], "only the data makes this too big: validation has nothing to say"
        return
    at = col + entry["src"].index(entry["at"]) if entry.get("at") else col
    assert found == [(line, at, entry["static"])]


@pytest.mark.parametrize("entry", CORPUS, ids=[e["src"][:50] for e in CORPUS])
def test_the_sandbox_stops_it_quickly_naming_the_limit(entry: dict[str, Any]) -> None:
    run = evaluate if entry["kind"] == "expression" else render
    # This thread's CPU time, not the wall clock nor the process's: what the hostile text burns, steady
    # on a loaded machine and blind to the other threads a test session runs (a Temporal core, servers).
    start = time.thread_time()
    with pytest.raises(LimitExceeded) as caught:
        run(entry["src"], CTX)
    assert time.thread_time() - start < 1.0
    assert entry["runtime"] in str(caught.value)
    assert str(caught.value).startswith("expression limit exceeded: ")


def test_an_activity_fails_the_step_for_good_with_an_expression_error() -> None:
    with pytest.raises(ApplicationError) as caught:
        _expr(lambda: render("{{ 'A' * 4000000000 }}", CTX))
    assert caught.value.type == "ExpressionError" and caught.value.non_retryable
    assert "a repeated text would be 4,000,000,000 characters; the limit is 100,000" in str(caught.value)


def test_texts_up_to_the_limits_still_work() -> None:
    assert len(render("{{ 'x' * 100000 }}", CTX)) == MAX_TEXT
    assert render("{% for i in range(10000) %}{% endfor %}done", CTX) == "done"
    assert evaluate("account.health.score ** 100 > 0", CTX) is True
    assert evaluate("(today + business_days(10)).isoformat()", CTX) == "2027-01-29"
    assert render("{{ '%5.1f' % 2.25 }}|{{ '{:>6}'.format(account.name) }}|{{ account.name | center(8) }}", CTX) \
        == "  2.2|  Acme|  Acme  "
    assert render("{{ contacts | map(attribute='email') | join(', ') }}{{ [1, 2] | sum }}", CTX) == "3"


@pytest.mark.parametrize("src", [
    "{{ ''.__class__ }}", "{{ ''.__class__.__mro__ }}", "{{ cycler.__init__.__globals__ }}",
    "{{ '{0.__class__}'.format(account.name) }}", "{{ account.name | attr('__class__') }}",
])
def test_unsafe_attributes_are_refused_by_validation_and_at_run_time(src: str) -> None:
    text, line, _ = playbook({"kind": "template", "src": src})
    rules = {(p.line, p.rule) for p in check_text(text, "dos.yaml").problems}
    assert rules == {(line, "unsafe-attribute")}
    with pytest.raises(SecurityError):
        render(src, CTX)


def test_activities_add_a_wall_clock_guard_the_workflow_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = "{% for i in range(100) %}{{ i }}{% endfor %}"
    assert len(render(loop, CTX)) == 190  # no clock: the counts alone (as in the workflow)
    with pytest.raises(LimitExceeded, match="the evaluation took too long"):
        render(loop, CTX, seconds=0.0)
    monkeypatch.setattr("engine.runtime.activities.ACTIVITY_SECONDS", 0.0)
    with pytest.raises(ApplicationError, match="took too long") as caught:
        Renderer(CTX, None, None).text(loop)
    assert caught.value.type == "ExpressionError" and caught.value.non_retryable
