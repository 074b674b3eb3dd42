"""One error root (engine.errors): its docstring draws every exception class of engine/ and connectors/
as the code defines it, and what the CLI shares with the API raises engine errors, never HTTP ones;
the API alone turns them into the same answers as before, the CLI into its exit codes."""

from __future__ import annotations

import ast
import asyncio
import importlib
import inspect
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from connectors.base import Account
from connectors.sqlcrm import SQLCRM
from engine import errors
from engine.api.api_body import BODY_CODES, BodyError, parse_json
from engine.api.api_errors import BODY_STATUS, SOURCE_STATUS
from engine.api.app import create_app
from engine.api.deps import ApiError
from engine.cli.main import main
from engine.config.sourceconfig import SourceConfig
from engine.errors import Conflict, CsopsError, NotFound, Unavailable
from engine.language.context import Calendar
from engine.runtime.runcontrol import TemporalWorkflows, cancel_run
from engine.sources.base import REFUSED_CODES, Delivery, Refused
from engine.sources.registry import VENDORS
from engine.store.store import Store
from engine.triggers.explainaccount import explain_account
from engine.triggers.ingest import Ingestor

ROOT = Path(__file__).resolve().parents[2]
OUTSIDE = {"connectors.base.ConnectorError", "engine.runtime.runbase.RunEnd", "engine.runtime.runbase.StepFailed"}
"""The roots drawn outside the CsopsError tree, on purpose."""
_LINE = re.compile(r"^    (?P<lead>(?:│   |    )*)(?P<branch>[├└]── )?(?P<name>[A-Z]\w*)\s+"
                   r"(?P<module>(?:engine|connectors)(?:\.\w+)*)\b")


def defined() -> dict[str, type[BaseException]]:
    """Every public exception class defined in engine/ and connectors/, by ``module.Name``."""
    found: dict[str, type[BaseException]] = {}
    for path in sorted([*ROOT.joinpath("engine").rglob("*.py"), *ROOT.joinpath("connectors").rglob("*.py")]):
        parts = path.relative_to(ROOT).with_suffix("").parts
        if parts[-1] == "__main__":
            continue
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        for attr, obj in vars(importlib.import_module(name)).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == name \
                    and not attr.startswith("_"):
                found[f"{name}.{attr}"] = obj
    return found


def drawn() -> Iterator[tuple[str, str | None]]:
    """Each class the docstring draws (``module.Name``) with the one drawn above it (None for a root)."""
    stack: list[str] = []
    for line in (errors.__doc__ or "").splitlines():
        m = _LINE.match(line)
        if m is None:
            continue
        depth = len(m["lead"]) // 4 + (1 if m["branch"] else 0)
        del stack[depth:]
        yield f"{m['module']}.{m['name']}", stack[-1] if stack else None
        stack.append(f"{m['module']}.{m['name']}")


def test_every_exception_class_is_drawn_once_in_the_tree_of_errors() -> None:
    names = [name for name, _ in drawn()]
    assert sorted(n for n in set(names) if names.count(n) > 1) == []
    assert sorted(set(defined()) - set(names)) == [], "draw these in engine/errors.py's docstring"
    assert sorted(set(names) - set(defined())) == [], "engine/errors.py draws classes that are not there"


def test_the_drawing_is_the_class_tree_and_only_the_documented_roots_are_outside() -> None:
    classes = defined()
    roots = set()
    for name, parent in drawn():
        cls = classes[name]
        if parent is None:
            roots.add(name)
            assert not any(b.__module__.split(".")[0] in ("engine", "connectors") for b in cls.__bases__), name
        else:
            assert classes[parent] in cls.__bases__, f"{name} is drawn under {parent}, which is not its base"
    assert roots == {"engine.errors.CsopsError", *OUTSIDE}
    outside = {n for n, c in classes.items() if not issubclass(c, CsopsError)}
    assert outside == {n for n, c in classes.items() if any(issubclass(c, classes[r]) for r in OUTSIDE)}


def test_value_errors_stay_value_errors() -> None:
    from engine.language.durations import DurationError
    from engine.language.sizes import LimitExceeded
    from engine.reports.inbox import TaskClosed, UnknownTask

    assert issubclass(DurationError, ValueError) and issubclass(LimitExceeded, ValueError)
    assert issubclass(TaskClosed, ValueError) and issubclass(UnknownTask, LookupError)


# --- what the CLI shares with the API ---------------------------------------------------------------

