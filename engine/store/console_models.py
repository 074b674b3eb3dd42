"""The console's tables in the engine's store: people who sign in, their sessions, what they did, snoozes.

They share the store's metadata (engine.store.store_models.Base), so ``Store`` creates them with its
own tables on SQLite and PostgreSQL alike; engine/store/store.py imports this module before it opens.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Date, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.store.store_models import Base, RowId, UtcDateTime

__all__ = ["ROLES", "AuditActionRow", "SessionRow", "SnoozeRow", "UserRow"]

ROLES = ("ops", "csm")
"""ops: everything; csm: acts on their own tasks and accounts, reads the rest."""


class UserRow(Base):
    """``console_users``: one person who may sign in."""

    __tablename__ = "console_users"
    email: Mapped[str] = mapped_column(String(320), primary_key=True)
    """Lower case; what they sign in with (and what a trusted proxy header names)."""
    name: Mapped[str] = mapped_column(String(200), default="")
    role: Mapped[str] = mapped_column(String(20))
    crm_user: Mapped[str] = mapped_column(String(255), default="")
    """The CRM user id whose tasks are their inbox and whose accounts are theirs ("" = none)."""
    password: Mapped[str] = mapped_column(String(300), default="")
    """scrypt$N$r$p$salt$hash (base64); "" = cannot sign in with a password (trusted-header only)."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)


class SessionRow(Base):
    """``console_sessions``: a signed-in browser. Only a hash of the cookie's value is kept."""

    __tablename__ = "console_sessions"
    __table_args__ = (Index("ix_console_sessions_email", "email"),)
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    csrf: Mapped[str] = mapped_column(String(64))
    """The token every form of this session carries."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class AuditActionRow(Base):
    """``console_audit``: who did what from the console (cancelled a run, completed a task, signed in...)."""

    __tablename__ = "console_audit"
    __table_args__ = (Index("ix_console_audit_at", "at"),)
    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UtcDateTime)
    actor: Mapped[str] = mapped_column(String(320))
    action: Mapped[str] = mapped_column(String(50))
    target: Mapped[str] = mapped_column(String(1000))
    detail: Mapped[str] = mapped_column(Text, default="")


class SnoozeRow(Base):
    """``console_snoozes``: a task hidden from its owner's inbox until a day (the CRM task is left as is)."""

    __tablename__ = "console_snoozes"
    task_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    until: Mapped[date] = mapped_column(Date)
    by: Mapped[str] = mapped_column(String(320))
