"""200 playbook emails through SMTPMailer to a real SMTP server that fails 30% of transactions.

The faults are transient 421/451 replies at MAIL, RCPT and DATA, a 451 after the whole message
was received, and the connection cut in the middle of DATA: none of them is an accepted message,
so the activity's retries must end with every email delivered exactly once, counted on the
server both by Message-ID and raw. (A cut after the server accepted the message cannot be
deduplicated by any SMTP client; tests/connectors/test_smtp.py shows that case yields a second
copy with the same Message-ID, which receivers use to drop it.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

from connectors.base import Contact
from connectors.smtp import SMTPMailer
from tests.fakes.smtp import FAULT_KINDS, MailServer, SMTPFaults
from tests.workflows.harness import stack

ACCOUNTS, OCCURRENCES = 40, 5
HELLO = """\
playbook: hello
title: Hello
triggers: [{manual: {}}]
steps:
  - id: hello
    email: {to: primary_contact, subject: "Hello {{ account.name }}", body: "Hi {{ contact.first_name }}."}
"""


async def test_200_emails_through_30_percent_faults_arrive_exactly_once(tmp_path: Path) -> None:
    faults = SMTPFaults(rate=0.3, seed=4)
    async with MailServer(faults=faults) as server:
        smtp = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10, message_id_domain="example.com")
        try:
            async with stack(tmp_path, mailer=smtp) as s:
                accounts = [f"acct-{i:02}" for i in range(ACCOUNTS)]
                for account in accounts:
                    s.crm.add_account(await s.crm_account_copy(account))
                    s.crm.add_contact(Contact(id=f"c-{account}", account_id=account, primary=True,
                                              email=f"pat+{account}@acme.example", first_name="Pat"))
                handles = [await s.start(HELLO, account_id=account, occurrence=f"o{n}")
                           for account in accounts for n in range(OCCURRENCES)]
                # Retries wait real seconds (1 s, 2 s, ...): auto time-skipping with this many runs can hang.
                with s.env.auto_time_skipping_disabled():
                    outs = await asyncio.gather(*(h.result() for h in handles))
        finally:
            await smtp.close()

    assert Counter(o.outcome for o in outs) == {"completed": 200}
    sent = [mid for o in outs for mid in o.steps["hello"].result]
    assert len(sent) == len(set(sent)) == 200
    assert len(server.received) == 200  # raw count: no duplicate, no loss
    assert server.by_message_id() == dict.fromkeys(sent, 1)  # each run's Message-ID arrived exactly once
    assert server.by_recipient() == {f"pat+{a}@acme.example": OCCURRENCES for a in accounts}
    subjects = Counter(str(r.message["Subject"]) for r in server.received)
    assert subjects == {f"Hello {a.title()}": OCCURRENCES for a in accounts}
    # The faults really happened, every kind of them, at about the rate asked for.
    assert set(faults.injected) == set(FAULT_KINDS)
    total = sum(faults.injected.values())
    assert 60 <= total <= 120, faults.injected
