"""``csops.yaml``: which connector each part uses and its options; secrets only from the environment.

The file is read with the position-keeping loader (engine.language.yamlpos) and checked against
``schemas/config.schema.json`` by the playbook validator's schema walker, so every problem says
``csops.yaml:LINE:COL: message`` with a hint. ``${VAR}`` is replaced from the environment when the
file is loaded; a secret field (token, password, access_token, client_secret, secret, api_key) must
be exactly ``${VAR}``. Resolved secrets are :class:`Secret` objects: their repr and str never show
the value, and they refuse to be pickled, so they cannot slip into a log line or a workflow input.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from engine.config.configcheck import VAR, check_document, hide_password
from engine.config.crmconfig import HubSpotConfig as HubSpotConfig
from engine.config.crmconfig import PipedriveConfig as PipedriveConfig
from engine.config.crmconfig import SalesforceConfig as SalesforceConfig
from engine.config.secret import Secret as Secret
from engine.errors import CsopsError
from engine.language.problems import Problem
from engine.language.yamlpos import load, read

if TYPE_CHECKING:
    from engine.config.sourceconfig import SourceConfig

__all__ = [
    "BuiltinCRMConfig", "CalendarConfig", "Config", "ConfigError", "HubSpotConfig", "MarketingCap", "OutboxChatConfig",
    "OutboxEmailConfig", "PipedriveConfig", "SMTPConfig", "SalesforceConfig", "ScanConfig", "Secret", "SlackConfig",
    "StoreConfig", "TemporalConfig", "UnsubscribeConfig", "WebhooksConfig", "load_config", "parse_config",
]

SMTP_PORTS = {"starttls": 587, "tls": 465, "none": 25}


class ConfigError(CsopsError):
    """The configuration cannot be used: every problem found, or why the file cannot be read."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []


@dataclass(frozen=True, kw_only=True)
class BuiltinCRMConfig:
    """The built-in SQL CRM."""

    kind: Literal["builtin"] = "builtin"
    """Always builtin."""
    database_url: str = ""
    """A database of its own; empty: the store's."""

    def __repr__(self) -> str:
        return f"BuiltinCRMConfig(database_url={hide_password(self.database_url) if self.database_url else ''!r})"


@dataclass(frozen=True, kw_only=True)
class UnsubscribeConfig:
    """The unsubscribe link of marketing email."""

    url: str
    """The page, with {token} where the signed token goes."""
    mailto: str = ""
    """An unsubscribe address, or empty."""
    secret: Secret
    """Signs the tokens."""


@dataclass(frozen=True, kw_only=True)
class MarketingCap:
    """A frequency cap for marketing email."""

    per_recipient: int = 0
    """At most this many per address in the window; 0: no cap."""
    window_days: int = 7
    """The window in days."""


@dataclass(frozen=True, kw_only=True)
class OutboxEmailConfig:
    """Email written to .eml files."""

    kind: Literal["outbox"] = "outbox"
    """Always outbox."""
    folder: str = ""
    """Where the files go; empty: HOME/outbox/mail."""
    unsubscribe: UnsubscribeConfig | None = None
    """The unsubscribe link, if configured."""
    marketing_cap: MarketingCap = field(default_factory=MarketingCap)
    """The marketing cap."""


@dataclass(frozen=True, kw_only=True)
class SMTPConfig:
    """Email through an SMTP server."""

    kind: Literal["smtp"] = "smtp"
    """Always smtp."""
    host: str
    """Server host name."""
    port: int = 587
    """Server port (the loader fills in the default for the security mode)."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """starttls, tls or none."""
    username: str = ""
    """Login name; empty: no login."""
    password: Secret | None = None
    """Login password."""
    from_domain: str = "csops.local"
    """Domain of the Message-IDs."""
    timeout: float = 30.0
    """Seconds per step."""
    unsubscribe: UnsubscribeConfig | None = None
    """The unsubscribe link, if configured."""
    marketing_cap: MarketingCap = field(default_factory=MarketingCap)
    """The marketing cap."""


@dataclass(frozen=True, kw_only=True)
class OutboxChatConfig:
    """Chat messages appended to a JSON-lines file."""

    kind: Literal["outbox"] = "outbox"
    """Always outbox."""
    path: str = ""
    """The file; empty: HOME/outbox/chat.jsonl."""


@dataclass(frozen=True, kw_only=True)
class SlackConfig:
    """Slack's Web API with a bot token."""

    kind: Literal["slack"] = "slack"
    """Always slack."""
    token: Secret
    """The bot token."""
    base_url: str = "https://slack.com/api/"
    """The API address."""
    timeout: float = 10.0
    """Seconds per request."""
    max_retries: int = 5
    """Retries inside the connector."""


