"""SlackChat against the loopback Slack fake: what reaches Slack, how failures are retried or
explained, that a lost answer never makes a second message, check(), and that the token stays secret."""

from __future__ import annotations

import dataclasses
import logging
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import ActivityEnvironment

from connectors.base import ChatMessage, ConnectorError, PermanentError, RetryableError
from connectors.slack import EVENT_TYPE, SCOPES, SlackChat
from tests.fakes.http import Faults
from tests.fakes.slack import ALL_SCOPES, FakeSlack, FaultScript

TOKEN = "xoxb-test-token"
READS = ("/api/conversations.", "/api/users.")
"""Path prefixes of the reads, exempted when a test aims its faults at chat.postMessage."""


@pytest.fixture
async def fake() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=TOKEN, channels={"cs-alerts": False, "cs-private": True}) as server:
        yield server


@pytest.fixture
async def chat(fake: FakeSlack) -> AsyncIterator[SlackChat]:
    slack = SlackChat(TOKEN, base_url=fake.base_url)
    yield slack
    await slack.close()


def to_channel(text: str = "Acme renews in 90 days", **kw: Any) -> ChatMessage:
    return ChatMessage(channel="cs-alerts", text=text, **kw)


def faults_on_posts(fake: FakeSlack, *plan: str | None) -> None:
    fake.exempt = READS
    fake.faults = FaultScript(plan=list(plan))


# --- what is sent --------------------------------------------------------------------------------

async def test_channel_post_carries_text_and_the_key(fake: FakeSlack, chat: SlackChat) -> None:
    ref = await chat.post(ChatMessage(channel="#cs-alerts", text="Acme renews"), "pb:r:acme:once/alert/0.0")
    [posted] = fake.posted
    assert ref == f"{posted.channel}:{posted.ts}" and posted.channel.startswith("C")
    assert (posted.text, posted.blocks) == ("Acme renews", [])
    assert posted.metadata == {"event_type": EVENT_TYPE, "event_payload": {"key": "pb:r:acme:once/alert/0.0"}}
    assert [args["channel"] for args in fake.called("chat.postMessage")] == ["cs-alerts"]
    assert fake.called("conversations.history") == []  # a first attempt does not look for duplicates


async def test_private_channel_post(fake: FakeSlack, chat: SlackChat) -> None:
    ref = await chat.post(ChatMessage(channel="cs-private", text="hi"), "k")
    assert ref.startswith("G") and len(fake.posted) == 1


async def test_dm_finds_the_person_by_email_once(fake: FakeSlack, chat: SlackChat) -> None:
    first = await chat.post(ChatMessage(user_email="Carl@example.com", text="one"), "k1")
    second = await chat.post(ChatMessage(user_email="carl@example.com", text="two"), "k2")
    assert [p.channel for p in fake.posted] == [first.split(":")[0]] * 2 and first.startswith("D")
    assert second != first
    assert [a["email"] for a in fake.called("users.lookupByEmail")] == ["Carl@example.com"]
    assert [a["users"] for a in fake.called("conversations.open")] == ["U00000CARL"]


async def test_blocks_pass_through_with_text_as_fallback(fake: FakeSlack, chat: SlackChat) -> None:
    blocks = ({"type": "section", "text": {"type": "mrkdwn", "text": "*Acme* is at risk"}}, {"type": "divider"})
    await chat.post(to_channel("Acme is at risk", blocks=blocks), "k")
    [posted] = fake.posted
    assert (posted.text, posted.blocks) == ("Acme is at risk", list(blocks))


# --- errors --------------------------------------------------------------------------------------

