"""Header injection: every case of injection_corpus.json goes through the real builder and SMTPMailer
to a real SMTP server (aiosmtpd) on loopback. Each is either refused cleanly (a PermanentError
naming the field, no connection opened) or delivered with exactly the header lines csops writes,
every text reading back exactly as given, and the body intact; never an extra Bcc:, Reply-To: or
body. The same message as the outbox writes it (with the idempotency key header) is checked too."""

from __future__ import annotations

import json
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from connectors import mailbuild
from connectors.base import OutgoingEmail, PermanentError
from connectors.smtp import SMTPMailer
from tests.connectors.make_injection_corpus import generated
from tests.fakes.smtp import MailServer

CORPUS: list[dict[str, Any]] = json.loads((Path(__file__).parent / "injection_corpus.json").read_text(encoding="utf-8"))
BODY = "Hi Ann,\n.\nthe body, intact\n"
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "X-Csops-Category", "Content-Type",
           "Content-Transfer-Encoding", "MIME-Version"]
NAMED_FORMS = ("=?utf-8?b?DQo.?=Bcc: x@evil.example", "=??q?=0D=0A", "=?utf-8?q?Hi =0D=0A")


def arguments(case: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The OutgoingEmail fields and the idempotency key for a case."""
    fields: dict[str, Any] = {"to": ("ann@acme.test",), "sender": "cara@example.com", "sender_name": "Cara Núñez",
                              "subject": "Your renewal", "body": BODY}
    key = "pb:p:acme:once/mail"
    if case["field"] == "idempotency_key":
        key = case["value"]
    elif case["field"] == "to":
        fields["to"] = ("ann@acme.test", case["value"])
    else:
        fields[case["field"]] = case["value"]
    if case["field"].startswith("unsubscribe"):
        fields = {"category": "marketing", "unsubscribe_url": "https://csops.example/u/t",
                  "unsubscribe_mailto": "mailto:u@example.com", **fields}
    return fields, key


def header_names(raw: bytes) -> list[str]:
    """The header lines' names as they are on the wire (nothing decoded)."""
    return list(BytesParser(policy=policy.compat32).parsebytes(raw).keys())


@pytest.mark.parametrize("case", CORPUS, ids=[f"{i}-{c['field']}" for i, c in enumerate(CORPUS)])
async def test_injection_is_refused_or_delivered_exactly_as_written(case: dict[str, Any]) -> None:
    fields, key = arguments(case)
    message = OutgoingEmail(**fields)
    async with MailServer() as server:
        smtp = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10, message_id_domain="mail.example.com")
        refused: PermanentError | None = None
        try:
            await smtp.send(message, key)
        except PermanentError as exc:
            refused = exc
        finally:
            await smtp.close()
    if refused is not None:
        assert f"the {case['named']} " in str(refused), (case["why"], str(refused))
        assert server.connections == 0 and server.received == []
        return
    assert case.get("expect", "refused") == "either", f"delivered, but must be refused: {case['why']}"
    [got] = server.received
    assert (got.mail_from, got.rcpt_tos) == (message.sender, list(message.to))
    assert header_names(got.raw) == HEADERS
    read = got.message
    assert read["Subject"] == message.subject
    [sender] = read["From"].addresses
    assert sender.addr_spec == message.sender
    # Python keeps the space between two encoded words of a long display name (RFC 2047 drops it):
    # that space aside, the name reads back exactly.
    assert sender.display_name.split() == message.sender_name.split() or (
        len(message.sender_name.encode()) > 45 and "".join(sender.display_name.split()) == "".join(
            message.sender_name.split()))
    assert [a.addr_spec for a in read["To"].addresses] == list(message.to)
    assert read.get_content().replace("\r\n", "\n") == BODY
    # The outbox's copy adds the idempotency key header, which must read back as the key.
    outbox = mailbuild.build(message, key, key_header=True, require_unsubscribe=False)
    assert header_names(outbox.as_bytes()) == [*HEADERS[:6], "X-Csops-Idempotency-Key", *HEADERS[6:]]
    assert outbox.parsed()["X-Csops-Idempotency-Key"] == key


