"""The simple reader of expressions and templates agrees with Jinja2's parser wherever it answers.

engine/language/refs.py reads simple texts itself for speed and hands the rest to Jinja2. That is only
sound if, for every text the simple reader accepts, Jinja2 accepts it too and finds the same
references in the same order. Hypothesis builds texts from the grammar's pieces — including ones
the simple reader must refuse — and compares.
"""

from __future__ import annotations

import glob

import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.language import refs
from engine.language.expressions import ENV
from tests.conftest import ROOT

NAMES = st.sampled_from(["account", "contact", "steps", "event", "today", "days", "x", "not", "true", "None", "is"])
ATTRS = st.sampled_from([".name", ".health", ".score", ".risk_alert", "['risk-alert']", "[0]", "[1.5]", ".0", "..x"])
LITERALS = st.sampled_from(["1", "0", "01", "10000", "1.5", "'smb'", '"x"', "true", "none", "[1, 'a']", "[]",
                            "2027-01-15", "1_000", "-1", "'a\\'b'"])
OPS = st.sampled_from([" == ", " != ", " < ", " >= ", " + ", " - ", " and ", " or ", " in ", " not in ", " = ",
                       " is ", " ~ ", " ", "  **  "])
FILTERS = st.sampled_from(["", " | date", " | default('there')", " | default(account.name)", " | upper | lower",
                           " | round(1)", " |", " | f(x=1)", " | select(days(1))"])


@st.composite
def operand(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        base = draw(NAMES) + "".join(draw(st.lists(ATTRS, max_size=3)))
        if draw(st.integers(0, 4)) == 0:
            base = draw(NAMES) + "(" + draw(LITERALS) + ")"
    else:
        base = draw(LITERALS)
    return ("not " if draw(st.integers(0, 5)) == 0 else "") + base + draw(FILTERS)


@st.composite
def expression(draw: st.DrawFn) -> str:
    parts = [draw(operand())]
    for _ in range(draw(st.integers(0, 3))):
        parts += [draw(OPS), draw(operand())]
    text = "".join(parts)
    return "(" + text + ")" if draw(st.integers(0, 9)) == 0 else text


def agree(simple: tuple[refs.Ref, ...] | None, full: refs.Extracted) -> None:
    if simple is None:
        return  # not simple: Jinja2 reads it, nothing to compare
    assert not isinstance(full, refs.SyntaxProblem), f"simple reader accepted what Jinja2 rejects: {full}"
    assert simple == full


@settings(max_examples=1500, deadline=None)
@given(expression())
def test_simple_expressions_agree_with_jinja(src: str) -> None:
    agree(refs.simple_expression_refs(src), refs.jinja_expression_refs(ENV, src))


@settings(max_examples=800, deadline=None)
@given(st.lists(st.sampled_from(["Hi ", "{{ ", " }}", "}", "{", "{%", "\n", "text: ", "{#"]) | expression(),
                max_size=8).map("".join))
def test_simple_templates_agree_with_jinja(src: str) -> None:
    agree(refs.simple_template_refs(src), refs.jinja_template_refs(ENV, src))


def test_shipped_and_corpus_texts_agree_and_most_are_simple() -> None:
    texts: list[str] = []

    def collect(node: object) -> None:
        if isinstance(node, dict):
            for value in node.values():
                collect(value)
        elif isinstance(node, list):
            for value in node:
                collect(value)
        elif isinstance(node, str) and "{{" in node:
            texts.append(node)

    for path in glob.glob(str(ROOT / "playbooks" / "*.yaml")):
        if path.endswith(("coverage.yaml", ".test.yaml")):
            continue
        with open(path, encoding="utf-8") as fh:
            collect(yaml.safe_load(fh))
    assert len(texts) > 30
    simple = 0
    for text in texts:
        fast = refs.simple_template_refs(text)
        agree(fast, refs.jinja_template_refs(ENV, text))
        simple += fast is not None
    assert simple / len(texts) > 0.9  # the point of the simple reader: nearly all real texts


def test_known_refusals() -> None:
    for src in ["today >= 2027-01-15", "account.arr >= 01", "a if b else c", "x is defined", "(a)", "a.b()",
                "f(x=1)", "-1", "a ~ b", "{{ a }}"]:
        assert refs.simple_expression_refs(src) is None, src
    assert refs.simple_template_refs("{% if a %}{{ b }}{% endif %}") is None
    assert refs.simple_template_refs("{{ a }} {{ b") is None
