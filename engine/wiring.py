"""Build the connectors ``csops.yaml`` names, check them, close them: wiring only.

Each part (crm, email, chat, webhooks, store) is built by its own builder, which imports the
connector's module only when that kind is configured, so a missing optional connector matters only
to whoever configures it. Every part has ``check()`` (the problems in plain words, [] when it works)
and ``close()``; the built-in SQL CRM and the outboxes get theirs here. Secrets are revealed only
as arguments to the constructors, and every one is registered with connectors.redact first, so
whatever a server echoes of it is redacted from failures, logs and check-config's output.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

from connectors import redact
from connectors.base import CRM, Chat, ConnectorError, Http, Mailer
from connectors.outbox import ChatOutbox, EmailOutbox
from engine.config.config import Secret
from engine.config.configcheck import hide_password as shown_url
from engine.config.settings import Settings
from engine.errors import CsopsError
from engine.registry import FACTORIES

__all__ = ["BuildError", "Connectors", "Part", "build_connectors", "build_parts", "check_parts", "shown_url"]

CHECK_TIMEOUT = 15.0
log = logging.getLogger("csops.wiring")


class BuildError(CsopsError):
    """A connector cannot be set up from the configuration; the message says why in plain words."""

    def __init__(self, part: str, kind: str, message: str) -> None:
        message = redact.redact(message)  # a constructor's or driver's words may quote a secret
        super().__init__(f"{part} ({kind}): {message}" if kind else f"{part}: {message}")
        self.part, self.kind, self.reason = part, kind, message


@dataclass
class Part:
    """One built connector with its check and close."""

    name: str
    """crm, email, chat, webhooks or store."""
    kind: str
    """builtin, hubspot, smtp, slack, sqlite... (what check-config prints in brackets)."""
    connector: Any
    """The object the activities get (None for the store, which the worker opens itself)."""
    check: Callable[[], Awaitable[list[str]]]
    """The problems in plain words; [] when the connection works."""
    close: Callable[[], Awaitable[None]]
    """Release connections and files."""


@dataclass
class Connectors:
    """What the worker passes to the activities, and how to close all of it."""

    crm: CRM
    """The CRM."""
    mailer: Mailer
    """The mailer (a PolicyMailer around SMTP or the outbox)."""
    chat: Chat
    """The chat."""
    http: Http
    """The webhook caller."""
    parts: list[Part]
    """Everything built, in order."""

    async def close(self) -> None:
        """Close every part, even when one of them fails to close."""
        await close_parts(self.parts)


class _CheckedEmailOutbox(EmailOutbox):
    """The email outbox with the check and close every mailer has."""

    async def check(self) -> list[str]:
        return await asyncio.to_thread(_writable_folder, self.folder, "email outbox folder")

    async def close(self) -> None:
        return None


class _CheckedChatOutbox(ChatOutbox):
    """The chat outbox with the check and close every chat has."""

    async def check(self) -> list[str]:
        return await asyncio.to_thread(_appendable, self.path)

    async def close(self) -> None:
        return None


async def _sql(part: str, kind: str, url: str, make: Callable[[str], Any]) -> Any:
    """``make(url)`` on a thread (it connects and creates tables), its failures in plain words."""
    try:
        return await asyncio.to_thread(make, url)
    except NoSuchModuleError:
        raise BuildError(part, kind, f"no database driver for {url.partition(':')[0]!r}: use sqlite:/// or "
                         "postgresql+psycopg://") from None
    except ArgumentError:
        raise BuildError(part, kind, "the database URL is not one SQLAlchemy understands; write it like "
                         "sqlite:///.csops/csops.db or postgresql+psycopg://user@host:5432/db") from None
    except SQLAlchemyError as exc:
        first = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise BuildError(part, kind, f"cannot use the database at {shown_url(url)}: {first}") from None
    except OSError as exc:
        raise BuildError(part, kind, f"cannot open the database at {shown_url(url)}: {exc.strerror or exc}") from None


async def _database_check(db: Any, url: str) -> list[str]:
    try:
        await db.run(lambda s: s.execute(text("select 1")))
    except ConnectorError as exc:
        return [f"the database at {shown_url(url)} does not answer: {exc}"]
    return []


def _writable_folder(folder: Path, what: str) -> list[str]:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return [f"cannot write to the {what} {folder}: {exc.strerror or exc}"]
    return []


def _appendable(path: Path) -> list[str]:
    try:
        with path.open("ab"):
            pass
    except OSError as exc:
        return [f"cannot append to the chat outbox {path}: {exc.strerror or exc}"]
    return []


def _construct(part: str, kind: str, make: Callable[[], Any]) -> Any:
    try:
        return make()
    except ImportError as exc:
        raise BuildError(part, kind, f"the {kind} connector cannot be loaded ({exc})") from None
    except ValueError as exc:
        raise BuildError(part, kind, str(exc)) from None
    except OSError as exc:
        where = f"{exc.filename}: " if exc.filename else ""
        raise BuildError(part, kind, f"cannot use {where}{exc.strerror or exc}") from None


async def build_store(settings: Settings, checking: bool = False) -> Part:
    """The store (ledger, suppressions): checked by opening the ledger, which creates its table."""
    from connectors.ledger import Ledger

    url = settings.database_url
    kind = shown_url(url).partition(":")[0].partition("+")[0]
    ledger = await _sql("store", kind, url, Ledger)
    await asyncio.to_thread(ledger.close)

    async def check() -> list[str]:
        probe = await _sql("store", kind, url, Ledger)
        try:
            return await _database_check(probe.db, url)
        finally:
            await asyncio.to_thread(probe.close)

    return Part("store", kind, None, check, _nothing)


def register_secrets(settings: Settings) -> None:
    """Register every secret of the settings with connectors.redact: each ``Secret`` of the config
    file (found by walking it, so a new one is covered without a change here) and the env-only ones."""
    found: list[str] = [settings.api_key, settings.api_token]

    def walk(value: Any, depth: int = 0) -> None:
        if isinstance(value, Secret):
            found.append(value.reveal())
        elif depth < 8 and dataclasses.is_dataclass(value) and not isinstance(value, type):
            for f in dataclasses.fields(value):
                walk(getattr(value, f.name), depth + 1)
        elif depth < 8 and isinstance(value, list | tuple):
            for item in value:
                walk(item, depth + 1)
        elif depth < 8 and isinstance(value, dict):
            for item in value.values():
                walk(item, depth + 1)
    walk(settings.config)
    redact.register(*found)


async def build_crm(settings: Settings, checking: bool = False) -> Part:
    """The CRM the config names (built-in SQL, HubSpot or Salesforce); its check also looks up the fallback owner."""
    register_secrets(settings)  # every command that talks to a server builds the CRM first
    part = await _build_crm(settings)
    if settings.fallback_owner:
        part.check = _fallback_check(part.connector, part.check, settings.fallback_owner)
    return part


def _fallback_check(crm: CRM, check: Callable[[], Awaitable[list[str]]], owner: str
                    ) -> Callable[[], Awaitable[list[str]]]:
    async def both() -> list[str]:
        problems = await check()
        if problems:
            return problems  # the lookup would fail for the same reason
        try:
            user = await crm.get_user(owner)
        except ConnectorError as exc:
            return [f"cannot look up the fallback owner {owner}: {exc}"]
        if user is None:
            return [f"the fallback owner {owner} is not a user in this CRM: work that has nobody else to go to "
                    "would fail; set fallback_owner (or CSOPS_FALLBACK_OWNER) to someone the CRM has"]
        return []
    return both


async def _build_crm(settings: Settings) -> Part:
    cfg = settings.config.crm
    factory = FACTORIES.get(("crm", cfg.kind))
    if factory is not None:
        crm = _construct("crm", cfg.kind, lambda: factory(cfg))
        return Part("crm", cfg.kind, crm, crm.check, crm.close)
    from connectors.sqlcrm import SQLCRM

    url = getattr(cfg, "database_url", "") or settings.database_url
    sql = await _sql("crm", "builtin", url, SQLCRM)

    async def close() -> None:
        await asyncio.to_thread(sql.close)

    return Part("crm", "builtin", sql, lambda: _database_check(sql.db, url), close)


async def build_email(settings: Settings, checking: bool = False) -> Part:
    """The mailer (SMTP or the outbox) inside the PolicyMailer: suppressions, marketing cap, unsubscribe.

    When ``checking``, a policy that cannot be set up is one more problem of the part rather than
    the end of it, so the mail server is still checked.
    """
    register_secrets(settings)
    cfg = settings.config.email
    inner: Any
    factory = FACTORIES.get(("email", cfg.kind))
    if factory is not None:
        inner = _construct("email", cfg.kind, lambda: factory(cfg))
    else:
        inner = _construct("email", cfg.kind, lambda: _CheckedEmailOutbox(settings.mail_outbox))
    from connectors.mailpolicy import PolicyMailer, Unsubscribe
    from connectors.suppression import SuppressionList

    try:
        unsub = cfg.unsubscribe
        unsubscribe = _construct("email", cfg.kind, lambda: Unsubscribe(
            unsub.url, unsub.mailto, unsub.secret.reveal())) if unsub else None
        suppressions = await _sql("email", cfg.kind, settings.database_url, SuppressionList)
    except BuildError as exc:
        if not checking:
            await inner.close()
            raise
        # check-config still tests the mail server itself, and names what else is wrong
        return Part("email", cfg.kind, inner, _plus(inner.check, f"the suppression list: {exc.reason}"), inner.close)
    except BaseException:
        await inner.close()
        raise
    cap = cfg.marketing_cap
    mailer = PolicyMailer(inner, suppressions=suppressions, unsubscribe=unsubscribe, marketing_cap=cap.per_recipient,
                          cap_window_days=cap.window_days)
    return Part("email", cfg.kind, mailer, mailer.check, mailer.close)


async def build_chat(settings: Settings, checking: bool = False) -> Part:
    """Slack or the chat outbox."""
    register_secrets(settings)
    cfg = settings.config.chat
    factory = FACTORIES.get(("chat", cfg.kind))
    chat = _construct("chat", cfg.kind, (lambda: factory(cfg)) if factory is not None
                      else (lambda: _CheckedChatOutbox(settings.chat_outbox)))
    return Part("chat", cfg.kind, chat, chat.check, chat.close)


async def build_webhooks(settings: Settings, checking: bool = False) -> Part:
    """The webhook caller with the allow-list (env CSOPS_WEBHOOK_HOSTS over the file's)."""
    from connectors.webhook import Webhook

    hooks = settings.config.webhooks
    count = len(settings.webhook_hosts)
    kind = f"{count} allowed host{'s' if count != 1 else ''}" if count else "no hosts allowed"
    http = _construct("webhooks", kind, lambda: Webhook(list(settings.webhook_hosts),
                                                        allow_private=list(hooks.allow_private),
                                                        timeout=hooks.timeout))
    return Part("webhooks", kind, http, http.check, http.close)


BUILDERS: tuple[Callable[[Settings, bool], Awaitable[Part]], ...] = (
    build_crm, build_email, build_chat, build_webhooks, build_store)


async def build_parts(settings: Settings, timeout: float = CHECK_TIMEOUT) -> list[Part | BuildError]:
    """Every part, or why it cannot be built (for check-config: one failure does not hide the others)."""
    out: list[Part | BuildError] = []
    for builder in BUILDERS:
        name = builder.__name__.removeprefix("build_")
        try:
            out.append(await asyncio.wait_for(builder(settings, True), timeout))
        except BuildError as exc:
            out.append(exc)
        except TimeoutError:
            out.append(BuildError(name, "", f"setting it up took longer than {timeout:g} s (a database or server "
                                  "that does not answer?)"))
    return out


async def build_connectors(settings: Settings) -> Connectors:
    """The connectors for the worker.

    Raises:
        BuildError: a part cannot be built (what was built is closed again).
    """
    parts: list[Part] = []
    try:
        for builder in BUILDERS:
            parts.append(await builder(settings, False))
    except BaseException:
        await close_parts(parts)
        raise
    by_name = {p.name: p.connector for p in parts}
    return Connectors(crm=by_name["crm"], mailer=by_name["email"], chat=by_name["chat"], http=by_name["webhooks"],
                      parts=parts)


async def check_parts(parts: list[Part], timeout: float = CHECK_TIMEOUT) -> list[list[str]]:
    """Each part's check, concurrently, each within ``timeout`` seconds; the problems per part, with
    every registered secret redacted (a server's answer may quote one)."""
    async def one(part: Part) -> list[str]:
        return [redact.redact(problem) for problem in await checked(part)]

    async def checked(part: Part) -> list[str]:
        try:
            return list(await asyncio.wait_for(part.check(), timeout))
        except TimeoutError:
            return [f"no answer within {timeout:g} s"]
        except ConnectorError as exc:
            return [str(exc)]
        except Exception as exc:  # noqa: BLE001 - a connector's bug is one more problem to report, in words
            return [f"the check itself failed: {type(exc).__name__}: {exc}"]

    return list(await asyncio.gather(*(one(p) for p in parts)))


async def close_parts(parts: list[Part]) -> None:
    """Close every part, last built first; a part that fails to close does not stop the others."""
    for part in reversed(parts):
        try:
            await part.close()
        except Exception as exc:  # noqa: BLE001 - closing is best effort at shutdown
            log.warning("closing %s failed: %s: %s", part.name, type(exc).__name__, exc)


async def _nothing() -> None:
    return None


def _plus(check: Callable[[], Awaitable[list[str]]], problem: str) -> Callable[[], Awaitable[list[str]]]:
    async def both() -> list[str]:
        return [*await check(), problem]
    return both
