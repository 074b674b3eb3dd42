"""Mail policy: the suppression list and marketing log (SQLite and PostgreSQL), signed unsubscribe
links and RFC 8058 headers, and PolicyMailer in front of a real SMTP server counting deliveries."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from connectors.base import OutgoingEmail, PermanentError
from connectors.mailpolicy import CAPPED, SUPPRESSED, PolicyMailer, Unsubscribe
from connectors.outbox import EmailOutbox
from connectors.smtp import SMTPMailer
from connectors.suppression import SuppressionList
from tests.fakes.smtp import MailServer

SECRET = "0123456789abcdef-test-secret"
URL = "https://csops.example.com/unsubscribe/{token}"


@pytest.fixture
def suppressions(db_url: str) -> Iterator[SuppressionList]:
    lst = SuppressionList(db_url)
    yield lst
    lst.close()


@pytest.fixture
async def server() -> AsyncIterator[MailServer]:
    async with MailServer(refuse={"gone@acme.test": "550 5.1.1 no such user"}) as srv:
        yield srv


@pytest.fixture
async def smtp(server: MailServer) -> AsyncIterator[SMTPMailer]:
    mailer = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10, message_id_domain="example.com")
    yield mailer
    await mailer.close()


def unsubscribe() -> Unsubscribe:
    return Unsubscribe(URL, "unsubscribe@example.com", SECRET)


def email(to: str = "ann@acme.test", category: str = "operational") -> OutgoingEmail:
    return OutgoingEmail(to=(to,), sender="cara@example.com", sender_name="Cara", subject="News",
                         body="Hello.\n", category=category)


# --- unsubscribe links -------------------------------------------------------------------------------------


def test_token_round_trip_and_links() -> None:
    unsub = unsubscribe()
    url, mailto = unsub.link_for("Bob@X.com")
    token = unsub.token("bob@x.com")
    assert url == f"https://csops.example.com/unsubscribe/{token}"
    assert mailto == f"mailto:unsubscribe@example.com?subject=unsubscribe%20{token}"
    assert unsub.verify(token) == "bob@x.com"
    payload, mac = token.split(".")
    assert payload == "Ym9iQHguY29t" and len(mac) == 22  # base64url("bob@x.com"), 128-bit MAC
    assert Unsubscribe(URL, "", SECRET).link_for("bob@x.com") == (url, "")


def test_tampered_tokens_are_rejected() -> None:
    unsub = unsubscribe()
    token = unsub.token("bob@x.com")
    payload, mac = token.split(".")
    other_payload = unsub.token("eve@x.com").split(".")[0]
    flipped = mac[:-1] + ("A" if mac[-1] != "A" else "B")
    for bad in (f"{other_payload}.{mac}", f"{payload}.{flipped}", f"{payload}.{mac[:-2]}", payload, f".{mac}",
                f"{payload}.", "", "not a token", "%%%.###", Unsubscribe(URL, "", SECRET + "x").token("bob@x.com")):
        assert unsub.verify(bad) is None, bad


def test_unsubscribe_config_is_checked_and_secret_hidden() -> None:
    assert SECRET not in repr(unsubscribe()) and "secret='***'" in repr(unsubscribe())
    with pytest.raises(ValueError, match="https"):
        Unsubscribe("http://csops.example.com/u/{token}", "", SECRET)
    with pytest.raises(ValueError, match="token"):
        Unsubscribe("https://csops.example.com/u", "", SECRET)
    with pytest.raises(ValueError, match="CSOPS_UNSUBSCRIBE_SECRET"):
        Unsubscribe(URL, "", "short")
    with pytest.raises(ValueError, match="mailto"):
        Unsubscribe(URL, "not an address", SECRET)


async def test_marketing_mail_carries_rfc8058_headers(server: MailServer, smtp: SMTPMailer,
                                                      suppressions: SuppressionList) -> None:
    mailer = PolicyMailer(smtp, suppressions=suppressions, unsubscribe=unsubscribe())
    await mailer.send(email("Ann@Acme.test", category="marketing"), "k/mkt")
    await mailer.send(email(), "k/ops")
    marketing, operational = (r.message for r in server.received)
    url, mailto = unsubscribe().link_for("ann@acme.test")
    assert marketing["List-Unsubscribe"] == f"<{url}>, <{mailto}>"
    assert marketing["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert b"=?" not in server.received[0].raw.split(b"\r\n\r\n")[0]  # headers: no encoded words
    body = marketing.get_content().replace("\r\n", "\n")
    assert body == f"Hello.\n\n--\nTo stop receiving these emails, unsubscribe here: {url}\n"
    assert unsubscribe().verify(url.rsplit("/", 1)[1]) == "ann@acme.test"
    assert operational["List-Unsubscribe"] is None and operational["List-Unsubscribe-Post"] is None
    assert operational.get_content().replace("\r\n", "\n") == "Hello.\n"


async def test_marketing_without_unsubscribe_is_refused_by_smtp(server: MailServer, smtp: SMTPMailer,
                                                                suppressions: SuppressionList,
                                                                tmp_path: Path) -> None:
    mailer = PolicyMailer(smtp, suppressions=suppressions, marketing_cap=1)
    with pytest.raises(PermanentError, match=r"configure email\.unsubscribe"):
        await mailer.send(email(category="marketing"), "k/mkt")
    assert server.connections == 0
    # The refusal did not use up the cap; the outbox (a fresh machine's demo) keeps such mail.
    outbox = PolicyMailer(EmailOutbox(tmp_path / "mail"), suppressions=suppressions, marketing_cap=1)
    assert await outbox.send(email(category="marketing"), "k/mkt") == EmailOutbox.message_id("k/mkt")
    with pytest.raises(PermanentError, match="one recipient per message"):
        await outbox.send(OutgoingEmail(to=("a@acme.test", "b@acme.test"), sender="cara@example.com", subject="s",
                                        body="b", category="marketing"), "k/two")


# --- the suppression list ----------------------------------------------------------------------------------


async def test_suppression_list(suppressions: SuppressionList) -> None:
    await suppressions.add(" Bob@X.com ", "unsubscribed")
    await suppressions.add("bob@x.com", "bounced")  # the first reason stands
    await suppressions.add("carol@y.com")
    assert await suppressions.contains("BOB@x.COM") and await suppressions.contains("carol@y.com")
    assert not await suppressions.contains("ann@acme.test")
    assert [(s.email, s.reason) for s in await suppressions.list()] == [("bob@x.com", "unsubscribed"),
                                                                         ("carol@y.com", "")]
    assert (await suppressions.list())[0].created_at.tzinfo is not None
    assert await suppressions.remove("BOB@X.COM") and not await suppressions.remove("bob@x.com")
    assert not await suppressions.contains("bob@x.com")
    with pytest.raises(ValueError):
        await suppressions.add("nobody")


async def test_suppressed_addresses_get_nothing_in_1000_sends(server: MailServer, smtp: SMTPMailer,
                                                              suppressions: SuppressionList) -> None:
    await suppressions.add("bob@x.com", "unsubscribed")
    await suppressions.add("CAROL@Y.COM", "bounced")
    await suppressions.add("dave@z.org", "complaint")
    suppressed = ["Bob@X.com", "bob@x.com", "BOB@X.COM", "carol@y.com", "Carol@Y.com", "dave@z.org"]
    allowed = [f"user{i}@acme.test" for i in range(10)] + ["Mixed.Case@Acme.test"]
    rng = random.Random(7)
    attempts = [(rng.choice(suppressed + allowed), rng.choice(["operational", "marketing"])) for _ in range(1000)]
    mailer = PolicyMailer(smtp, suppressions=suppressions, unsubscribe=unsubscribe())
    limit = asyncio.Semaphore(8)

    async def attempt(i: int, to: str, category: str) -> str:
        async with limit:
            return await mailer.send(email(to, category), f"pb:news:acct:{i}/mail")

    results = await asyncio.gather(*(attempt(i, to, cat) for i, (to, cat) in enumerate(attempts)))
    expected = Counter(to.lower() for to, _ in attempts if to in allowed)
    assert sum(expected.values()) > 500 and len(attempts) - sum(expected.values()) > 300
    assert server.by_recipient() == expected  # the suppressed got 0, each other address exactly its count
    assert len(server.received) == sum(expected.values())
    assert [r == SUPPRESSED for r in results] == [to not in allowed for to, _ in attempts]
    assert len(server.by_message_id()) == len(server.received)  # one Message-ID per key


async def test_suppressed_recipients_are_dropped_from_a_shared_message(server: MailServer, smtp: SMTPMailer,
                                                                       suppressions: SuppressionList) -> None:
    await suppressions.add("bob@x.com")
    mailer = PolicyMailer(smtp, suppressions=suppressions)
    message = OutgoingEmail(to=("ann@acme.test", "Bob@X.com"), sender="cara@example.com", subject="s", body="b")
    await mailer.send(message, "k/shared")
    assert [r.rcpt_tos for r in server.received] == [["ann@acme.test"]]
    assert [a.addr_spec for a in server.received[0].message["To"].addresses] == ["ann@acme.test"]


# --- the marketing cap -------------------------------------------------------------------------------------


async def test_cap_counts_marketing_only_and_a_repeated_key_once(tmp_path: Path,
                                                                 suppressions: SuppressionList) -> None:
    outbox = EmailOutbox(tmp_path / "mail")  # dedupes by key, as the ledger would in a run
    mailer = PolicyMailer(outbox, suppressions=suppressions, unsubscribe=unsubscribe(), marketing_cap=2)
    results = [await mailer.send(email(category="marketing"), key) for key in ("m1", "m1", "m2", "m1", "m3", "m4")]
    assert results[:4] == [EmailOutbox.message_id("m1")] * 2 + [EmailOutbox.message_id("m2"),
                                                                  EmailOutbox.message_id("m1")]
    assert results[4:] == [CAPPED, CAPPED]
    assert await mailer.send(email(category="operational"), "o1") == EmailOutbox.message_id("o1")
    assert await mailer.send(email("Other@Acme.test", category="marketing"), "m5") == EmailOutbox.message_id("m5")
    assert await suppressions.marketing_count("ANN@acme.test", since=datetime.now(UTC) - timedelta(days=7)) == 2
    assert len(outbox.messages()) == 4


async def test_cap_holds_under_concurrency(server: MailServer, smtp: SMTPMailer,
                                           suppressions: SuppressionList) -> None:
    mailer = PolicyMailer(smtp, suppressions=suppressions, unsubscribe=unsubscribe(), marketing_cap=3)
    results = await asyncio.gather(*(mailer.send(email(category="marketing"), f"m/{i}") for i in range(30)))
    assert Counter(r == CAPPED for r in results) == {True: 27, False: 3}
    assert server.by_recipient() == {"ann@acme.test": 3}
    assert await suppressions.marketing_count("ann@acme.test", since=datetime.now(UTC) - timedelta(days=1)) == 3


async def test_cap_window_and_release(suppressions: SuppressionList) -> None:
    now, week = datetime.now(UTC), timedelta(days=7)
    assert await suppressions.reserve_marketing("ann@acme.test", "old", cap=1, window=week, now=now - timedelta(days=8))
    assert await suppressions.reserve_marketing("ann@acme.test", "new", cap=1, window=week, now=now)  # old is outside
    assert not await suppressions.reserve_marketing("Ann@Acme.test", "newer", cap=1, window=week, now=now)
    assert await suppressions.reserve_marketing("ann@acme.test", "new", cap=1, window=week, now=now)  # same key
    await suppressions.release_marketing("new")
    assert await suppressions.reserve_marketing("ann@acme.test", "newer", cap=1, window=week, now=now)


async def test_a_send_that_fails_for_good_is_not_counted(server: MailServer, smtp: SMTPMailer,
                                                         suppressions: SuppressionList) -> None:
    mailer = PolicyMailer(smtp, suppressions=suppressions, unsubscribe=unsubscribe(), marketing_cap=1)
    with pytest.raises(PermanentError, match="550"):
        await mailer.send(email("gone@acme.test", category="marketing"), "m/gone")
    assert await suppressions.marketing_count("gone@acme.test", since=datetime.now(UTC) - timedelta(days=1)) == 0


async def test_policy_mailer_check_and_close(server: MailServer, suppressions: SuppressionList) -> None:
    inner = SMTPMailer("127.0.0.1", server.port, security="none", timeout=10)
    mailer = PolicyMailer(inner, suppressions=suppressions, marketing_cap=2)
    assert await mailer.check() == []
    await mailer.close()
    assert "marketing_cap=2" in repr(mailer)
