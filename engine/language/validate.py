"""Validate playbook files: structure, semantics, the JSON Schema backstop, checks across files."""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import cache

from jsonschema import Draft202012Validator

from engine.errors import CsopsError
from engine.language import checks
from engine.language.compiler import compile_playbook
from engine.language.coverage import Coverage, load_coverage
from engine.language.hashhint import hint_hashes
from engine.language.health_loader import HEALTH_NAMES, health_beside, load_health
from engine.language.model import Playbook
from engine.language.problems import Problem, make
from engine.language.structure import Walker, load_schema
from engine.language.yamlpos import Document, Path, load, read


class UsageError(CsopsError):
    """A path that does not exist or cannot be read: exit code 2, not a playbook problem."""


@dataclass
class FileResult:
    """One file's outcome."""

    path: str
    problems: list[Problem] = field(default_factory=list)
    playbook: Playbook | None = None
    """Compiled when the file has no errors (warnings allowed)."""
    start_targets: list[tuple[str, tuple[int, int]]] = field(default_factory=list)
    declared: tuple[str, tuple[int, int]] | None = None
    """The playbook id the file declares and where, even when the file has errors."""


@dataclass
class Report:
    """The outcome for a set of files; ``playbooks`` holds those without errors, by id."""

    files: list[FileResult]
    playbooks: dict[str, Playbook]

    @property
    def problems(self) -> list[Problem]:
        return sorted((p for f in self.files for p in f.problems), key=Problem.sort_key)

    @property
    def errors(self) -> int:
        return sum(1 for p in self.problems if p.severity == "error")


@cache
def _backstop() -> Draft202012Validator:
    return Draft202012Validator(load_schema())


def check_document(doc: Document, json_schema: bool = False) -> FileResult:
    """All problems of one parsed document; never raises.

    ``json_schema`` also runs a plain JSON Schema validator as a cross-check. It is off by default
    because it costs twice the rest of validation; the test suite checks the two agree.
    """
    result = FileResult(doc.path, list(doc.problems))
    try:
        return _check_document(doc, result, json_schema)
    finally:
        result.problems[:] = hint_hashes(doc.text, result.problems)


def _check_document(doc: Document, result: FileResult, json_schema: bool) -> FileResult:
    try:
        if doc.data is None and not doc.problems:
            result.problems.append(make(doc.path, (0, 0), "type", "the file is empty",
                                        "a playbook starts with playbook: ID, title, triggers and steps"))
        if doc.data is None:
            return result
        walker = Walker(doc, checks.HOOKS)
        ctx = checks.prepare(walker) if isinstance(doc.data, dict) else checks.Context()
        walker.ctx = ctx
        walker.run()
        result.problems.extend(walker.problems)
        if json_schema:
            result.problems.extend(_schema_leftovers(doc, walker.flagged + sorted(doc.flagged, key=len)))
        result.start_targets = [(t, doc.pos(p)) for t, p in ctx.start_targets]
        if isinstance(doc.data, dict) and isinstance(doc.data.get("playbook"), str):
            result.declared = (doc.data["playbook"], doc.pos(("playbook",)))
        result.problems = list(dict.fromkeys(result.problems))  # an alias repeats its anchor's problems
        if not any(p.severity == "error" for p in result.problems):
            result.playbook = compile_playbook(doc.data, doc.path, ctx.files)
    except Exception as exc:  # noqa: BLE001 - a validator bug must not become a user's traceback
        result.problems.append(make(doc.path, (0, 0), "internal-error", f"the validator failed: {exc!r}",
                                    "please report this with the file; the other files were still checked"))
        result.playbook = None
    return result


def _schema_leftovers(doc: Document, flagged: list[Path]) -> list[Problem]:
    """Anything the JSON Schema rejects that the checks above did not already report."""
    out = []
    for err in _backstop().iter_errors(doc.data):
        path = tuple(err.absolute_path)
        if any(f[: len(path)] == path or path[: len(f)] == f for f in flagged):
            continue
        message = err.message if len(err.message) < 200 else err.message[:197] + "..."
        out.append(make(doc.path, doc.pos(path), "schema", message))
    return out