HTTP_ERRORS = {"ApiError", "HTTPException", "StarletteHTTPException"}


def _api(module: str) -> bool:
    return module.startswith("engine.api") or module.split(".")[-1] == "api"


RUN_FUNCTIONS = {"cancel_run", "explain_account", "run_detail", "refreshed"}
"""What the API, the CLI and the console share about runs: below the API (engine.runtime, engine.triggers)."""


def _cli_imports() -> dict[str, set[str]]:
    """The names the CLI (engine/cli and the feature packages' command modules) imports from the engine's
    modules, by module (``create_app`` aside: ``csops api`` serves the API itself)."""
    found: dict[str, set[str]] = {}
    for path in ROOT.joinpath("engine").rglob("*.py"):
        if path.parent.name != "cli" and "cli" not in path.stem:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("engine"):
                found.setdefault(node.module, set()).update(a.name for a in node.names if a.name != "create_app")
    return found


def _shared() -> dict[str, set[str]]:
    """The names the CLI imports from the API's modules, by module."""
    return {module: names for module, names in _cli_imports().items() if _api(module)}


def _raises_http(module: str, names: set[str]) -> list[str]:
    """Where a shared function (or one it calls in its module) builds an HTTP error."""
    tree = ast.parse(ROOT.joinpath(*module.split(".")).with_suffix(".py").read_text(encoding="utf-8"))
    tops = {n.name: n for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)}
    todo, seen, bad = [tops[n] for n in names if n in tops], set(), []
    while todo:
        node = todo.pop()
        if node.name in seen:
            continue
        seen.add(node.name)
        for sub in ast.walk(node):
            if not isinstance(sub, ast.Call):
                continue
            named = sub.func.id if isinstance(sub.func, ast.Name) else ""
            if (sub.func.attr if isinstance(sub.func, ast.Attribute) else named) in HTTP_ERRORS:
                bad.append(f"{module}.{node.name}:{sub.lineno}")
            elif named in tops:  # a function of the same module it calls
                todo.append(tops[named])
    return bad


def test_no_function_the_cli_shares_with_the_api_raises_an_http_error() -> None:
    shared = _shared()
    assert "parse_json" in shared["engine.api.api_body"]
    assert [m for m, names in shared.items() if names & HTTP_ERRORS] == []
    assert [at for module, names in shared.items() for at in _raises_http(module, names)] == []
    runs = {module: names & RUN_FUNCTIONS for module, names in _cli_imports().items() if names & RUN_FUNCTIONS}
    assert set().union(*runs.values()) == RUN_FUNCTIONS
    assert sorted(runs) == ["engine.runtime.runcontrol", "engine.triggers.explainaccount"]  # below the API
    assert [at for module, names in runs.items() for at in _raises_http(module, names)] == []


def test_a_body_error_says_what_is_wrong_and_the_api_alone_picks_the_status() -> None:
    with pytest.raises(BodyError) as caught:
        parse_json(b'{"a": 1, "a": 2}')
    assert (caught.value.code, hasattr(caught.value, "status")) == ("duplicate_key", False)
    assert set(BODY_STATUS) == set(BODY_CODES)


