"""Where recompute hooks into the engine: after an input event, after an accounts import, in the daily scan.

Each is one call from the engine's own code (engine/triggers/ingest.py ``Ingestor._process``,
engine/cli/cli_events.py ``csops import``, engine/runtime/scanflow.py ``csops_daily_scan``), and none raises:
a failed recompute is logged and caught up at the next input or daily scan. The model is the
``health.yaml`` beside the playbooks (``model_beside``), read again when the file changes.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import make_url

from engine.health.recompute import health_event, input_types, recompute_account, recompute_and_store
from engine.language.health_loader import health_beside, load_health
from engine.language.health_model import HealthModel
from engine.store.store import Store

__all__ = ["after_import", "file_beside", "model_at", "model_beside", "recompute_in_scan", "recompute_processed"]

log = logging.getLogger(__name__)

_MODELS: dict[str, tuple[float, HealthModel | None]] = {}
FOLDER_TTL = 30.0
"""Seconds the folder of an ingestor's playbooks is remembered (reading the playbooks costs a validation)."""


def model_at(path: str) -> HealthModel | None:
    """The model in a file, read again when the file changes; None (logged) when it has problems."""
    try:
        stamp = os.stat(path).st_mtime
    except OSError:
        return None
    cached = _MODELS.get(path)
    if cached is None or cached[0] != stamp:
        model, problems = load_health(path)
        if problems:
            log.error("%s has %d problem(s); health is not computed until they are fixed (csops validate says "
                      "where): %s", path, len(problems), problems[0].message)
        _MODELS[path] = cached = (stamp, model)
    return cached[1]


def file_beside(playbooks: Mapping[str, Any]) -> str | None:
    """The health model file in the folder of the playbooks (their ``source`` files), if there is one."""
    for folder in dict.fromkeys(os.path.dirname(getattr(pb, "source", "") or "") for pb in playbooks.values()):
        path = health_beside(folder or ".")
        if path is not None:
            return path
    return None


def model_beside(playbooks: Mapping[str, Any]) -> HealthModel | None:
    """The model in the folder of the playbooks, if there is one and it has no problems."""
    path = file_beside(playbooks)
    return None if path is None else model_at(path)


def _model_of(ingestor: Any) -> HealthModel | None:
    given = getattr(ingestor, "health_model", None)
    if given is not None:
        return given if isinstance(given, HealthModel) else None
    cached: tuple[float, str | None] | None = getattr(ingestor, "_health_file", None)
    if cached is None or time.monotonic() - cached[0] > FOLDER_TTL:
        folders = {os.path.dirname(getattr(pb, "source", "") or "") for pb in ingestor.playbooks().values()}
        path = next((p for f in sorted(folders) if (p := health_beside(f or ".")) is not None), None)
        cached = (time.monotonic(), path)
        ingestor._health_file = cached  # remembered on the ingestor: its playbooks' folder rarely moves
    return model_at(cached[1]) if cached[1] else None


async def recompute_processed(ingestor: Any, done: Sequence[Any]) -> list[Any]:
    """engine.triggers.ingest's hook, after a batch of events is processed: recompute each account an input event of
    the batch was about, once, and put a changed score in as health.updated, processed at once.

    ``ingestor`` is the engine.triggers.ingest.Ingestor (its store, CRM, clock and ``ingest``); its
    ``health_model`` attribute, when set, is the model, else the health.yaml beside its playbooks.
    The score's event is processed right away (its triggers fire) unless an earlier event of the
    account still waits in the queue; then it waits its turn. Returns ``done`` with a note on each
    event that changed a score (the score, and what its triggers decided), for ``csops event send``.
    Never raises: health is recomputed again at the next input or daily scan.
    """
    try:
        model = _model_of(ingestor)
    except Exception:  # the events themselves were processed
        log.exception("the health model could not be read; health is not recomputed")
        return list(done)
    if model is None:
        return list(done)
    kinds = input_types(model)
    last: dict[str, str] = {}  # account → the batch's last input event of it (the cause, in the score's id)
    for p in done:
        if not p.error and p.type in kinds:
            last[p.account_id] = p.id
    events, notes = [], {}
    for account_id, cause in last.items():
        try:
            now = ingestor.now()
            found = await recompute_account(ingestor.store, ingestor.crm, model, account_id, now)
            if found is not None and found.changed:
                events.append(health_event(model, account_id, found.result, cause=f"event:{cause}", at=now))
                was = "none" if found.previous is None else f"{found.previous[0]:g}"
                notes[cause] = f"health recomputed by model {model.name}: {found.result.score:g} " \
                               f"({found.result.band}), was {was}"
        except Exception:  # one account's failure must not stop the others
            log.exception("recomputing the health of %s after event %s failed; the daily scan tries again",
                          account_id, cause)
    if not events:
        return list(done)
    try:
        results = await ingestor.ingest(events, process=True)
    except Exception:  # as above: the daily scan catches up
        log.exception("the recomputed health scores could not be stored; the daily scan tries again")
        return list(done)
    for event, result in zip(events, results, strict=True):
        cause = event["data"]["cause"].removeprefix("event:")
        notes[cause] += "".join(f"; {line}" for line in getattr(result, "decisions", ()))
    return [replace(p, notes=(*p.notes, notes[p.id])) if p.id in notes else p for p in done]


async def after_import(crm: Any, kind: str) -> str:
    """``csops import accounts``'s hook: recompute every account with the model beside the settings' playbooks.

    Only for an import into the settings' built-in CRM (not one given with --database-url).

    The changed scores are stored as health.updated events; the API's event processor records them
    and fires triggers. Returns a line to print ("" when there is no model or nothing changed).
    Never raises: the import itself is done; the daily scan catches up.
    """
    if kind != "accounts":
        return ""
    try:
        from engine.config.settings import Settings

        settings = Settings.load()
        crm_url = getattr(settings.config.crm, "database_url", "") or settings.database_url
        if str(crm.db.engine.url) != str(make_url(crm_url)):
            return ""  # an import into another database (--database-url): not the settings' accounts
        path = health_beside(settings.playbooks)
        model = model_at(path) if path else None
        if model is None:
            return ""
        now = datetime.now(UTC)
        store = Store(settings.database_url)
        try:
            changed = await recompute_and_store(crm, store, model, now, f"import:{now.isoformat()}")
        finally:
            store.close()
    except Exception as exc:  # noqa: BLE001 - the import is done; the daily scan recomputes
        log.warning("recomputing health after the import failed: %s", exc)
        return f"health: not recomputed after the import ({exc}); the daily scan will"
    return f"health: {changed} account score(s) changed by the import, queued as health.updated" if changed else ""


async def recompute_in_scan(crm: Any, store: Store, playbooks: Mapping[str, Any], now: datetime) -> int:
    """The daily scan's hook: recompute every account; changed scores are stored as health.updated events.

    The API's event processor takes them up like any stored event. Returns how many changed.
    """
    model = model_beside(playbooks)
    if model is None or not hasattr(crm, "list_accounts"):
        return 0
    return await recompute_and_store(crm, store, model, now, f"scan:{now.date().isoformat()}")