def check_text(text: str, path: str = "<playbook>", json_schema: bool = False) -> FileResult:
    """Validate YAML text (no cross-file checks)."""
    return check_document(load(text, path), json_schema)


def expand(paths: Iterable[str]) -> list[str]:
    """Files named, and the playbook files below folders named (*.yaml, *.yml, not *.test.yaml)."""
    files: list[str] = []
    for path in paths:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                files.extend(os.path.join(root, n) for n in sorted(names) if _is_playbook_name(n))
        elif os.path.exists(path):
            files.append(path)
        else:
            raise UsageError(f"{path}: no such file or folder")
        if os.path.isdir(path) and not any(f.startswith(os.path.join(path, "")) for f in files):
            raise UsageError(f"{path}: no playbook files (*.yaml, *.yml) in this folder")
    return files


COVERAGE_NAMES = ("coverage.yaml", "coverage.yml")
"""The coverage model may live beside the playbooks (engine/language/coverage.py); it is not a playbook."""


def _is_playbook_name(name: str) -> bool:
    return (name.endswith((".yaml", ".yml")) and not name.endswith((".test.yaml", ".test.yml"))
            and name not in COVERAGE_NAMES and name not in HEALTH_NAMES)


def validate_paths(paths: Sequence[str], json_schema: bool = False) -> Report:
    """Validate files and folders as one set; raises UsageError for paths that cannot be read."""
    results: list[FileResult] = []
    models: dict[str, Coverage | None] = {}
    for file in expand(paths):
        try:
            doc = read(file)
        except OSError as exc:
            raise UsageError(f"{file}: cannot read: {exc.strerror or exc}") from None
        result = check_document(doc, json_schema)
        folder = os.path.dirname(file)
        if folder not in models:
            models[folder] = _coverage_beside(folder, results)
            results.extend(_health_beside(folder))
        coverage = models[folder]
        if coverage is not None and doc.data is not None:
            found = coverage.check_parties(doc)
            result.problems.extend(found)
            if any(p.severity == "error" for p in found):
                result.playbook = None
        results.append(result)
    return link(results)


def _health_beside(folder: str) -> list[FileResult]:
    """The health model in a playbook folder as a file result, if it has problems (engine/language/health_loader.py)."""
    path = health_beside(folder or ".")
    if path is None:
        return []
    _, problems = load_health(path)
    return [FileResult(path, list(problems))] if problems else []


def _coverage_beside(folder: str, results: list[FileResult]) -> Coverage | None:
    """The coverage model in a playbook folder, if there is one; its own problems are reported."""
    for name in COVERAGE_NAMES:
        path = os.path.join(folder, name)
        if os.path.exists(path):
            coverage, problems = load_coverage(path)
            if problems:
                results.append(FileResult(path, list(problems)))
            return coverage
    return None


def link(results: list[FileResult]) -> Report:
    """Checks across files: duplicate playbook ids, start_playbook targets outside the set.

    A file that declares an id counts as defining it even when it has errors of its own: its
    callers are not wrong, and the file's own errors are reported where they are.
    """
    declared: dict[str, FileResult] = {}
    for r in results:
        if r.declared is None:
            continue
        pid, pos = r.declared
        if pid in declared:
            r.problems.append(make(r.path, pos, "duplicate-playbook",
                                   f'playbook "{pid}" is also defined in {declared[pid].path}',
                                   "playbook ids must be unique; rename one of them"))
            r.playbook = None
        else:
            declared[pid] = r
    for r in results:
        for target, pos in r.start_targets:
            if target not in declared:
                near = difflib.get_close_matches(target, list(declared), n=1, cutoff=0.7)
                hint = (f'did you mean "{near[0]}"?' if near
                        else "validate the folder that holds it, or name its file too")
                r.problems.append(make(r.path, pos, "unknown-playbook",
                                       f'start_playbook names "{target}", which is not among the validated playbooks',
                                       hint))
                r.playbook = None
    playbooks = {r.playbook.id: r.playbook for r in results if r.playbook is not None}
    return Report(results, playbooks)