@dataclass(frozen=True, kw_only=True)
class WebhooksConfig:
    """The allow-list of http steps."""

    allowed_hosts: tuple[str, ...] | None = None
    """Hosts http steps may call; None when the file does not say."""
    allow_private: tuple[str, ...] = ()
    """Allowed hosts that may resolve to private addresses."""
    timeout: float = 10.0
    """Seconds per call."""


@dataclass(frozen=True, kw_only=True)
class StoreConfig:
    """The store's database."""

    database_url: str | None = None
    """A SQLAlchemy URL; None when the file does not say."""

    def __repr__(self) -> str:
        return f"StoreConfig(database_url={hide_password(self.database_url) if self.database_url else None!r})"


@dataclass(frozen=True, kw_only=True)
class TemporalConfig:
    """Temporal connection settings from the file; None where the file does not say."""

    address: str | None = None
    """host:port."""
    namespace: str | None = None
    """The namespace."""
    task_queue: str | None = None
    """The task queue."""
    api_key: Secret | None = None
    """Temporal Cloud API key."""
    tls: bool | None = None
    """Connect with TLS."""
    tls_cert: str | None = None
    """Client certificate file."""
    tls_key: str | None = None
    """Client key file."""
    tls_ca: str | None = None
    """Server CA file."""


WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True, kw_only=True)
class CalendarConfig:
    """The business calendar: what "today" is, and which days business days count."""

    timezone: str = "UTC"
    """An IANA time zone (Europe/Berlin): days, the daily scan's cron and dates in expressions follow it."""
    workdays: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri")
    """The days business days count, as mon..sun."""
    holidays: tuple[str, ...] = ()
    """Dates (YYYY-MM-DD) business days skip."""
    send_window: dict[str, Any] | None = None
    """The default send window of email steps ({days, hours}); None: email goes at once."""

    def as_dict(self) -> dict[str, Any]:
        """As runs and ``engine.language.context.Calendar.from_dict`` take it (workdays as 0 = Monday)."""
        out: dict[str, Any] = {"timezone": self.timezone, "workdays": [WEEKDAYS.index(d) for d in self.workdays],
               "holidays": list(self.holidays)}
        if self.send_window:
            out["send_window"] = dict(self.send_window)
        return out


@dataclass(frozen=True, kw_only=True)
class ScanConfig:
    """The daily scan of date triggers."""

    cron: str = "0 6 * * *"
    """When it runs, a cron expression in the calendar's time zone."""


CRMConfig = BuiltinCRMConfig | HubSpotConfig | SalesforceConfig | PipedriveConfig
EmailConfig = OutboxEmailConfig | SMTPConfig
ChatConfig = OutboxChatConfig | SlackConfig


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration; ``Config()`` is the embedded default (no file)."""

    source: str = ""
    """The file it was read from; empty for the embedded defaults."""
    crm: CRMConfig = field(default_factory=BuiltinCRMConfig)
    """The CRM."""
    email: EmailConfig = field(default_factory=OutboxEmailConfig)
    """The mailer."""
    chat: ChatConfig = field(default_factory=OutboxChatConfig)
    """The chat."""
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)
    """The webhook allow-list."""
    fallback_owner: str | None = None
    """Who gets work nobody else gets; None when the file does not say."""
    store: StoreConfig = field(default_factory=StoreConfig)
    """The store."""
    temporal: TemporalConfig = field(default_factory=TemporalConfig)
    """Temporal."""
    home: str | None = None
    """The state folder; None when the file does not say."""
    playbooks: str | None = None
    """The playbooks folder; None when the file does not say."""
    calendar: CalendarConfig = field(default_factory=CalendarConfig)
    """The business calendar."""
    scan: ScanConfig = field(default_factory=ScanConfig)
    """The daily scan."""
    sources: dict[str, SourceConfig] = field(default_factory=dict)
    """Webhook sources by name (engine/sources)."""


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read and check a config file; ``env`` (default: the process environment) resolves ``${VAR}``.

    Raises:
        ConfigError: the file cannot be read, or has problems (all of them, in ``problems``).
    """
    try:
        doc = read(os.fspath(path))
    except OSError as exc:
        raise ConfigError(f"{os.fspath(path)}: cannot read: {exc.strerror or exc}") from None
    return _finish(doc.path, check_document(doc, os.environ if env is None else env))


