"""Runtime settings from the environment: where Temporal is, where state lives, who falls back.

Secrets (a Temporal Cloud API key, TLS keys) are read from the environment here and go only to the
client connection: never into workflow inputs, history or logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything the worker and ``csops up`` need; ``from_env`` documents each variable."""

    temporal_address: str = "localhost:7233"
    """CSOPS_TEMPORAL_ADDRESS: host:port of the Temporal frontend."""
    namespace: str = "default"
    """CSOPS_TEMPORAL_NAMESPACE."""
    api_key: str = ""
    """CSOPS_TEMPORAL_API_KEY: Temporal Cloud API key (implies TLS). Secret."""
    tls: bool = False
    """CSOPS_TEMPORAL_TLS=1: connect with TLS (system roots unless a CA is given)."""
    tls_cert: str = ""
    """CSOPS_TEMPORAL_TLS_CERT: client certificate file (mTLS)."""
    tls_key: str = ""
    """CSOPS_TEMPORAL_TLS_KEY: client key file (mTLS). Secret file."""
    tls_ca: str = ""
    """CSOPS_TEMPORAL_TLS_CA: server CA file."""
    task_queue: str = "csops-playbooks"
    """CSOPS_TASK_QUEUE."""
    home: Path = Path(".csops")
    """CSOPS_HOME: local state (database, outboxes, Temporal's database under csops up)."""
    database_url: str = ""
    """CSOPS_DATABASE_URL: built-in CRM and ledger (default: SQLite file in CSOPS_HOME)."""
    playbooks: Path = Path("playbooks")
    """CSOPS_PLAYBOOKS: the folder start_playbook looks playbooks up in."""
    fallback_owner: str = ""
    """CSOPS_FALLBACK_OWNER: who gets work when a party resolves to nobody (a user's email)."""
    webhook_hosts: tuple[str, ...] = ()
    """CSOPS_WEBHOOK_HOSTS: comma-separated host names http steps may call (none: http steps fail)."""

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = dict(os.environ if env is None else env)
        home = Path(e.get("CSOPS_HOME", ".csops"))
        return cls(
            temporal_address=e.get("CSOPS_TEMPORAL_ADDRESS", "localhost:7233"),
            namespace=e.get("CSOPS_TEMPORAL_NAMESPACE", "default"),
            api_key=e.get("CSOPS_TEMPORAL_API_KEY", ""),
            tls=e.get("CSOPS_TEMPORAL_TLS", "") in ("1", "true", "yes"),
            tls_cert=e.get("CSOPS_TEMPORAL_TLS_CERT", ""),
            tls_key=e.get("CSOPS_TEMPORAL_TLS_KEY", ""),
            tls_ca=e.get("CSOPS_TEMPORAL_TLS_CA", ""),
            task_queue=e.get("CSOPS_TASK_QUEUE", "csops-playbooks"),
            home=home,
            database_url=e.get("CSOPS_DATABASE_URL", f"sqlite:///{home / 'csops.db'}"),
            playbooks=Path(e.get("CSOPS_PLAYBOOKS", "playbooks")),
            fallback_owner=e.get("CSOPS_FALLBACK_OWNER", ""),
            webhook_hosts=tuple(h.strip() for h in e.get("CSOPS_WEBHOOK_HOSTS", "").split(",") if h.strip()),
        )

    @property
    def mail_outbox(self) -> Path:
        return self.home / "outbox" / "mail"

    @property
    def chat_outbox(self) -> Path:
        return self.home / "outbox" / "chat.jsonl"

    def __repr__(self) -> str:  # never print the API key
        return f"Settings(temporal_address={self.temporal_address!r}, namespace={self.namespace!r}, ...)"
