"""A real SMTP server for tests: aiosmtpd on 127.0.0.1 and a free port, in the test's event loop.

It speaks plain SMTP, STARTTLS (optionally required) or TLS from the first byte, checks AUTH
against a user table, refuses chosen mailboxes, and counts every message it accepted (raw, by
recipient and by Message-ID). Faults are what real servers do to a sender, drawn per transaction
(at MAIL FROM) with a seeded generator:

- ``421-mail``, ``421-rcpt``, ``421-data``: "service not available", then the server hangs up;
- ``451-mail``, ``451-rcpt``, ``451-data``: "try again later" on that command;
- ``451-after-data``: the whole message is received, then refused with 451 (not accepted);
- ``drop-in-data``: the server reads part of the message and cuts the connection (not accepted).

None of these is an accepted message, so exactly-once delivery is possible through them. The one
fault no SMTP client can survive without a duplicate, ``accept_then_drop``, is separate: the
message IS accepted, then the connection is cut before the "250 OK" reaches the client.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import warnings
from collections import Counter
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser
from typing import Any, ClassVar

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from tests.fakes.http import Faults

FAULT_KINDS = ("421-mail", "451-mail", "421-rcpt", "451-rcpt", "421-data", "451-data", "451-after-data",
               "drop-in-data")


@dataclass
class SMTPFaults(Faults):
    """Which transactions fail, and how (``FAULT_KINDS``); seeded so a failing run repeats."""

    known: ClassVar[tuple[str, ...]] = FAULT_KINDS
    kinds: tuple[str, ...] = FAULT_KINDS


@dataclass
class Received:
    """One message the server accepted."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    message: EmailMessage


class _Protocol(SMTP):
    """aiosmtpd's SMTP with faults at MAIL, RCPT and DATA."""

    def __init__(self, owner: MailServer, **kwargs: Any) -> None:
        self.owner = owner
        self.fault: str | None = None
        super().__init__(owner, **kwargs)

    def connection_lost(self, error: Exception | None) -> None:
        self.owner.live.discard(self)
        super().connection_lost(error)

    async def _fail(self, reply: str) -> None:
        await self.push(reply)
        if reply.startswith("421") and self.transport is not None:
            self.transport.close()  # 421 means the server is closing the channel

    async def smtp_MAIL(self, arg: str | None) -> None:
        self.fault = self.owner.faults.draw() if self.owner.faults else None
        if self.fault in ("421-mail", "451-mail"):
            return await self._fail(f"{self.fault[:3]} 4.3.2 try again later (injected)")
        await super().smtp_MAIL(arg)

    async def smtp_RCPT(self, arg: str | None) -> None:
        if self.fault in ("421-rcpt", "451-rcpt"):
            return await self._fail(f"{self.fault[:3]} 4.3.2 try again later (injected)")
        await super().smtp_RCPT(arg)

    async def smtp_DATA(self, arg: str) -> None:
        if self.fault in ("421-data", "451-data"):
            return await self._fail(f"{self.fault[:3]} 4.3.2 try again later (injected)")
        if self.fault == "drop-in-data" and self.transport is not None:
            await self.push("354 End data with <CR><LF>.<CR><LF>")
            await self._reader.readuntil(b"\r\n")  # the first line of the message, then the cut
            _abort(self)
            return None
        await super().smtp_DATA(arg)


class MailServer:
    """The server; ``async with MailServer(...) as server: server.port``.

    Args:
        mode: ``plain``, ``starttls`` (STARTTLS offered; required before MAIL) or ``tls``.
        cert: ``(certfile, keyfile)`` for starttls and tls.
        users: Logins AUTH accepts; when given, AUTH is required before MAIL.
        refuse: Mailboxes (lower-case) answered with this RCPT reply, e.g. ``550 5.1.1 no such user``.
        faults: Transaction faults to inject.
        accept_then_drop: Accept this many messages, each time cutting the connection before the 250.
    """

    def __init__(self, *, mode: str = "plain", cert: tuple[str, str] | None = None,
                 users: dict[str, str] | None = None, refuse: dict[str, str] | None = None,
                 faults: SMTPFaults | None = None, accept_then_drop: int = 0, echo_login: bool = False) -> None:
        self.mode, self.users, self.refuse, self.faults = mode, users, refuse or {}, faults
        self.echo_login = echo_login
        """Misbehave: a failed AUTH is answered 535 quoting the login and password, plain and base64."""
        self.accept_then_drop = accept_then_drop
        self.received: list[Received] = []
        self.logins: list[str] = []
        self._tls: ssl.SSLContext | None = None
        if cert is not None:
            self._tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self._tls.load_cert_chain(*cert)
        self._server: asyncio.Server | None = None
        self.live: set[_Protocol] = set()
        self.connections = 0
        """How many connections were opened (a rejected message must open none)."""
        self.port = 0

    async def __aenter__(self) -> MailServer:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, "127.0.0.1", 0,
                                                ssl=self._tls if self.mode == "tls" else None)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        self.hang_up()
        await self._server.wait_closed()

    def hang_up(self) -> None:
        """Cut every open connection (as a server does to idle clients)."""
        for proto in list(self.live):
            _abort(proto)

    def _protocol(self) -> _Protocol:
        kwargs: dict[str, Any] = {"hostname": "mail.test", "loop": asyncio.get_running_loop()}
        if self.mode == "starttls":
            kwargs.update(tls_context=self._tls, require_starttls=True)
        if self.users is not None:
            # Over implicit TLS aiosmtpd does not see the TLS layer, so it must be told AUTH is safe.
            kwargs.update(authenticator=self._authenticate, auth_required=True,
                          auth_require_tls=self.mode != "tls")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "AUTH without TLS": it is TLS, aiosmtpd cannot tell
            proto = _Protocol(self, **kwargs)
        self.live.add(proto)
        self.connections += 1
        return proto

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        ok = self.users is not None and self.users.get(login) == password
        if ok:
            self.logins.append(login)
        elif self.echo_login:
            sent = base64.b64encode(f"\0{login}\0{password}".encode()).decode()
            return AuthResult(success=False, handled=False,
                              message=f"535 5.7.8 login {login} with password {password} ({sent}) rejected")
        return AuthResult(success=ok, handled=False)  # handled=False: aiosmtpd answers 535 itself

    # --- handler hooks (aiosmtpd calls these) ---------------------------------------------------------------

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return self.refuse[address.lower()]
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if isinstance(server, _Protocol) and server.fault == "451-after-data":
            return "451 4.3.0 message not accepted, try again later (injected)"
        raw = bytes(envelope.original_content or b"")
        message = BytesParser(policy=policy.default).parsebytes(raw)
        assert isinstance(message, EmailMessage)
        self.received.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), raw, message))
        if self.accept_then_drop:
            self.accept_then_drop -= 1
            _abort(server)  # accepted, and the 250 never leaves
        return "250 2.0.0 OK: queued"

    # --- what was delivered -------------------------------------------------------------------------------

    def by_recipient(self) -> Counter[str]:
        """Deliveries per recipient address (lower-case)."""
        return Counter(rcpt.lower() for r in self.received for rcpt in r.rcpt_tos)

    def by_message_id(self) -> Counter[str]:
        """Deliveries per Message-ID."""
        return Counter(str(r.message["Message-ID"]) for r in self.received)


def _abort(proto: SMTP) -> None:
    # abort, not close: a closed transport still flushes what is written next (the 250 we hold back).
    if isinstance(proto.transport, asyncio.Transport):
        proto.transport.abort()
