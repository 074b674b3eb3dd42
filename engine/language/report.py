"""Print problems as text (with a caret snippet), JSON, or GitHub Actions annotations."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from engine.language.problems import Problem

Lines = Callable[[str], list[str]]


def as_text(problems: Sequence[Problem], lines: Lines) -> str:
    """``path:line:col: [error] message (rule)`` with the source line and a caret under the spot."""
    out = []
    for p in problems:
        out.append(f"{p.path}:{p.line}:{p.col}: [{p.severity}] {p.message} ({p.rule})")
        src = lines(p.path)
        if 0 < p.line <= len(src):
            text = src[p.line - 1].rstrip("\n").expandtabs(1)
            gutter = str(p.line)
            pad = " " * len(gutter)
            out.append(f"{pad} |")
            out.append(f"{gutter} | {text}")
            out.append(f"{pad} | {' ' * (p.col - 1)}^")
        if p.hint:
            out.append(f"  hint: {p.hint}")
    return "\n".join(out)


def as_json(problems: Sequence[Problem]) -> str:
    """A JSON list, one object per problem."""
    return json.dumps([
        {"path": p.path, "line": p.line, "column": p.col, "severity": p.severity, "rule": p.rule,
         "message": p.message, "hint": p.hint}
        for p in problems
    ], indent=2)


def as_github(problems: Sequence[Problem]) -> str:
    """GitHub Actions workflow commands, so problems show inline on pull requests."""
    def esc(text: str, prop: bool = False) -> str:
        text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
        return text.replace(":", "%3A").replace(",", "%2C") if prop else text

    return "\n".join(
        f"::{p.severity} file={esc(p.path, True)},line={p.line},col={p.col},title={esc(p.rule, True)}::"
        f"{esc(p.message + (' — ' + p.hint if p.hint else ''))}"
        for p in problems
    )