def test_a_refused_delivery_speaks_the_engines_words_and_the_api_alone_picks_the_status() -> None:
    unsigned = Delivery(body=b"{}", headers={})
    with pytest.raises(Refused) as caught:
        VENDORS["typeform"].verify(SourceConfig(name="forms", kind="typeform", secret=None), unsigned)
    assert (caught.value.code, hasattr(caught.value, "status")) == ("not_verified", False)
    assert set(SOURCE_STATUS) == set(REFUSED_CODES)
    with pytest.raises(ValueError, match="not a code of Refused"):
        Refused("401", "a status is not a code")
    raised = []  # every Refused the sources raise says a code, never a status
    for path in sorted(ROOT.joinpath("engine", "sources").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "Refused":
                first = node.args[0]
                raised.append(first.value if isinstance(first, ast.Constant) else ast.dump(first))
    assert len(raised) > 20 and set(raised) <= set(REFUSED_CODES)


NOW = datetime(2026, 11, 23, 10, tzinfo=UTC)


async def no_start(playbook: Any, decision: Any) -> tuple[str, str]:
    raise AssertionError("no run is started here")


async def no_signal(run_id: str, event: Any) -> bool:
    return False


async def test_shared_functions_raise_engine_errors_and_the_api_answers_them_as_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    store, crm = Store(url), SQLCRM(url)
    try:
        await store.add_run(run_id="r0", playbook="p", version="v1", account_id="acme", started_at=NOW)
        await store.add_run(run_id="r1", playbook="p", version="v1", account_id="acme", started_at=NOW)
        await store.end_run("r1", status="completed", at=NOW)
        refused = [NotFound, Conflict, Unavailable]
        for run_id, kind, code in [("ghost", NotFound, "unknown_run"), ("r1", Conflict, "run_ended"),
                                   ("r0", Unavailable, "temporal_unavailable")]:
            with pytest.raises(kind) as caught:
                await cancel_run(store, None, run_id, "")
            assert caught.value.code == code and not isinstance(caught.value, ApiError)
            refused.remove(kind)
        assert refused == []
        with pytest.raises(Unavailable) as no_crm:
            await explain_account(store=store, crm=None, playbooks={}, account_id="acme", playbook=None, now=NOW,
                                  calendar=Calendar())
        assert no_crm.value.code == "crm_unavailable"
        with pytest.raises(NotFound) as nobody:
            await explain_account(store=store, crm=crm, playbooks={}, account_id="nobody", playbook=None, now=NOW,
                                  calendar=Calendar())
        assert nobody.value.code == "unknown_account"

        token = "t0ken-for-tests-only-0123456789"
        app = create_app(store=store, ingestor=Ingestor(store=store, crm=crm, playbooks=dict, start=no_start,
                                                        signal_run=no_signal), token=token, now=lambda: NOW)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api",
                                     headers={"Authorization": f"Bearer {token}"}) as client:
            answers = [await client.post("/v1/runs/r0/cancel"), await client.get("/v1/accounts/acme/explain"),
                       await client.post("/v1/runs/ghost/cancel"), await client.post("/v1/runs/r1/cancel")]
        assert [(r.status_code, r.json(), r.headers.get("retry-after")) for r in answers] == [
            (503, {"error": {"code": "temporal_unavailable", "message": "Temporal is not configured here, so runs "
                                                                        "cannot be cancelled", "details": None}}, None),
            (503, {"error": {"code": "crm_unavailable", "message": "no CRM is configured here, so accounts cannot be "
                                                                   "read", "details": None}}, None),
            (404, {"error": {"code": "unknown_run", "message": "there is no run 'ghost'; csops runs lists them",
                             "details": None}}, None),
            (409, {"error": {"code": "run_ended", "message": "run 'r1' already ended (completed); there is nothing "
                                                             "to cancel", "details": None}}, None)]
    finally:
        store.close()
        crm.close()


def test_the_cli_answers_engine_errors_with_its_exit_codes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "playbooks"
    folder.mkdir()
    url = f"sqlite:///{tmp_path / 'csops.db'}"
    monkeypatch.chdir(tmp_path)
    for name in ("CSOPS_CONFIG", "CSOPS_TEMPORAL_ADDRESS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CSOPS_PLAYBOOKS", str(folder))
    monkeypatch.setenv("CSOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CSOPS_DATABASE_URL", url)
    store, crm = Store(url), SQLCRM(url)
    crm.add_account(Account(id="acme", name="Acme"))

    async def runs() -> None:
        await store.add_run(run_id="r0", playbook="p", version="v1", account_id="acme", started_at=NOW)
        await store.add_run(run_id="r1", playbook="p", version="v1", account_id="acme", started_at=NOW)
        await store.end_run("r1", status="completed", at=NOW)

    asyncio.run(runs())
    store.close()
    crm.close()

    async def refuse() -> None:
        raise ConnectionRefusedError(111, "Connection refused")

    monkeypatch.setattr("engine.cli.cli_runs._workflows", lambda settings: TemporalWorkflows(refuse))
    said = []
    for argv in (["runs", "cancel", "ghost"], ["runs", "cancel", "r1"], ["runs", "cancel", "r0"],
                 ["explain", "--account", "nobody"]):
        status = main(argv)
        said.append((status, capsys.readouterr().err.splitlines()[-1]))
    assert said == [
        (1, "csops runs cancel: there is no run 'ghost'; csops runs lists them"),
        (1, "csops runs cancel: run 'r1' already ended (completed); there is nothing to cancel"),
        (2, "csops runs cancel: cannot reach Temporal: [Errno 111] Connection refused (is csops up running?)"),
        (1, "csops explain: the CRM has no account 'nobody'")]