ERRORS = [
    (ChatMessage(channel="nope", text="x"), {}, "Slack said channel_not_found: #nope does not exist"),
    (ChatMessage(channel="quiet", text="x"), {}, "Slack said not_in_channel: the bot is not a member of #quiet: "
                                                 "invite it"),
    (ChatMessage(channel="old", text="x"), {}, "Slack said is_archived: #old is archived"),
    (to_channel("x" * 40_001), {}, "Slack said msg_too_long: the message is longer than Slack allows"),
    (to_channel(blocks=({"text": "no type"},)), {}, "Slack said invalid_blocks: Slack rejected the Block Kit"),
    (ChatMessage(user_email="nobody@example.com", text="x"), {},
     "Slack said users_not_found: no Slack user has the email nobody@example.com"),
    (ChatMessage(user_email="carl@example.com", text="x"), {"conversations.open": "user_disabled"},
     "Slack said user_disabled: the Slack account of carl@example.com is deactivated"),
    (to_channel(), {"chat.postMessage": "account_inactive"}, "the token is not valid (SLACK_BOT_TOKEN): Slack said "
                                                              "account_inactive"),
    (to_channel(), {"chat.postMessage": "token_revoked"}, "the token is not valid (SLACK_BOT_TOKEN): Slack said "
                                                           "token_revoked"),
    (to_channel(), {"chat.postMessage": "restricted_action"}, "the workspace does not let the bot post in #cs-alerts"),
    (to_channel(), {"chat.postMessage": "something_new"}, "Slack said something_new: see "
                                                           "https://api.slack.com/methods/chat.postMessage#errors"),
    (ChatMessage(channel="cs-alerts", user_email="carl@example.com", text="x"), {}, "exactly one of a channel"),
    (ChatMessage(text="x"), {}, "exactly one of a channel"),
    (to_channel(" "), {}, "needs text"),
]


@pytest.mark.parametrize(("message", "refusals", "expected"), ERRORS)
async def test_errors_say_what_to_do(fake: FakeSlack, chat: SlackChat, message: ChatMessage,
                                     refusals: dict[str, str], expected: str) -> None:
    fake.add_channel("quiet", member=False)
    fake.add_channel("old", archived=True)
    fake.refusals = refusals
    with pytest.raises(PermanentError) as caught:
        await chat.post(message, "k")
    assert expected in str(caught.value)
    assert fake.posted == []


async def test_bad_token_is_permanent_and_named(fake: FakeSlack) -> None:
    slack = SlackChat("xoxb-wrong", base_url=fake.base_url)
    try:
        with pytest.raises(PermanentError, match=r"^the token is not valid \(SLACK_BOT_TOKEN\): Slack said "
                                                 r"invalid_auth; copy the Bot User OAuth Token"):
            await slack.post(to_channel(), "k")
    finally:
        await slack.close()


async def test_missing_scope_names_the_scope(fake: FakeSlack, chat: SlackChat) -> None:
    fake.scopes = tuple(s for s in ALL_SCOPES if s != "chat:write")
    with pytest.raises(PermanentError) as caught:
        await chat.post(to_channel(), "k")
    assert str(caught.value) == ("Slack said missing_scope: the bot token needs chat:write (chat.postMessage); "
                                 "add it under OAuth & Permissions and reinstall the app")


# --- retries -------------------------------------------------------------------------------------

async def test_429_waits_for_retry_after_then_posts(fake: FakeSlack, chat: SlackChat) -> None:
    faults_on_posts(fake, "429")
    await chat.post(to_channel(), "k")
    [(_, throttled_at)] = fake.throttled
    [posted] = fake.posted
    assert posted.at - throttled_at >= 1.0  # the fake asked for Retry-After: 1
    assert fake.called("conversations.history") == []  # a 429 was not processed: nothing to look for


async def test_429_left_over_is_retryable_with_retry_after(fake: FakeSlack) -> None:
    slack = SlackChat(TOKEN, base_url=fake.base_url, max_retries=0)
    faults_on_posts(fake, "429")
    try:
        with pytest.raises(RetryableError) as caught:
            await slack.post(to_channel(), "k")
    finally:
        await slack.close()
    assert caught.value.retry_after == 1.0 and fake.posted == []


