"""Old flat import paths (``engine.ingest``...) kept working for one release after issue 12.

The modules moved into subpackages (docs/architecture.md lists them). Importing an old path gives
the very module object of the new one (``sys.modules`` holds both names), so private names and
``monkeypatch.setattr("engine.ingest.x", ...)`` keep working. No file sits at an old path, so git
follows each module to its new home when older branches are merged. Four old modules became
packages of the same name (``engine.store``, ``engine.config``, ``engine.api``, ``engine.cli``):
those packages re-export the old modules' public names instead.

New code imports the new paths (import-linter and mypy only know those).
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import types
from collections.abc import Sequence

MOVED: dict[str, str] = {
    "engine.problems": "engine.language.problems",
    "engine.yamlpos": "engine.language.yamlpos",
    "engine.structure": "engine.language.structure",
    "engine.checks": "engine.language.checks",
    "engine.refs": "engine.language.refs",
    "engine.expressions": "engine.language.expressions",
    "engine.sandbox": "engine.language.sandbox",
    "engine.sizes": "engine.language.sizes",
    "engine.limits": "engine.language.limits",
    "engine.model": "engine.language.model",
    "engine.compiler": "engine.language.compiler",
    "engine.validate": "engine.language.validate",
    "engine.templatefiles": "engine.language.templatefiles",
    "engine.durations": "engine.language.durations",
    "engine.workcalendar": "engine.language.workcalendar",
    "engine.coverage": "engine.language.coverage",
    "engine.coverage_resolve": "engine.language.coverage_resolve",
    "engine.parties": "engine.language.parties",
    "engine.hashhint": "engine.language.hashhint",
    "engine.context": "engine.language.context",
    "engine.textfmt": "engine.language.textfmt",
    "engine.report": "engine.language.report",
    "engine.configcheck": "engine.config.configcheck",
    "engine.settings": "engine.config.settings",
    "engine.stackfile": "engine.config.stackfile",
    "engine.store_models": "engine.store.store_models",
    "engine.runtypes": "engine.payloads.runtypes",
    "engine.runcontext": "engine.payloads.runcontext",
    "engine.signals": "engine.triggers.signals",
    "engine.matcher": "engine.triggers.matcher",
    "engine.matchproc": "engine.triggers.matchproc",
    "engine.enrol": "engine.triggers.enrol",
    "engine.door": "engine.triggers.door",
    "engine.ingest": "engine.triggers.ingest",
    "engine.ingest_facts": "engine.triggers.ingest_facts",
    "engine.scan": "engine.triggers.scan",
    "engine.csvcells": "engine.triggers.csvcells",
    "engine.csvread": "engine.triggers.csvread",
    "engine.csvimport": "engine.triggers.csvimport",
    "engine.workflow": "engine.runtime.workflow",
    "engine.activities": "engine.runtime.activities",
    "engine.starter": "engine.runtime.starter",
    "engine.runrecord": "engine.runtime.runrecord",
    "engine.redaction": "engine.runtime.redaction",
    "engine.scanflow": "engine.runtime.scanflow",
    "engine.simulate": "engine.sim.simulate",
    "engine.recording": "engine.sim.recording",
    "engine.simtimeline": "engine.sim.simtimeline",
    "engine.simtrigger": "engine.sim.simtrigger",
    "engine.simcalendar": "engine.sim.simcalendar",
    "engine.simplaybooks": "engine.sim.simplaybooks",
    "engine.simevents": "engine.sim.simevents",
    "engine.playbooktest": "engine.sim.playbooktest",
    "engine.testfile": "engine.sim.testfile",
    "engine.api_body": "engine.api.api_body",
    "engine.api_errors": "engine.api.api_errors",
    "engine.api_runs": "engine.api.api_runs",
    "engine.api_start": "engine.api.api_start",
    "engine.cli_demo": "engine.cli.cli_demo",
    "engine.cli_events": "engine.cli.cli_events",
    "engine.cli_import": "engine.cli.cli_import",
    "engine.cli_runs": "engine.cli.cli_runs",
    "engine.cli_sim": "engine.cli.cli_sim",
    "engine.demo": "engine.cli.demo",
    "engine.up": "engine.cli.up",
    "engine.interrupts": "engine.cli.interrupts",
    "engine.sendwindow": "engine.language.sendwindow",
    "engine.suppress": "engine.triggers.suppress",
    "engine.windowcheck": "engine.runtime.windowcheck",
    "engine.runtasks": "engine.runtime.runtasks",
    "engine.store_views": "engine.store.store_views",
    "engine.api_suppressions": "engine.api.api_suppressions",
    "engine.cli_suppression": "engine.cli.cli_suppression",
}
"""Old dotted path -> new dotted path, for one release."""


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str) -> None:
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return importlib.import_module(self.target)

    def exec_module(self, module: types.ModuleType) -> None:
        """The module ran when it was imported under its new name."""


class ShimFinder(importlib.abc.MetaPathFinder):
    """Resolves an old path of MOVED to the module at its new path."""

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: types.ModuleType | None = None,
                  ) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once per interpreter."""
    if not any(isinstance(f, ShimFinder) for f in sys.meta_path):
        sys.meta_path.append(ShimFinder())
