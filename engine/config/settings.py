"""Runtime settings: where Temporal is, where state lives, who falls back, and the connector config.

They come from three places, the first that says wins:

1. the environment (``CSOPS_*`` variables; an empty variable counts as unset),
2. for the Temporal address only: the ``csops up`` running with the same home folder, as it
   recorded in ``HOME/stack.json`` (engine/config/stackfile.py),
3. the config file: ``--config PATH`` where a command has it, else ``CSOPS_CONFIG``, else
   ``./csops.yaml`` if it exists (engine/config/config.py; docs/configuration.md),
4. the defaults below.

Connector choices (which CRM, mailer, chat) live only in the file. Secrets (a Temporal Cloud API
key, TLS keys) go only to the client connection: never into workflow inputs, history or logs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.config.config import Config, ConfigError, load_config
from engine.config.stackfile import NAME as STACK_NAME
from engine.config.stackfile import Stack, read_stack

DEFAULT_CONFIG = "csops.yaml"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the worker and the CLI need; ``from_env`` documents each variable."""

    temporal_address: str = "localhost:7233"
    """CSOPS_TEMPORAL_ADDRESS (file: temporal.address): host:port of the Temporal frontend."""
    namespace: str = "default"
    """CSOPS_TEMPORAL_NAMESPACE (file: temporal.namespace)."""
    api_key: str = ""
    """CSOPS_TEMPORAL_API_KEY (file: temporal.api_key): Temporal Cloud API key (implies TLS). Secret."""
    tls: bool = False
    """CSOPS_TEMPORAL_TLS=1 (file: temporal.tls): connect with TLS (system roots unless a CA is given)."""
    tls_cert: str = ""
    """CSOPS_TEMPORAL_TLS_CERT (file: temporal.tls_cert): client certificate file (mTLS)."""
    tls_key: str = ""
    """CSOPS_TEMPORAL_TLS_KEY (file: temporal.tls_key): client key file (mTLS). Secret file."""
    tls_ca: str = ""
    """CSOPS_TEMPORAL_TLS_CA (file: temporal.tls_ca): server CA file."""
    task_queue: str = "csops-playbooks"
    """CSOPS_TASK_QUEUE (file: temporal.task_queue)."""
    home: Path = Path(".csops")
    """CSOPS_HOME (file: home): local state (database, outboxes, Temporal's database under csops up)."""
    database_url: str = ""
    """CSOPS_DATABASE_URL (file: store.database_url): built-in CRM, ledger and suppressions (default:
    SQLite file in the home folder)."""
    playbooks: Path = Path("playbooks")
    """CSOPS_PLAYBOOKS (file: playbooks): the folder start_playbook looks playbooks up in."""
    fallback_owner: str = ""
    """CSOPS_FALLBACK_OWNER (file: fallback_owner): who gets work when a party resolves to nobody."""
    webhook_hosts: tuple[str, ...] = ()
    """CSOPS_WEBHOOK_HOSTS, comma-separated (file: webhooks.allowed_hosts): hosts http steps may call."""
    api_token: str = ""
    """CSOPS_API_TOKEN: the bearer token clients of the HTTP API must send. Secret; without it the API
    does not start (``csops api --insecure-dev`` serves loopback only, without a token)."""
    api_port: int = 8000
    """CSOPS_API_PORT: the HTTP API's port (``csops api`` and ``csops up``)."""
    config_file: str = ""
    """The config file read (CSOPS_CONFIG or ./csops.yaml); empty: none, the embedded defaults."""
    config: Config = field(default_factory=Config)
    """The connector configuration from that file."""
    temporal_from: str = ""
    """Where ``temporal_address`` came from, in words ("" for the default); commands that talk to
    Temporal say it when it is not the default."""
    stack: Stack | None = None
    """The running ``csops up`` whose addresses these are (``HOME/stack.json``), if any."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, config: Config | None = None) -> Settings:
        """Settings from the environment over ``config`` (default: the embedded defaults); reads no file."""
        e = {k: v for k, v in (os.environ if env is None else env).items() if v != ""}
        c = config or Config()
        t = c.temporal
        home = Path(e.get("CSOPS_HOME") or c.home or ".csops")
        hosts = e.get("CSOPS_WEBHOOK_HOSTS")
        api_key = e.get("CSOPS_TEMPORAL_API_KEY") or (t.api_key.reveal() if t.api_key else "")
        tls = e["CSOPS_TEMPORAL_TLS"].lower() in ("1", "true", "yes") if "CSOPS_TEMPORAL_TLS" in e else bool(t.tls)
        return cls(
            temporal_address=e.get("CSOPS_TEMPORAL_ADDRESS") or t.address or "localhost:7233",
            namespace=e.get("CSOPS_TEMPORAL_NAMESPACE") or t.namespace or "default",
            api_key=api_key,
            tls=tls,
            tls_cert=e.get("CSOPS_TEMPORAL_TLS_CERT") or t.tls_cert or "",
            tls_key=e.get("CSOPS_TEMPORAL_TLS_KEY") or t.tls_key or "",
            tls_ca=e.get("CSOPS_TEMPORAL_TLS_CA") or t.tls_ca or "",
            task_queue=e.get("CSOPS_TASK_QUEUE") or t.task_queue or "csops-playbooks",
            home=home,
            database_url=e.get("CSOPS_DATABASE_URL") or c.store.database_url or f"sqlite:///{home / 'csops.db'}",
            playbooks=Path(e.get("CSOPS_PLAYBOOKS") or c.playbooks or "playbooks"),
            fallback_owner=e.get("CSOPS_FALLBACK_OWNER") or c.fallback_owner or "",
            webhook_hosts=(tuple(h.strip() for h in hosts.split(",") if h.strip()) if hosts is not None
                           else c.webhooks.allowed_hosts or ()),
            api_token=e.get("CSOPS_API_TOKEN", ""),
            api_port=_port(e.get("CSOPS_API_PORT", "8000"), "CSOPS_API_PORT"),
            config_file=c.source,
            config=c,
            temporal_from=("CSOPS_TEMPORAL_ADDRESS" if e.get("CSOPS_TEMPORAL_ADDRESS") else
                           f"temporal.address in {c.source or 'the config'}" if t.address else ""),
        )

    @classmethod
    def load(cls, env: Mapping[str, str] | None = None, config_file: str = "") -> Settings:
        """Settings from the environment over the config file (``config_file``, else :func:`config_path`).

        Raises:
            ConfigError: the file cannot be read or has problems (each with its position).
        """
        e = os.environ if env is None else env
        path = config_file or config_path(e)
        settings = cls.from_env(e, load_config(path, e) if path else None)
        if e.get("CSOPS_TEMPORAL_ADDRESS"):  # the environment wins over a running csops up
            return settings
        stack = read_stack(settings.home)
        if stack is None:
            return settings
        return replace(settings, temporal_address=stack.temporal_address, stack=stack,
                       temporal_from=f"the csops up running here, pid {stack.pid} ({settings.home / STACK_NAME})")

    @property
    def mail_outbox(self) -> Path:
        """The email outbox folder: the file's email.folder, else HOME/outbox/mail."""
        folder = getattr(self.config.email, "folder", "")
        return Path(folder) if folder else self.home / "outbox" / "mail"

    @property
    def chat_outbox(self) -> Path:
        """The chat outbox file: the file's chat.path, else HOME/outbox/chat.jsonl."""
        path = getattr(self.config.chat, "path", "")
        return Path(path) if path else self.home / "outbox" / "chat.jsonl"

    def __repr__(self) -> str:  # never print the API key
        return f"Settings(temporal_address={self.temporal_address!r}, namespace={self.namespace!r}, ...)"


def _port(text: str, name: str) -> int:
    """A TCP port number from an environment variable.

    Raises:
        ConfigError: not a number from 1 to 65535.
    """
    if not text.isdigit() or not 1 <= int(text) <= 65535:
        raise ConfigError(f"{name} is {text!r}; set it to a port number from 1 to 65535")
    return int(text)


def config_path(env: Mapping[str, str] | None = None) -> str:
    """The config file to read: CSOPS_CONFIG, else ./csops.yaml if it exists, else '' (defaults).

    Raises:
        ConfigError: CSOPS_CONFIG names a file that does not exist.
    """
    named = (os.environ if env is None else env).get("CSOPS_CONFIG", "")
    if named:
        if not os.path.isfile(named):
            raise ConfigError(f"CSOPS_CONFIG names {named}, which is not a file")
        return named
    return DEFAULT_CONFIG if os.path.isfile(DEFAULT_CONFIG) else ""
