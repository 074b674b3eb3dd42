"""``shown``: a value from outside on one line of output, as it is when printable, else quoted with escapes;
``has_control``: whether an id from outside holds a control character or a line separator."""

from __future__ import annotations

import pytest

from engine.language.textfmt import has_control, shown


@pytest.mark.parametrize(("value", "said"), [
    ("acme-1", "acme-1"), ("Ünïcode ✓ id", "Ünïcode ✓ id"),
    ("a\nb", "'a\\nb'"), ("nul\x00", "'nul\\x00'"), ("tab\tx", "'tab\\tx'"), ("esc\x1b[31m", "'esc\\x1b[31m'"),
    ("nel\x85", "'nel\\x85'"), ("ls\u2028", "'ls\\u2028'"), (["a"], "['a']"), (7, "7"),
])
def test_a_value_is_shown_as_it_is_or_escaped(value: object, said: str) -> None:
    assert shown(value) == said
    assert len(shown(value).splitlines()) == 1


@pytest.mark.parametrize(("text", "control"), [
    ("acme-1", False), ("Ünïcode ✓ id", False), ("no-break\u00a0space", False), ("", False),
    ("a\nb", True), ("nul\x00", True), ("tab\tx", True), ("esc\x1b", True), ("del\x7f", True), ("nel\x85", True),
    ("ls\u2028", True), ("ps\u2029", True),
])
def test_control_characters_and_line_separators_are_found(text: str, control: bool) -> None:
    assert has_control(text) is control
