"""``csops event import`` against the corpus of malformed API bodies (tests/data/malformed_api_bodies.json):
each line the API answers 4xx is one clear rejection naming its line, never a traceback (a deeply
nested line used to raise RecursionError out of json.loads), and nothing reaches Temporal."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.cli.main import main
from tests.unit.test_api_bodies import CASES, body_of


def one_line(case: dict[str, Any]) -> str | None:
    """The case as one line of a JSON-lines file, None for what a line cannot carry."""
    if "hex" in case or "content_type" in case or not 400 <= case["status"] < 500 or case["status"] == 413:
        return None
    text = body_of(case).decode("utf-8", "surrogatepass")
    return None if "\n" in text or "\r" in text or not text.strip() else text


LINES = [(case["name"], line) for case in CASES if (line := one_line(case)) is not None]
HOSTILE = [("arrays 100,000 deep", "[" * 100_000 + "]" * 100_000),
           ("data nested 990 deep", '{"id": "e", "data": ' + '{"a": ' * 990 + "1" + "}" * 990 + "}"),
           ("a 5,000-digit score", '{"id": "e", "data": {"score": ' + "9" * 5000 + "}}"),
           ("NaN", '{"id": "e", "data": {"score": NaN}}'),
           ("a key twice", '{"id": "e", "id": "f"}'),
           ("cut short", '{"id": "e"')]


def test_the_corpus_gives_many_lines() -> None:
    assert len(LINES) >= 80


def test_every_malformed_line_is_one_rejection_with_its_line_number(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    lines = [line for _, line in HOSTILE + LINES]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    assert main(["event", "import", str(path)]) == 1
    out, err = capsys.readouterr()
    said = out.splitlines()
    assert len(said) == len(lines), "\n".join(said[:5])
    for number, text in enumerate(said, 1):
        assert text.startswith(f"{path}:{number}: rejected"), text
        assert len(text) < 2000
    assert "Traceback" not in out + err
    assert said[:6] == [
        f"{path}:1: rejected: the line nests arrays and objects more than 32 deep; flatten the data",
        f"{path}:2: rejected: the line nests arrays and objects more than 32 deep; flatten the data",
        f"{path}:3: rejected: a number has 5000 characters, over the limit of 100: send large values as text",
        f"{path}:4: rejected: NaN is not a JSON value; send a number, or null for no value",
        f"{path}:5: rejected: the key 'id' appears twice in one object; send each key once (which of the two "
        "values was meant cannot be known)",
        f"{path}:6: rejected: not JSON (Expecting ',' delimiter at column 11)"]


def test_event_send_data_is_held_to_the_same_limits(capsys: pytest.CaptureFixture[str]) -> None:
    deep = '{"a": ' * 990 + "1" + "}" * 990
    assert main(["event", "send", "--type", "a.b", "--account", "acme", "--data", deep]) == 2
    err = capsys.readouterr().err
    assert err.startswith("csops event send: --data: the value nests arrays and objects more than 32 deep")
    assert "Traceback" not in err
