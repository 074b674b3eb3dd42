"""Outboxes: the Mailer and Chat a fresh machine uses, writing messages to files instead of sending.

``EmailOutbox`` writes one RFC 5322 ``.eml`` file per message, named after a hash of the
idempotency key, so a repeated send finds its file and returns the same Message-ID. ``ChatOutbox``
appends JSON lines to one file under an ``fcntl`` lock, so two processes cannot both append a key.
Both are real implementations: the demo and the tests read what a playbook "sent" from them.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import json
import os
import tempfile
import threading
import time
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from typing import Any

from connectors import mailbuild
from connectors.base import ChatMessage, OutgoingEmail, PermanentError

__all__ = ["ChatOutbox", "EmailOutbox"]


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]


class EmailOutbox:
    """A ``Mailer`` that writes each message to ``folder/<hash of key>.eml``.

    Args:
        folder: Where the .eml files go; created if missing.
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    @staticmethod
    def message_id(idempotency_key: str) -> str:
        """The Message-ID a send with this key gets (the same every time)."""
        return mailbuild.message_id(idempotency_key)

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str:
        """Write the message once per key and return its Message-ID.

        Raises:
            PermanentError: no recipient, an invalid address, or CR/LF in a header value.
        """
        built = self._build(message, idempotency_key)  # validate on the caller's side: cheap, no I/O
        await asyncio.to_thread(self._write, self.folder / f"{_digest(idempotency_key)}.eml", built)
        return self.message_id(idempotency_key)

    def messages(self) -> list[EmailMessage]:
        """Every message in the folder, oldest file first."""
        files = sorted(self.folder.glob("*.eml"), key=lambda p: (p.stat().st_mtime_ns, p.name))
        parser = BytesParser(policy=policy.default)
        return [_as_email(parser.parsebytes(p.read_bytes())) for p in files]

    def _build(self, message: OutgoingEmail, key: str) -> bytes:
        # The same builder as SMTP. Marketing mail without an unsubscribe link is kept: an outbox
        # delivers to nobody, and the demo must work before email.unsubscribe is configured.
        built = mailbuild.build(message, key, key_header=True, require_unsubscribe=False)
        return built.as_bytes()  # CRLF line ends, as RFC 5322 writes a message on the wire

    def _write(self, path: Path, data: bytes) -> None:
        if path.exists():
            return  # sent before with this key: the first file stands
        fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            # Another process may have written the same key meanwhile; either copy has the same
            # Message-ID, and rename is atomic, so readers never see half a message.
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        _fsync_dir(self.folder)


def _as_email(msg: Any) -> EmailMessage:
    assert isinstance(msg, EmailMessage)  # policy.default always builds EmailMessage
    return msg


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the directory entry is on disk.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class ChatOutbox:
    """A ``Chat`` that appends each message as one JSON line to ``path``.

    Each line holds ``id``, ``channel``, ``user_email``, ``text``, ``blocks``, ``idempotency_key``
    and ``ts``; the id is ``channel:ts`` (or ``user_email:ts`` for a DM), like Slack's.

    Args:
        path: The .jsonl file; its folder is created if missing.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Keys already read, and how far: each post reads only what others appended since.
        self._seen: dict[str, str] = {}
        self._offset = 0
        self._lock = threading.Lock()

    async def post(self, message: ChatMessage, idempotency_key: str) -> str:
        """Append the message once per key; return its id (the first one for a repeated key).

        Raises:
            PermanentError: neither or both of channel and user_email, or no text.
        """
        channel = message.channel.removeprefix("#")
        if bool(channel) == bool(message.user_email):
            raise PermanentError("a chat message goes to exactly one of a channel or a user_email")
        if not message.text.strip():
            raise PermanentError("a chat message needs text (it is also the notification text)")
        record = {"channel": channel, "user_email": message.user_email, "text": message.text,
                  "blocks": list(message.blocks), "idempotency_key": idempotency_key}
        return await asyncio.to_thread(self._append, record)

    def messages(self) -> list[dict[str, Any]]:
        """Every message posted, in order."""
        if not self.path.exists():
            return []
        with self.path.open("rb") as f:
            return [m for m in map(_parse, f) if m is not None]

    def _append(self, record: dict[str, Any]) -> str:
        key = record["idempotency_key"]
        with self._lock, self.path.open("a+b") as f:
            # flock is per open file, so it also keeps this process's other threads out.
            fcntl.flock(f, fcntl.LOCK_EX)
            size = f.seek(0, os.SEEK_END)
            if size < self._offset:  # the file was truncated or replaced: read it afresh
                self._seen, self._offset = {}, 0
            f.seek(self._offset)
            for line in f:
                if line.endswith(b"\n") and (m := _parse(line)) is not None:
                    self._seen.setdefault(str(m.get("idempotency_key")), str(m.get("id")))
            self._offset = f.tell()
            if key in self._seen:
                return self._seen[key]
            ts = f"{time.time():.6f}"
            record = {"id": f"{record['channel'] or record['user_email']}:{ts}", **record, "ts": ts}
            line = json.dumps(record, ensure_ascii=False, sort_keys=True).encode("utf-8") + b"\n"
            if size and not self._ends_with_newline(f, size):
                line = b"\n" + line  # a writer died mid-line: keep our line whole
            f.write(line)  # "a" mode: always at the end
            f.flush()
            os.fsync(f.fileno())
            self._offset = f.tell()
            self._seen[key] = record["id"]
            return str(record["id"])

    @staticmethod
    def _ends_with_newline(f: Any, size: int) -> bool:
        f.seek(size - 1)
        return bool(f.read(1) == b"\n")


def _parse(line: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(line)
    except ValueError:
        return None  # a torn line from a writer that died; skip it
    return value if isinstance(value, dict) else None
