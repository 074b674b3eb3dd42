"""The layered engine (issue 12): old import paths alias the new modules, no private name crosses
modules, and Temporal's run statuses have one map (the one error root: tests/unit/test_errors.py)."""

from __future__ import annotations

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest
from temporalio.client import WorkflowExecutionStatus

from engine.runtime.temporal import ENDED, ended_status
from engine.shims import MOVED

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("old", sorted(MOVED))
def test_an_old_import_path_is_the_very_module_at_its_new_path(old: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(MOVED[old])


def test_old_paths_work_in_a_fresh_interpreter_including_private_names() -> None:
    code = "\n".join([
        "from engine.ingest import Ingestor", "from engine.matcher import _audience",
        "import engine.triggers.ingest as new, engine.triggers.matcher as mt, engine.runrecord",
        "assert Ingestor is new.Ingestor and _audience is mt._audience",
        "from engine.store import Store", "from engine.api import create_app", "from engine.cli import run",
        "print('ok')"])
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (0, "ok\n", "")


def test_no_module_is_left_at_an_old_path() -> None:
    # A file there would shadow the alias and stop git from following the move in older branches.
    left = [old for old in MOVED if (ROOT / (old.replace(".", "/") + ".py")).exists()]
    assert left == []


def _sources() -> list[Path]:
    return sorted([*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")])


OURS = ("engine", "connectors")


def test_no_private_name_is_imported_across_modules() -> None:
    found = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            ours = isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in OURS
            if ours and isinstance(node, ast.ImportFrom):
                found += [f"{path.relative_to(ROOT)}: {node.module}.{a.name}" for a in node.names
                          if a.name.startswith("_") and a.name != "__version__"]
    assert found == []


def test_no_module_is_over_400_lines() -> None:
    long = {p.relative_to(ROOT).as_posix(): n for p in _sources()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 400}
    assert long == {}


def test_one_status_map_and_continued_as_new_is_not_an_ending() -> None:
    assert ENDED == {WorkflowExecutionStatus.COMPLETED: "completed", WorkflowExecutionStatus.FAILED: "failed",
                     WorkflowExecutionStatus.TIMED_OUT: "failed", WorkflowExecutionStatus.TERMINATED: "cancelled",
                     WorkflowExecutionStatus.CANCELED: "cancelled"}
    assert ended_status(WorkflowExecutionStatus.CONTINUED_AS_NEW) is None
    assert ended_status(WorkflowExecutionStatus.RUNNING) is None and ended_status(None) is None
    uses = [p for p in _sources() if 'WorkflowExecutionStatus.COMPLETED: "' in p.read_text(encoding="utf-8")]
    assert [p.relative_to(ROOT).as_posix() for p in uses] == ["engine/runtime/temporal.py"]


def test_the_schemas_are_found_as_package_resources() -> None:
    from importlib import resources

    from engine.config.configcheck import SCHEMA_FILE as CONFIG
    from engine.language.coverage import SCHEMA_FILE as COVERAGE
    from engine.language.health_loader import SCHEMA_FILE as HEALTH
    from engine.language.schemafiles import schema_file
    from engine.language.structure import SCHEMA_FILE as PLAYBOOK

    shipped = sorted(f.name for f in resources.files("schemas").iterdir() if f.name.endswith(".schema.json"))
    assert shipped == ["config.schema.json", "coverage.schema.json", "event.schema.json", "health.schema.json",
                       "playbook.schema.json"]
    for name in shipped:
        assert schema_file(name).read_text(encoding="utf-8").startswith("{")
    expected = [schema_file(f"{n}.schema.json") for n in ("config", "health", "coverage", "playbook")]
    assert expected == [CONFIG, HEALTH, COVERAGE, PLAYBOOK]
    # No module finds a schema from its own place in the tree (Path(__file__).parent.parent / "schemas").
    found = [p.relative_to(ROOT).as_posix() for p in _sources() if "__file__" in (text := p.read_text(
        encoding="utf-8")) and ("schemas" in text or "schema.json" in text)]
    assert found == []


def test_this_test_carries_the_unit_marker_of_its_folder(request: pytest.FixtureRequest) -> None:
    assert request.node.get_closest_marker("unit") is not None
    assert request.node.get_closest_marker("workflow") is None
    markers = request.config.getini("markers")
    assert [m.split(":")[0] for m in markers if m.split(":")[0] in ("unit", "workflow", "integration")] == [
        "unit", "workflow", "integration"]