async def test_long_retry_after_goes_back_to_temporal(fake: FakeSlack, chat: SlackChat) -> None:
    fake.exempt = READS
    fake.faults = Faults(rate=1.0, kinds=("429",), retry_after=30)
    with pytest.raises(RetryableError) as caught:
        await chat.post(to_channel(), "k")
    assert caught.value.retry_after == 30.0
    assert len(fake.throttled) == 1  # not waited out in the worker


async def test_5xx_on_a_post_is_retried_after_looking_for_it(fake: FakeSlack, chat: SlackChat) -> None:
    faults_on_posts(fake, "5xx", "5xx")
    ref = await chat.post(to_channel(), "k")
    assert fake.faults.injected["5xx"] == 2
    assert [ref] == [f"{p.channel}:{p.ts}" for p in fake.posted]
    assert len(fake.called("conversations.history")) == 2  # before each new post
    assert len(fake.called("conversations.list")) == 1  # the channel's id, found once


async def test_5xx_on_reads_is_retried_by_the_sdk(fake: FakeSlack, chat: SlackChat) -> None:
    fake.faults = FaultScript(plan=["5xx", "5xx", None, "5xx"])  # lookupByEmail twice, then conversations.open
    await chat.post(ChatMessage(user_email="carl@example.com", text="x"), "k")
    assert len(fake.called("users.lookupByEmail")) == 1 and len(fake.called("conversations.open")) == 1
    assert [path for _, path in fake.requests].count("/api/users.lookupByEmail") == 3
    assert len(fake.posted) == 1


async def test_5xx_left_over_is_retryable(fake: FakeSlack) -> None:
    slack = SlackChat(TOKEN, base_url=fake.base_url, max_retries=1)
    faults_on_posts(fake, "5xx", "5xx")
    try:
        with pytest.raises(RetryableError, match=r"Slack failed on chat\.postMessage"):
            await slack.post(to_channel(), "k")
    finally:
        await slack.close()
    assert fake.posted == []


# --- exactly once --------------------------------------------------------------------------------

@pytest.mark.parametrize("message", [to_channel(), ChatMessage(user_email="carl@example.com", text="x")])
async def test_lost_answer_is_found_not_posted_again(fake: FakeSlack, chat: SlackChat, message: ChatMessage) -> None:
    faults_on_posts(fake, "drop_after")
    ref = await chat.post(message, "k")
    [posted] = fake.posted
    assert not posted.answered  # Slack posted it, and the answer never arrived
    assert ref == f"{posted.channel}:{posted.ts}"
    [history] = fake.called("conversations.history")
    assert history["channel"] == posted.channel and history["include_all_metadata"] in ("1", "true")
    assert float(history["oldest"]) <= float(posted.ts)


async def test_cut_before_processing_is_posted_again(fake: FakeSlack, chat: SlackChat) -> None:
    faults_on_posts(fake, "drop_before")
    await chat.post(to_channel(), "k")
    assert len(fake.posted) == 1 and len(fake.called("chat.postMessage")) == 1
    assert len(fake.called("conversations.history")) == 1


async def test_a_later_call_with_the_key_finds_the_lost_post(fake: FakeSlack) -> None:
    slack = SlackChat(TOKEN, base_url=fake.base_url, max_retries=0)
    faults_on_posts(fake, "drop_after")
    try:
        with pytest.raises(RetryableError, match="cannot reach Slack"):
            await slack.post(to_channel(), "k")
        ref = await slack.post(to_channel(), "k")  # what Temporal's next attempt does
        other = await slack.post(to_channel(), "k2")
    finally:
        await slack.close()
    assert fake.deliveries() == {"k": 1, "k2": 1}
    assert ref == f"{fake.posted[0].channel}:{fake.posted[0].ts}" and other != ref


