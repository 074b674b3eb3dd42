"""SMTPMailer against a real SMTP server (aiosmtpd) on loopback: STARTTLS and TLS with a certificate
made for the test, AUTH, every message parsed back, replies mapped to errors (the injection corpus is in
test_injection.py)."""

from __future__ import annotations

import logging
import socket
import ssl
from collections.abc import AsyncIterator

import pytest

from connectors import mailbuild
from connectors.base import Mailer, OutgoingEmail, PermanentError, RetryableError
from connectors.smtp import SMTPMailer
from tests.fakes.smtp import FAULT_KINDS, MailServer, SMTPFaults

PASSWORD = "s3cret-Pa55word!"
USERS = {"csops": PASSWORD}


@pytest.fixture
def trust(cert: tuple[str, str]) -> ssl.SSLContext:
    """A client context that trusts the test certificate (and nothing else)."""
    return ssl.create_default_context(cafile=cert[0])


@pytest.fixture
async def starttls(cert: tuple[str, str]) -> AsyncIterator[MailServer]:
    async with MailServer(mode="starttls", cert=cert, users=USERS,
                          refuse={"nobody@acme.test": "550 5.1.1 <nobody@acme.test>: no such user"}) as server:
        yield server


def email(**kw: object) -> OutgoingEmail:
    fields: dict[str, object] = {"to": ("ann@acme.test",), "sender": "cara@example.com", "sender_name": "Cara Núñez",
                                 "subject": "Ihre Verlängerung – nächste Schritte ✓",
                                 "body": "Hi Ann,\n.\n..a line that starts with a dot\nGrüße\n"}
    return OutgoingEmail(**{**fields, **kw})  # type: ignore[arg-type]


def mailer(server: MailServer, trust: ssl.SSLContext | None = None, **kw: object) -> SMTPMailer:
    args: dict[str, object] = {"username": "csops", "password": PASSWORD, "security": server.mode, "ssl_context": trust,
                               "timeout": 10.0, "message_id_domain": "mail.example.com"}
    if server.mode == "plain":
        args.update(security="none", username="", password="")
    return SMTPMailer("127.0.0.1", server.port, **{**args, **kw})  # type: ignore[arg-type]


async def test_starttls_send_is_received_whole(starttls: MailServer, trust: ssl.SSLContext) -> None:
    smtp: Mailer = mailer(starttls, trust)
    assert isinstance(smtp, SMTPMailer)
    try:
        message_id = await smtp.send(email(to=("ann@acme.test", "Zed@Acme.test")), "pb:renewal:acme:2026/welcome")
    finally:
        await smtp.close()
    assert message_id == mailbuild.message_id("pb:renewal:acme:2026/welcome", "mail.example.com")
    [got] = starttls.received
    assert starttls.logins == ["csops"]
    assert (got.mail_from, got.rcpt_tos) == ("cara@example.com", ["ann@acme.test", "Zed@Acme.test"])
    msg = got.message
    assert msg["Message-ID"] == message_id
    assert msg["From"].addresses[0].display_name == "Cara Núñez"
    assert msg["From"].addresses[0].addr_spec == "cara@example.com"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@acme.test", "Zed@Acme.test"]
    assert msg["Subject"] == "Ihre Verlängerung – nächste Schritte ✓"
    assert msg["Date"].datetime is not None
    assert msg["X-Csops-Category"] == "operational"
    assert msg["X-Csops-Idempotency-Key"] is None  # workflow ids stay out of customers' mailboxes
    assert msg["List-Unsubscribe"] is None
    assert msg.get_content().replace("\r\n", "\n") == "Hi Ann,\n.\n..a line that starts with a dot\nGrüße\n"
    assert got.raw.isascii()  # 7-bit on the wire: no 8BITMIME needed


async def test_implicit_tls_with_auth(cert: tuple[str, str], trust: ssl.SSLContext) -> None:
    async with MailServer(mode="tls", cert=cert, users=USERS) as server:
        smtp = mailer(server, trust)
        try:
            assert await smtp.check() == []
            await smtp.send(email(), "k/tls")
        finally:
            await smtp.close()
    assert server.logins == ["csops", "csops"]
    assert [r.message["Subject"] for r in server.received] == ["Ihre Verlängerung – nächste Schritte ✓"]


async def test_connection_is_reused_and_replaced_when_the_server_hung_up(starttls: MailServer,
                                                                         trust: ssl.SSLContext) -> None:
    smtp = mailer(starttls, trust)
    try:
        for i in range(3):
            await smtp.send(email(), f"k/reuse-{i}")
        assert starttls.connections == 1
        starttls.hang_up()  # the server drops the idle connection
        await smtp.send(email(), "k/reuse-3")
    finally:
        await smtp.close()
    assert starttls.connections == 2
    assert len(starttls.received) == 4


async def test_message_id_is_stable_across_a_retry_and_duplicates_are_honest(starttls: MailServer,
                                                                            trust: ssl.SSLContext) -> None:
    """The accepted-then-dropped case: the retry delivers a second copy, with the same Message-ID."""
    starttls.accept_then_drop = 1
    first, second = mailer(starttls, trust), mailer(starttls, trust)
    try:
        with pytest.raises(RetryableError, match="closed the connection"):
            await first.send(email(), "pb:p:acme:once/mail")
        again = await second.send(email(), "pb:p:acme:once/mail")  # another worker retries
    finally:
        await first.close()
        await second.close()
    assert len(starttls.received) == 2
    assert starttls.by_message_id() == {again: 2}


