"""The playbook a simulation or a playbook test runs, and the playbooks its ``start_playbook`` steps name.

``start_playbook`` targets are looked up in the playbooks folder (``--playbooks``, default the
configured ``playbooks:`` of csops.yaml, engine/config/settings.py) and in the playbook's own folder,
which wins when both hold an id. The playbook itself is validated alone, so a copy being edited
elsewhere does not clash with the folder's version of the same id: it replaces it.
"""

from __future__ import annotations

import os
from pathlib import Path

from engine.errors import CsopsError
from engine.language.model import Playbook
from engine.language.problems import Problem
from engine.language.validate import UsageError, check_document, validate_paths
from engine.language.yamlpos import read


class PlaybookError(CsopsError, ValueError):
    """The playbook cannot be simulated; the message says why and what to do."""


def find_playbook(ref: str, folder: str | Path) -> str:
    """A playbook file named by ``ref``: a file, or an id in ``folder`` (``ID.yaml``/``ID.yml``).

    Raises:
        PlaybookError: neither.
    """
    if os.path.isfile(ref):
        return ref
    for name in (f"{ref}.yaml", f"{ref}.yml"):
        if os.path.isfile(os.path.join(folder, name)):
            return os.path.join(folder, name)
    raise PlaybookError(f"no playbook {ref}: not a file, and no {ref}.yaml in {folder}/ (the playbooks folder: "
                        "--playbooks, or playbooks: in csops.yaml)")


def folder_playbooks(*folders: str | Path) -> dict[str, Playbook]:
    """The valid playbooks of each folder by id; a later folder's win. Missing folders are skipped."""
    found: dict[str, Playbook] = {}
    seen: set[str] = set()
    for folder in folders:
        if folder and os.path.isdir(folder) and os.path.realpath(folder) not in seen:
            seen.add(os.path.realpath(folder))
            try:
                found.update(validate_paths([str(folder)]).playbooks)
            except UsageError:  # a folder without playbook files
                continue
    return found


def load_playbook(path: str, folder: str | Path) -> tuple[Playbook, dict[str, Playbook]]:
    """The playbook of ``path`` and every playbook its runs may start, by id (itself included).

    Raises:
        PlaybookError: the file has errors (the first is named; csops validate shows all), or a
            ``start_playbook`` names a playbook found nowhere.
        UsageError: the file cannot be read.
    """
    own = validate_paths([path])
    result = next((f for f in own.files if f.path == path), None)
    if result is None:
        raise PlaybookError(f"{path} is not a playbook file")
    registry = folder_playbooks(folder, os.path.dirname(path) or ".")
    errors = [p for p in result.problems if p.severity == "error"
              and not (p.rule == "unknown-playbook" and _target(result.start_targets, p) in registry)]
    errors += [p for f in own.files if f.path != path for p in f.problems if p.severity == "error"]
    if errors:
        first = errors[0]
        more = f" and {len(errors) - 1} more" if len(errors) > 1 else ""
        raise PlaybookError(f"{path} is not a valid playbook: {first.path}:{first.line}:{first.col}: {first.message}"
                            f"{more} (csops validate {path} shows all)")
    playbook = result.playbook or check_document(read(path)).playbook
    if playbook is None:  # the coverage check found something; validate_paths listed it above
        raise PlaybookError(f"{path} is not a valid playbook (csops validate {path} says why)")
    return playbook, {**registry, playbook.id: playbook}


def _target(targets: list[tuple[str, tuple[int, int]]], problem: Problem) -> str:
    """The start_playbook target an unknown-playbook problem is about."""
    return next((t for t, (line, col) in targets if (line + 1, col + 1) == (problem.line, problem.col)), "")