async def test_an_activity_retry_in_another_worker_finds_the_lost_post(fake: FakeSlack, chat: SlackChat) -> None:
    faults_on_posts(fake, "drop_after")
    env = ActivityEnvironment()
    first, gone = datetime.now(UTC), SlackChat(TOKEN, base_url=fake.base_url, max_retries=0)
    try:
        with pytest.raises(RetryableError):
            await env.run(gone.post, to_channel(), "k")
    finally:
        await gone.close()
    # A fresh SlackChat, as in a worker that knows nothing of the first attempt but its number.
    env.info = dataclasses.replace(env.info, attempt=2, scheduled_time=first)
    ref = await env.run(chat.post, to_channel(), "k")
    assert fake.deliveries() == {"k": 1} and ref == f"{fake.posted[0].channel}:{fake.posted[0].ts}"
    env.info = dataclasses.replace(env.info, attempt=1, scheduled_time=first + timedelta(seconds=1))
    await env.run(chat.post, to_channel(), "k-new")
    assert len(fake.called("conversations.history")) == 1  # first attempts do not look


# --- check() -------------------------------------------------------------------------------------

async def test_check_passes_with_a_good_token(chat: SlackChat) -> None:
    assert await chat.check() == []


async def test_check_names_a_bad_token(fake: FakeSlack) -> None:
    slack = SlackChat("xoxb-revoked", base_url=fake.base_url)
    try:
        problems = await slack.check()
    finally:
        await slack.close()
    assert len(problems) == 1
    assert problems[0].startswith("the token is not valid (SLACK_BOT_TOKEN): Slack said invalid_auth")


async def test_check_lists_missing_scopes(fake: FakeSlack, chat: SlackChat) -> None:
    fake.scopes = ("chat:write", "users:read", "channels:read", "channels:history")
    problems = await chat.check()
    missing = [s for s in SCOPES if s not in fake.scopes]
    assert missing == ["users:read.email", "im:write", "groups:read", "groups:history", "im:history"]
    assert problems == [f"the bot token lacks {s}, which csops needs to {SCOPES[s]}; add it under OAuth & "
                        "Permissions and reinstall the app" for s in missing]


async def test_check_says_when_slack_is_unreachable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    slack = SlackChat(TOKEN, base_url=f"http://127.0.0.1:{port}/api/", max_retries=0)
    try:
        assert await slack.check() == ["cannot reach Slack (auth.test): ClientConnectorError"]
    finally:
        await slack.close()


# --- the token stays secret ------------------------------------------------------------------------

def _chain(exc: BaseException | None) -> list[BaseException]:
    seen = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


async def test_token_is_in_no_error_repr_or_log(fake: FakeSlack, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    slack = SlackChat(TOKEN, base_url=fake.base_url, max_retries=0)
    errors: list[ConnectorError] = []
    try:
        for i, (plan, message) in enumerate([(["drop_after"], to_channel()), (["5xx"], to_channel()),
                                             (["429"], to_channel()), ([], ChatMessage(channel="nope", text="x"))]):
            faults_on_posts(fake, *plan)
            try:
                await slack.post(message, f"k{i}")
            except ConnectorError as exc:
                errors.append(exc)
        fake.scopes = ("users:read",)
        with pytest.raises(PermanentError) as caught:
            await slack.post(to_channel(), "k-scope")
        errors.append(caught.value)
        text = repr(slack) + "".join(f"{link!s}{link!r}{getattr(link, 'detail', '')}" for e in errors
                                     for link in _chain(e))
    finally:
        await slack.close()
    assert [type(e).__name__ for e in errors] == ["RetryableError"] * 3 + ["PermanentError"] * 2
    assert all(e.__cause__ is None and e.__context__ is None for e in errors)  # no slack-sdk object hangs on
    assert "chat.postMessage" in caplog.text  # slack-sdk's debug log was captured...
    assert TOKEN not in text and TOKEN not in caplog.text  # ...and holds no token
    assert repr(slack) == f"SlackChat(token='***', base_url={fake.base_url!r})"