@pytest.mark.parametrize("kind", FAULT_KINDS)
async def test_transient_replies_and_drops_are_retryable(kind: str) -> None:
    async with MailServer(faults=SMTPFaults(rate=1.0, kinds=(kind,))) as server:
        smtp = mailer(server)
        try:
            with pytest.raises(RetryableError) as info:
                await smtp.send(email(), "k/transient")
        finally:
            await smtp.close()
    assert server.received == []
    assert server.faults is not None and server.faults.injected == {kind: 1}
    if kind != "drop-in-data":
        assert info.value.detail.startswith(kind[:3])


async def test_unknown_mailbox_is_permanent_and_nobody_gets_a_partial_send(starttls: MailServer,
                                                                           trust: ssl.SSLContext) -> None:
    smtp = mailer(starttls, trust)
    try:
        with pytest.raises(PermanentError, match=r"550 5\.1\.1") as info:
            await smtp.send(email(to=("ann@acme.test", "nobody@acme.test")), "k/550")
        await smtp.send(email(), "k/after-550")  # the mailer is fine afterwards
    finally:
        await smtp.close()
    assert "RCPT TO <nobody@acme.test>" in str(info.value)
    assert [r.rcpt_tos for r in starttls.received] == [["ann@acme.test"]]


async def test_wrong_password_is_permanent_and_never_shown(starttls: MailServer, trust: ssl.SSLContext,
                                                           caplog: pytest.LogCaptureFixture,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ng-Pa55word-123"
    smtp = mailer(starttls, trust, password=wrong)
    try:
        [problem] = await smtp.check()
        with pytest.raises(PermanentError) as info:
            await smtp.send(email(), "k/auth")
    finally:
        await smtp.close()
    assert "rejected the login (535 5.7.8" in problem and "email.username" in problem
    assert str(info.value) == problem
    shown = " ".join([problem, info.value.detail, repr(smtp), caplog.text, *capsys.readouterr()])
    assert wrong not in shown and "***" in repr(smtp)
    assert starttls.received == [] and starttls.logins == []


async def test_check_passes_on_a_working_server(starttls: MailServer, trust: ssl.SSLContext) -> None:
    smtp = mailer(starttls, trust)
    assert await smtp.check() == []
    await smtp.close()
    assert starttls.logins == ["csops"]


async def test_check_names_a_server_without_starttls(trust: ssl.SSLContext) -> None:
    async with MailServer(mode="plain") as server:
        [problem] = await mailer(server, trust, security="starttls", username="csops", password=PASSWORD).check()
    assert "does not offer STARTTLS" in problem and "email.security" in problem


async def test_check_names_an_untrusted_certificate(starttls: MailServer) -> None:
    [problem] = await mailer(starttls, ssl.create_default_context()).check()  # system CAs only
    assert "certificate is not trusted" in problem and "self-signed" in problem


async def test_check_names_tls_spoken_to_a_plain_port(starttls: MailServer, trust: ssl.SSLContext) -> None:
    [problem] = await mailer(starttls, trust, security="tls").check()
    assert problem.startswith(f"TLS with the SMTP server at 127.0.0.1:{starttls.port} failed")
    assert "starttls for port 587, tls for port 465" in problem


async def test_check_names_a_server_that_is_not_there() -> None:
    with socket.socket() as sock:  # a port that was free a moment ago: nothing listens there
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    smtp = SMTPMailer("127.0.0.1", port, security="none", timeout=5)
    [problem] = await smtp.check()
    assert problem.startswith(f"cannot connect to the SMTP server at 127.0.0.1:{port} (Connection refused)")
    with pytest.raises(RetryableError):
        await smtp.send(email(), "k/down")


async def test_marketing_without_unsubscribe_link_is_refused(starttls: MailServer, trust: ssl.SSLContext) -> None:
    smtp = mailer(starttls, trust)
    with pytest.raises(PermanentError, match=r"configure email\.unsubscribe"):
        await smtp.send(email(category="marketing"), "k/mkt")
    assert starttls.connections == 0


def test_a_harmless_encoded_word_and_a_long_unsubscribe_line_pass() -> None:
    msg = mailbuild.build(email(subject="=?utf-8?q?caf=C3=A9?= news", category="marketing",
                                unsubscribe_url="https://csops.example/unsubscribe/" + "a" * 150,
                                unsubscribe_mailto="mailto:u@example.com?subject=unsubscribe%20" + "b" * 60),
                          "k/long")
    raw = msg.as_bytes()
    assert b"List-Unsubscribe: <https://csops.example/unsubscribe/" + b"a" * 150 + b">,\r\n <mailto:" in raw
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    # Text is text: an encoded word typed into a subject is sent as typed, never decoded by csops.
    assert msg.parsed()["Subject"] == "=?utf-8?q?caf=C3=A9?= news"


@pytest.mark.parametrize("subject", ["=?utf-8?q?caf=C3=A9?=", "=?utf-8?b?4pyTINCf0YDQuNCy0LXRgg==?=",
                                     "=?iso-8859-1?q?Gr=FC=DFe?=", "=?x-unknown?q?abc?=", "price =?=", "a=?b?c"])
def test_harmless_encoded_words_pass(subject: str) -> None:
    assert mailbuild.build(email(subject=subject), "k/ok").parsed()["Subject"] == subject


def test_repr_hides_the_password() -> None:
    smtp = SMTPMailer("smtp.example.com", 587, username="csops", password=PASSWORD)
    assert PASSWORD not in repr(smtp) and "password='***'" in repr(smtp)
    with pytest.raises(ValueError, match="starttls, tls, none"):
        SMTPMailer("smtp.example.com", 587, security="ssl")
