"""The unquoted ``#`` of a Slack channel: YAML reads ``to: [owner, #cs-risk]`` as a comment.

What the loader and the checks then see (a list never closed, a value that is empty) says nothing
about the ``#``; this adds the fix to those problems, on the line that holds it.
"""

from __future__ import annotations

import dataclasses
import re

from engine.language.problems import Problem

__all__ = ["hint_hashes"]

# A comment starts at a # after a space (or at the line start); what follows looks like a channel.
_COMMENT = re.compile(r"#([A-Za-z0-9][\w.-]*)")


def hint_hashes(text: str, problems: list[Problem]) -> list[Problem]:
    """``problems`` with a hint to quote the channel where an unquoted ``#name`` on the problem's line ate a value."""
    lines = text.splitlines()
    out = []
    for p in problems:
        found = _channel(lines[p.line - 1]) if 0 < p.line <= len(lines) else None
        if found and (p.rule == "yaml-syntax" or "found nothing" in p.message):
            p = dataclasses.replace(p, hint=_hint(found[1]))
        elif p.rule == "yaml-syntax":
            # A flow collection left open by the comment is reported where YAML gave up (often the
            # next line, or the end of the file): point at the # itself.
            for number in range(min(p.line, len(lines + [""])) - 1, max(p.line - 20, 1) - 1, -1):
                found = _channel(lines[number - 1]) if number <= len(lines) else None
                if found and any(c in lines[number - 1][:found[0]] for c in "[{"):
                    p = dataclasses.replace(p, line=number, col=found[0] + 1, hint=_hint(found[1]))
                    break
        out.append(p)
    return out


def _hint(channel: str) -> str:
    return f'quote it: "#{channel}" (an unquoted # starts a comment in YAML, so the rest of the line is ignored)'


def _channel(line: str) -> tuple[int, str] | None:
    """Where the first unquoted comment mark of ``line`` is and the name after it, if it is one."""
    quote = ""
    for i, ch in enumerate(line):
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch == "#":
            found = _COMMENT.match(line, i) if i == 0 or line[i - 1] in " \t[,{" else None
            return (i, found.group(1)) if found else None
    return None
