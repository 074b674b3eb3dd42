"""Email over SMTP: the standard library's smtplib, run on worker threads.

Each send is one SMTP transaction (MAIL, RCPT for every recipient, DATA) on a connection that is
set up (EHLO, STARTTLS or TLS, AUTH) once and kept for the next send while it stays healthy.
Replies map onto the connector errors: 4xx, dropped connections and timeouts are retryable; 5xx
(unknown mailbox, authentication failed) are permanent.

SMTP has no idempotency: if the connection drops after the server took the message but before its
"250 OK" reaches us, the retry sends it again. Such a copy has the same Message-ID (derived from
the idempotency key), which is what receivers and their spam filters use to drop duplicates.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import smtplib
import ssl
import threading

from connectors import mailbuild, redact
from connectors.base import ConnectorError, OutgoingEmail, PermanentError, RetryableError

__all__ = ["SMTPMailer"]

log = logging.getLogger(__name__)

SECURITY = ("starttls", "tls", "none")
_MAX_IDLE = 4


class SMTPMailer:
    """A ``Mailer`` that sends through an SMTP server (submission port 587 or 465, or a relay on 25).

    Args:
        host: The server's host name (also what its TLS certificate is checked against).
        port: 587 for STARTTLS, 465 for TLS from the first byte, 25 for a relay.
        username: Login for AUTH; empty to send without authenticating.
        password: Its password (from SMTP_PASSWORD); never logged or shown.
        security: ``starttls`` (plain connection upgraded to TLS before AUTH; refused if the server
            does not offer it), ``tls`` (TLS from the first byte) or ``none`` (no encryption: a
            relay on a trusted network only).
        timeout: Seconds to wait for the server at each step.
        ssl_context: The TLS settings; the system's trusted certificates by default.
        message_id_domain: The domain in Message-IDs and in the EHLO greeting: your sending domain.

    Raises:
        ValueError: an unknown ``security``.
    """

    def __init__(self, host: str, port: int, *, username: str = "", password: str = "", security: str = "starttls",
                 timeout: float = 30.0, ssl_context: ssl.SSLContext | None = None,
                 message_id_domain: str = "csops.local") -> None:
        if security not in SECURITY:
            raise ValueError(f"email security must be one of {', '.join(SECURITY)}, not {security!r}")
        self.host, self.port, self.username, self.security = host, port, username, security
        self.timeout = timeout
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.message_id_domain = message_id_domain
        self._password = password
        redact.register(password)
        self._idle: list[smtplib.SMTP] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        secret = "'***'" if self._password else "''"
        return (f"SMTPMailer(host={self.host!r}, port={self.port}, username={self.username!r}, password={secret}, "
                f"security={self.security!r})")

    @property
    def where(self) -> str:
        """``host:port``, for messages."""
        return f"{self.host}:{self.port}"

    async def send(self, message: OutgoingEmail, idempotency_key: str) -> str:
        """Send one message; return its Message-ID (the same for every send with this key).

        Raises:
            PermanentError: a header that could inject headers, a bad address, a 5xx reply (unknown
                mailbox, authentication failed), an untrusted certificate, no STARTTLS.
            RetryableError: a 4xx reply, a connection that failed or dropped, a timeout.
        """
        built = mailbuild.build(message, idempotency_key, domain=self.message_id_domain)  # before any I/O
        recipients = [mailbuild.check_address("recipient", to) for to in message.to]
        sender = mailbuild.check_address("sender", message.sender)
        await asyncio.to_thread(self._send, sender, recipients, built.as_bytes())
        return str(built["Message-ID"])

    async def check(self) -> list[str]:
        """Connect, EHLO, STARTTLS and AUTH as a send would; the problems in plain words ([] if fine)."""
        try:
            smtp = await asyncio.to_thread(self._connect)
        except ConnectorError as exc:
            return [str(exc)]
        await asyncio.to_thread(_quit, smtp)
        return []

    async def close(self) -> None:
        """Say QUIT on the kept connections."""
        with self._lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for smtp in idle:
            await asyncio.to_thread(_quit, smtp)

    # --- on worker threads ------------------------------------------------------------------------------

    def _send(self, sender: str, recipients: list[str], data: bytes) -> None:
        smtp = self._take()
        try:
            self._reply("MAIL FROM", *smtp.mail(sender))
            for rcpt in recipients:
                # Any refused recipient stops the transaction before DATA: nobody gets a partial send.
                self._reply(f"RCPT TO <{rcpt}>", *smtp.rcpt(rcpt))
            self._reply("end of DATA", *smtp.data(data))
        except (smtplib.SMTPException, OSError) as exc:
            smtp.close()  # state unknown after a failure: never reuse this connection
            raise self._error(exc, "sending") from exc
        except BaseException:
            smtp.close()
            raise
        with self._lock:
            if self._closed or len(self._idle) >= _MAX_IDLE:
                keep = False
            else:
                self._idle.append(smtp)
                keep = True
        if not keep:
            _quit(smtp)

    def _take(self) -> smtplib.SMTP:
        while True:
            with self._lock:
                smtp = self._idle.pop() if self._idle else None
            if smtp is None:
                return self._connect()
            try:
                # The server may have closed an idle connection; finding out costs one NOOP, and
                # nothing of the message has been sent yet, so a fresh connection is safe.
                if smtp.noop()[0] == 250:
                    return smtp
            except (smtplib.SMTPException, OSError):
                pass
            smtp.close()

    def _connect(self) -> smtplib.SMTP:
        """A connection ready for MAIL FROM: greeted, encrypted as configured, logged in."""
        smtp: smtplib.SMTP | None = None
        try:
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(self.host, self.port, local_hostname=self.message_id_domain,
                                        timeout=self.timeout, context=self.ssl_context)
            else:
                smtp = smtplib.SMTP(self.host, self.port, local_hostname=self.message_id_domain, timeout=self.timeout)
            self._reply("EHLO", *smtp.ehlo())
            if self.security == "starttls":
                if not smtp.has_extn("starttls"):
                    raise PermanentError(
                        f"the SMTP server at {self.where} does not offer STARTTLS, so the password and mail "
                        "would go unencrypted: set email.security to tls if the server expects TLS from the first "
                        "byte (usually port 465), or ask its admin to enable STARTTLS")
                self._reply("STARTTLS", *smtp.starttls(context=self.ssl_context))
                self._reply("EHLO", *smtp.ehlo())
            if self.username:
                if not smtp.has_extn("auth"):
                    raise PermanentError(
                        f"the SMTP server at {self.where} does not offer AUTH, but email.username is set: "
                        "remove the username to send without logging in, or check host, port and security")
                smtp.login(self.username, self._password)
            return smtp
        except (smtplib.SMTPException, OSError) as exc:
            if smtp is not None:
                smtp.close()
            raise self._error(exc, "connecting") from exc
        except BaseException:
            if smtp is not None:
                smtp.close()
            raise

    def _reply(self, step: str, code: int, text: bytes) -> None:
        """Raise unless ``code`` is a success (2xx, or 3xx where the protocol goes on)."""
        if 200 <= code < 400:
            return
        raise self._from_reply(step, code, text)

    def _from_reply(self, step: str, code: int, text: bytes | str) -> ConnectorError:
        said = self._scrub(text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text))
        detail = f"{code} {said}"
        if code in (530, 535, 534, 538):
            return PermanentError(
                f"the SMTP server at {self.where} rejected the login ({detail}): check email.username and the "
                "password in SMTP_PASSWORD (some providers want an app password)", detail=detail)
        if 400 <= code < 500:
            return RetryableError(f"the SMTP server at {self.where} answered {step} with {detail}; trying again later",
                                  detail=detail)
        return PermanentError(f"the SMTP server at {self.where} refused {step}: {detail}", detail=detail)

    def _error(self, exc: OSError, doing: str) -> ConnectorError:
        """A plain-words connector error for whatever smtplib or the socket raised."""
        if isinstance(exc, smtplib.SMTPAuthenticationError | smtplib.SMTPResponseException):
            step = {smtplib.SMTPAuthenticationError: "AUTH", smtplib.SMTPDataError: "DATA",
                    smtplib.SMTPSenderRefused: "MAIL FROM", smtplib.SMTPHeloError: "EHLO",
                    smtplib.SMTPConnectError: "the greeting"}.get(type(exc), doing)
            return self._from_reply(step, exc.smtp_code, exc.smtp_error)
        if isinstance(exc, smtplib.SMTPServerDisconnected):
            return RetryableError(f"the SMTP server at {self.where} closed the connection while {doing}; "
                                  "trying again later", detail=self._scrub(str(exc)))
        if isinstance(exc, smtplib.SMTPException):  # e.g. "No suitable authentication method found."
            return PermanentError(f"the SMTP server at {self.where} cannot do what csops needs: "
                                  f"{self._scrub(str(exc))}", detail=self._scrub(str(exc)))
        if isinstance(exc, ssl.SSLCertVerificationError):
            return PermanentError(
                f"TLS with the SMTP server at {self.where} failed: its certificate is not trusted "
                f"({exc.verify_message}); check email.host matches the certificate's name, or give the "
                "certificate's CA to this machine", detail=str(exc))
        if isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError | ssl.SSLZeroReturnError):
            return PermanentError(
                f"TLS with the SMTP server at {self.where} failed ({exc.reason or exc}): check email.security "
                "(starttls for port 587, tls for port 465) and email.port", detail=str(exc))
        if isinstance(exc, TimeoutError):
            return RetryableError(f"the SMTP server at {self.where} did not answer within {self.timeout:g} s "
                                  f"while {doing}; trying again later", detail=str(exc))
        if doing == "connecting" and not isinstance(exc, ssl.SSLError):
            return RetryableError(
                f"cannot connect to the SMTP server at {self.where} ({exc.strerror or exc}): check email.host and "
                "email.port, and that the server is up and reachable from here", detail=str(exc))
        return RetryableError(f"the connection to the SMTP server at {self.where} failed while {doing} ({exc}); "
                              "trying again later", detail=self._scrub(str(exc)))

    def _scrub(self, text: str) -> str:
        """``text`` without any registered secret (connectors.redact), and without the password as
        given or in the base64 that AUTH sends even when it is too short to register."""
        text = redact.redact(text)
        if not self._password:
            return text
        forms = [self._password, base64.b64encode(self._password.encode()).decode(),
                 base64.b64encode(f"\0{self.username}\0{self._password}".encode()).decode()]
        for form in forms:
            text = text.replace(form, redact.REDACTED)
        return text


def _quit(smtp: smtplib.SMTP) -> None:
    try:
        smtp.quit()
    except (smtplib.SMTPException, OSError):
        smtp.close()
