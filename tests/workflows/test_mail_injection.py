"""Header injection through account data, end to end: a playbook run renders CRM values into an
email sent by SMTPMailer to a real SMTP server on loopback.

An account name carrying the encoded-word forms of issue 11 arrives as literal text with exactly
csops's header lines; a contact whose address is an encoded word fails the step at once, not
retried (a PermanentError, never the email package's InvalidHeaderDefect retried for an hour).
"""

from __future__ import annotations

import dataclasses
from email import policy
from email.parser import BytesParser
from pathlib import Path

from temporalio.api.enums.v1 import EventType

from connectors.base import Contact
from connectors.smtp import SMTPMailer
from tests.fakes.smtp import MailServer
from tests.workflows.harness import stack

HELLO = """\
playbook: hello
title: Hello
triggers: [{manual: {}}]
steps:
  - id: hello
    email: {to: primary_contact, subject: "Hello {{ account.name }}", body: "Hi {{ contact.first_name }}."}
"""
NAMES = ["=?utf-8?b?DQo.?=Bcc: x@evil.example", "=??q?=0D=0ABcc: x@evil.example?=",
         "=?utf-8?q?a =0D=0AReply-To:_x@evil.example?="]
HEADERS = ["From", "To", "Subject", "Date", "Message-ID", "X-Csops-Category", "Content-Type",
           "Content-Transfer-Encoding", "MIME-Version"]


async def test_account_data_cannot_add_headers_and_a_bad_address_fails_once(tmp_path: Path) -> None:
    async with MailServer() as server:
        smtp = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10, message_id_domain="example.com")
        try:
            async with stack(tmp_path, mailer=smtp) as s:
                for i, name in enumerate(NAMES):
                    s.crm.add_account(dataclasses.replace(await s.crm_account_copy(f"evil-{i}"), name=name))
                    s.crm.add_contact(Contact(id=f"c-evil-{i}", account_id=f"evil-{i}", primary=True,
                                              email=f"pat{i}@acme.example", first_name="Pat"))
                s.crm.add_account(await s.crm_account_copy("badaddr"))
                s.crm.add_contact(Contact(id="c-bad", account_id="badaddr", primary=True,
                                          email="=?utf-8?q?pat=0D=0A?=@acme.example", first_name="Pat"))
                s.crm.add_contact(Contact(id="c-bad2", account_id="badaddr", role="billing",
                                          email="=?utf-8?q?x?=@acme.example", first_name="Bo"))
                outs = [await (await s.start(HELLO, account_id=f"evil-{i}")).result() for i in range(len(NAMES))]
                handle = await s.start(HELLO, account_id="badaddr")
                bad = await handle.result()
                events = (await handle.fetch_history()).events
        finally:
            await smtp.close()

    assert [o.outcome for o in outs] == ["completed"] * len(NAMES)
    assert len(server.received) == len(NAMES)
    for got, name in zip(server.received, NAMES, strict=True):
        assert list(BytesParser(policy=policy.compat32).parsebytes(got.raw).keys()) == HEADERS
        assert got.message["Subject"] == f"Hello {name}"  # literal text, nothing decoded
        assert got.message.get_content().replace("\r\n", "\n") == "Hi Pat.\n"
    assert bad.outcome == "failed" and bad.steps["hello"].status == "failed"
    assert "is not a plain email address" in bad.reason or "line break or control character" in bad.reason
    failed = [e for e in events if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED]
    assert len(failed) == 1  # not retried
    info = failed[0].activity_task_failed_event_attributes
    assert info.failure.application_failure_info.non_retryable
    assert info.failure.application_failure_info.type == "PermanentError"