def test_corpus_is_big_varied_and_generated_afresh() -> None:
    assert [c for c in CORPUS if c.get("generated")] == generated()  # rerun make_injection_corpus after a change
    assert len(CORPUS) >= 200
    assert {c["field"] for c in CORPUS} == {"subject", "sender_name", "sender", "to", "category", "unsubscribe_url",
                                            "unsubscribe_mailto", "idempotency_key"}
    values = [c["value"] for c in CORPUS]
    for form in NAMED_FORMS:  # the three forms of issue 11
        assert any(v.startswith(form) for v in values if v), form
    for needle in ("\r\n", "\n", "\r", "\u0085", "\u2028", "\u2029", "\x00", "=0D=0A", "?b?", "\r\nBcc:",
                   "Reply-To:", "attacker body"):
        assert any(needle in v for v in values), needle


@pytest.mark.parametrize("form", NAMED_FORMS)
@pytest.mark.parametrize("field", ["subject", "sender_name"])
def test_the_named_forms_are_sent_as_text(form: str, field: str) -> None:
    value = next(c["value"] for c in CORPUS if c["value"].startswith(form) and c["field"] == field)
    fields, key = arguments({"field": field, "value": value})
    built = mailbuild.build(OutgoingEmail(**fields), key)
    assert header_names(built.as_bytes()) == HEADERS
    read = built.parsed()
    assert (read["Subject"] if field == "subject" else read["From"].addresses[0].display_name) == value
    assert b"Bcc" not in built.as_bytes() and b"=?utf-8?b?" in built.as_bytes()


@pytest.mark.parametrize("addr", ["=?utf-8?q?x?=@example.com", "=?utf-8?b?eA==?=@example.com", "a=?x?=b@example.com",
                                  "=??q??=@example.com"])
def test_an_encoded_word_address_is_refused_not_a_parser_defect(addr: str) -> None:
    with pytest.raises(PermanentError, match=r"the recipient .* is not a plain email address"):
        mailbuild.build(OutgoingEmail(to=(addr,), sender="cara@example.com", subject="s", body="b"), "k")


def test_the_guard_refuses_bytes_that_do_not_read_back(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever a future encoder does wrong, the read-back refuses it: here a fold that lets a
    decoded line break through (as the email package did before CVE-2024-6923 was fixed)."""
    monkeypatch.setattr(mailbuild, "unstructured", lambda text: [text + "\r\nBcc: x@evil.example"])
    with pytest.raises(PermanentError, match="csops refused to send this email: its header lines read back as"):
        mailbuild.build(OutgoingEmail(to=("a@b.example",), sender="c@d.example", subject="hello", body="b"), "k")


async def test_a_refused_address_is_a_non_retryable_step_failure(tmp_path: Path) -> None:
    """The activity boundary turns the refusal into a failure Temporal does not retry (not an
    InvalidHeaderDefect retried for an hour), whichever mailer builds the message."""
    from temporalio.exceptions import ApplicationError

    from connectors.outbox import EmailOutbox
    from engine.runtime.activities import _call

    message = OutgoingEmail(to=("=?utf-8?q?x?=@example.com",), sender="cara@example.com", subject="s", body="b")
    async with MailServer() as server:
        smtp = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10)
        for mailer in (smtp, EmailOutbox(tmp_path)):
            with pytest.raises(ApplicationError) as info:
                await _call(lambda m=mailer: m.send(message, "pb:p:acme:once/mail"))  # type: ignore[misc]
            assert info.value.non_retryable and info.value.type == "PermanentError"
            assert "is not a plain email address" in str(info.value)
        await smtp.close()
    assert server.connections == 0 and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("text", ["", "Plain words", " leading space", "trailing space ", "two  spaces", "x" * 300,
                                  "word " * 120, "é" * 100, "Grüße =?utf-8?q?x?= mixed", 'say "hi" \\ there',
                                  "日本語の件名" * 20, "a?=b =?c", "emoji 🎉 and more"])
def test_any_harmless_text_reads_back_exactly(text: str) -> None:
    built = mailbuild.build(OutgoingEmail(to=("ann@acme.test",), sender="c@example.com", sender_name=text.strip()[:80],
                                          subject=text, body="b"), "pb:p:acme:once/mail")
    raw = built.as_bytes()
    assert header_names(raw) == HEADERS and raw.isascii()
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    read = built.parsed()
    assert read["Subject"] == text
    assert "".join(read["From"].addresses[0].display_name.split()) == "".join(text.strip()[:80].split())
