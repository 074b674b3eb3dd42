"""Connecting to Temporal and starting runs: the one place a run's id and input are made."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from temporalio.client import Client, TLSConfig
from temporalio.exceptions import WorkflowAlreadyStartedError

from engine.config.settings import Settings
from engine.language.model import Playbook
from engine.language.validate import UsageError, validate_paths
from engine.payloads.runtypes import RULES, RunInput, as_json, run_id_for


async def connect(settings: Settings) -> Client:
    """A client per the settings: plain, TLS/mTLS, or Temporal Cloud with an API key."""
    tls: bool | TLSConfig = False
    if settings.tls or settings.api_key or settings.tls_cert:
        def read(path: str) -> bytes | None:
            return Path(path).read_bytes() if path else None
        tls = TLSConfig(server_root_ca_cert=read(settings.tls_ca), client_cert=read(settings.tls_cert),
                        client_private_key=read(settings.tls_key))
    return await Client.connect(settings.temporal_address, namespace=settings.namespace, tls=tls,
                                api_key=settings.api_key or None)


async def start_run(client: Client, playbook: Playbook, *, account_id: str, task_queue: str, occurrence: str = "",
                    trigger: dict[str, Any] | None = None, calendar: dict[str, Any] | None = None) -> tuple[str, str]:
    """Start a run; ("started", id), or ("already running", id) when that run id is running."""
    outcome, run_id, _ = await begin_run(client, playbook, account_id=account_id, task_queue=task_queue,
                                         occurrence=occurrence, trigger=trigger, calendar=calendar)
    return outcome, run_id


async def begin_run(client: Client, playbook: Playbook, *, account_id: str, task_queue: str, occurrence: str = "",
                    trigger: dict[str, Any] | None = None,
                    calendar: dict[str, Any] | None = None) -> tuple[str, str, str]:
    """Like ``start_run``, also giving Temporal's run id of the started execution ("" when not started)."""
    run_id = run_id_for(playbook.id, account_id, occurrence)
    inp = RunInput(playbook=dict(playbook.data), files=dict(playbook.files), version=playbook.version,
                   account_id=account_id, occurrence=occurrence, trigger=trigger or {"type": "manual"},
                   calendar=calendar or {}, rules=RULES)
    try:
        # as_json: the same payload without a deep copy of the whole playbook on every start.
        handle = await client.start_workflow("PlaybookRun", as_json(inp), id=run_id, task_queue=task_queue)
    except WorkflowAlreadyStartedError:
        return "already running", run_id, ""
    return "started", run_id, handle.first_execution_run_id or handle.result_run_id or ""


def load_playbooks(folder: Path) -> dict[str, Playbook]:
    """The valid playbooks of a folder, by id (invalid ones are left out: csops validate says why)."""
    return check_playbooks(folder)[0]


def check_playbooks(folder: Path) -> tuple[dict[str, Playbook], list[str]]:
    """The valid playbooks of a folder by id, and its errors as ``path:line:col: message`` lines ([] when none)."""
    try:
        report = validate_paths([str(folder)])
    except UsageError as exc:
        return {}, [str(exc)]
    return report.playbooks, [f"{p.path}:{p.line}:{p.col}: {p.message}" for p in report.problems
                              if p.severity == "error"]
