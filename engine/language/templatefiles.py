"""Email template files: found only inside the playbook's folder, read only when safe to read.

A ``template:`` path is relative to the playbook file. Whatever it names ends up in the run's
input, Temporal's history and the effects ledger, so a path that leaves the folder
(``/proc/self/environ``, ``../../.env``, a link to outside) would carry secrets there. Such a path
is a validation error (``template-outside-folder``) and its target is never opened. Inside the
folder, only a regular UTF-8 file of at most MAX_TEMPLATE_BYTES is read (``template-file``
otherwise): a pipe or a device would block or never end.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import unquote

MAX_TEMPLATE_BYTES = 1_000_000
"""An email template file is at most 1 MB."""

OUTSIDE = "template-outside-folder"
UNREADABLE = "template-file"
_RELATIVE = "the path is relative to the playbook file and must stay inside its folder"


@dataclass(frozen=True, slots=True)
class TemplateProblem:
    """Why a template path cannot be used."""

    rule: str
    message: str
    hint: str = ""


def _shown(raw: str) -> str:
    text = raw.replace("\0", "\\0")
    return text if len(text) <= 80 else text[:77] + "..."


def _escapes(path: str) -> bool:
    """Whether a relative path climbs above its start with ``..`` at some point."""
    depth = 0
    for part in PurePosixPath(path).parts:
        depth += -1 if part == ".." else 0 if part == "." else 1
        if depth < 0:
            return True
    return False


def locate(playbook: str, raw: str) -> Path | TemplateProblem:
    """The file a ``template:`` value names, resolved (links followed) and inside the playbook's
    folder; or why not. Nothing is opened."""
    name = f'template file "{_shown(raw)}"'
    if "\0" in raw:
        return TemplateProblem(UNREADABLE, f"{name} is not a valid path: it contains a NUL character",
                               "write the file's name relative to the playbook, e.g. templates/welcome.md")
    # Read the path as other tools might: with \ as a separator and %2e%2e as "..".
    forms = {raw, raw.replace("\\", "/"), unquote(raw), unquote(raw).replace("\\", "/")}
    if raw.startswith("~"):
        return TemplateProblem(OUTSIDE, f"{name} starts with ~: home folders are not allowed", _RELATIVE)
    if any(f.startswith("/") or re.match(r"^[A-Za-z]:", f) for f in forms):
        return TemplateProblem(OUTSIDE, f"{name} is an absolute path", _RELATIVE)
    if any(_escapes(f) for f in forms):
        return TemplateProblem(OUTSIDE, f"{name} leaves the playbook's folder with ..", _RELATIVE)
    folder = Path(playbook).parent.resolve()
    try:
        target = (folder / raw).resolve()
    except (OSError, RuntimeError) as exc:  # a link loop, a name too long
        return TemplateProblem(UNREADABLE, f"{name} cannot be read ({exc.__class__.__name__})", _RELATIVE)
    if not target.is_relative_to(folder):
        return TemplateProblem(OUTSIDE, f"{name} is a link to a file outside the playbook's folder",
                               "copy the file into the playbook's folder instead of linking to it")
    return target


def read_template(playbook: str, raw: str) -> str | TemplateProblem:
    """The text of a template file inside the playbook's folder, or why it cannot be used."""
    where = locate(playbook, raw)
    if isinstance(where, TemplateProblem):
        return where
    name = f'template file "{_shown(raw)}"'
    try:
        # O_NONBLOCK: opening a pipe must not wait for a writer; O_NOFOLLOW: the path is resolved,
        # so a link here appeared since (refuse it rather than follow it).
        fd = os.open(where, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError:
        return TemplateProblem(UNREADABLE, f"{name} does not exist", "the path is relative to the playbook file")
    except OSError as exc:
        return TemplateProblem(UNREADABLE, f"{name} cannot be read ({exc.__class__.__name__})", _RELATIVE)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        if stat.S_ISDIR(mode):
            return TemplateProblem(UNREADABLE, f"{name} is a folder, not a file", "name the template file itself")
        return TemplateProblem(UNREADABLE, f"{name} is not a regular file (a device, pipe or socket)",
                               "name a text file")
    with os.fdopen(fd, "rb") as file:
        data = file.read(MAX_TEMPLATE_BYTES + 1)
    if len(data) > MAX_TEMPLATE_BYTES:
        return TemplateProblem(UNREADABLE, f"{name} is larger than {MAX_TEMPLATE_BYTES:,} bytes",
                               "an email template is at most 1 MB")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return TemplateProblem(UNREADABLE, f"{name} is not UTF-8 text", "save it as UTF-8")