def parse_config(text: str, path: str = "csops.yaml", env: Mapping[str, str] | None = None) -> Config:
    """Check config text as if read from ``path``; raises ConfigError like :func:`load_config`."""
    return _finish(path, check_document(load(text, path), os.environ if env is None else env))


def _finish(path: str, checked: tuple[Any, list[Problem], Mapping[str, str]]) -> Config:
    data, problems, env = checked
    if problems:
        count = sum(1 for p in problems if p.severity == "error")
        raise ConfigError(f"{path}: {count} problem(s)", sorted(problems, key=Problem.sort_key))
    return _typed(path, copy.deepcopy(data) if data else {}, env)


def _typed(path: str, data: dict[str, Any], env: Mapping[str, str]) -> Config:
    """The typed config from checked data (every value is known to be of the right form)."""
    def secret(value: str | None) -> Secret | None:
        match = VAR.match(value.strip()) if value else None
        return Secret(env[match.group(1)], match.group(1)) if match else None

    def must(value: str) -> Secret:
        resolved = secret(value)
        assert resolved is not None  # the checks made sure
        return resolved

    crm_data = dict(data.get("crm") or {})
    crm: CRMConfig
    kind = crm_data.pop("kind", "builtin")
    if kind == "hubspot":
        crm = HubSpotConfig(**{**crm_data, "token": must(crm_data["token"])})
    elif kind == "pipedrive":
        crm = PipedriveConfig(**{**crm_data, "api_token": must(crm_data["api_token"])})
    elif kind == "salesforce":
        crm = SalesforceConfig(**{**crm_data, "access_token": secret(crm_data.get("access_token")),
                                  "client_secret": secret(crm_data.get("client_secret"))})
    else:
        crm = BuiltinCRMConfig(**crm_data)

    email_data = dict(data.get("email") or {})
    kind = email_data.pop("kind", "outbox")
    if unsub := email_data.get("unsubscribe"):
        email_data["unsubscribe"] = UnsubscribeConfig(**{**unsub, "secret": must(unsub["secret"])})
    email_data["marketing_cap"] = MarketingCap(**email_data.get("marketing_cap", {}))
    email: EmailConfig
    if kind == "smtp":
        email_data.setdefault("port", SMTP_PORTS[email_data.get("security", "starttls")])
        email = SMTPConfig(**{**email_data, "password": secret(email_data.get("password"))})
    else:
        email = OutboxEmailConfig(**email_data)

    chat_data = dict(data.get("chat") or {})
    kind = chat_data.pop("kind", "outbox")
    chat: ChatConfig
    if kind == "slack":
        chat = SlackConfig(**{**chat_data, "token": must(chat_data["token"])})
    else:
        chat = OutboxChatConfig(**chat_data)

    hooks = data.get("webhooks") or {}
    webhooks = WebhooksConfig(
        allowed_hosts=tuple(hooks["allowed_hosts"]) if "allowed_hosts" in hooks else None,
        allow_private=tuple(hooks.get("allow_private", ())), timeout=float(hooks.get("timeout", 10.0)))
    temporal = dict(data.get("temporal") or {})
    temporal["api_key"] = secret(temporal.get("api_key"))
    from engine.config.sourceconfig import parse_sources

    return Config(source=path, crm=crm, email=email, chat=chat, webhooks=webhooks,
                  fallback_owner=data.get("fallback_owner"), store=StoreConfig(**(data.get("store") or {})),
                  temporal=TemporalConfig(**temporal), home=data.get("home"), playbooks=data.get("playbooks"),
                  calendar=_calendar(data.get("calendar") or {}),
                  scan=ScanConfig(**(data.get("scan") or {})),
                  sources=parse_sources(data.get("sources") or {}, secret))


def _calendar(data: dict[str, Any]) -> CalendarConfig:
    defaults = CalendarConfig()
    return CalendarConfig(timezone=data.get("timezone", defaults.timezone),
                          workdays=tuple(data.get("workdays", defaults.workdays)),
                          holidays=tuple(data.get("holidays", defaults.holidays)),
                          send_window=dict(data["send_window"]) if data.get("send_window") else None)
