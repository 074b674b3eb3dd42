"""Slack alerts over the Web API (slack-sdk's AsyncWebClient on aiohttp).

A channel message is one ``chat.postMessage``; a DM first finds the person by email
(``users.lookupByEmail``) and opens the DM (``conversations.open``), both cached per process.

Exactly once: ``chat.postMessage`` takes no idempotency key, so every message carries the key in
its metadata (``event_type: csops_effect``). When a post may already have reached Slack — a
dropped connection, a timeout or a 5xx on an earlier attempt in this process, or any Temporal
activity retry (the earlier attempt may have run in a worker that died) — the channel's history
since that attempt is searched for the key first, and a message found there is returned instead
of posting again. Only retries pay for the lookup: ``conversations.history`` is rate limited far
below ``chat.postMessage`` (Tier 3, and 1 a minute for apps distributed outside the Marketplace),
so checking before every post would cap alerts at that rate.

Retries inside one call are slack-sdk's retry handlers: 429 honouring Retry-After, 5xx and
connection errors for the reads; 429 only for the post itself, whose 5xx and connection errors
are retried here, with the history check before each new post. What is left becomes a
RetryableError (with retry_after when Slack gave one) or a PermanentError saying what to do.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable
from typing import Any

import aiohttp
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.async_handler import default_interval_calculator
from slack_sdk.http_retry.builtin_async_handlers import (
    AsyncConnectionErrorRetryHandler,
    AsyncRateLimitErrorRetryHandler,
    AsyncServerErrorRetryHandler,
)
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.web.async_slack_response import AsyncSlackResponse
from temporalio import activity

from connectors import redact
from connectors.base import ChatMessage, ConnectorError, PermanentError, RetryableError

__all__ = ["EVENT_TYPE", "SCOPES", "SlackChat"]

log = logging.getLogger(__name__)

EVENT_TYPE = "csops_effect"
"""The metadata event type that marks csops messages; its payload holds the idempotency key."""
SCOPES = {
    "chat:write": "post alerts",
    "users:read.email": "find the people alerts go to by their email",
    "im:write": "open direct messages",
    "channels:read": "find a public channel's id, to check it for a duplicate before a retry",
    "groups:read": "find a private channel's id, to check it for a duplicate before a retry",
    "channels:history": "check a public channel for a duplicate before a retry",
    "groups:history": "check a private channel for a duplicate before a retry",
    "im:history": "check a direct message for a duplicate before a retry",
}
"""The bot token scopes csops needs, and why."""
MAX_INLINE_WAIT = 10
"""A longer Retry-After goes back to Temporal as retry_after, so no worker slot waits it out."""
CLOCK_SKEW = 300.0
"""Seconds the history search reaches back before the first attempt (our clock against Slack's)."""
HISTORY_PAGES = 10
"""Pages of 200 messages searched for a key before posting anyway."""
_ID = re.compile(r"[CGD][A-Z0-9]{8,}")
_TOKEN = ("invalid_auth", "not_authed", "token_revoked", "token_expired", "account_inactive", "not_allowed_token_type")
_TRANSIENT = ("ratelimited", "rate_limited", "fatal_error", "internal_error", "service_unavailable", "request_timeout")
_ADVICE = {
    "channel_not_found": "{where} does not exist or the bot cannot see it: check the channel name in the playbook, "
                         "and invite the bot if the channel is private",
    "not_in_channel": "the bot is not a member of {where}: invite it there (/invite @the-bot)",
    "is_archived": "{where} is archived: unarchive it or change the playbook to post elsewhere",
    "msg_too_long": "the message is longer than Slack allows (40,000 characters): shorten the alert text",
    "no_text": "the message has no text: give the alert a text",
    "invalid_blocks": "Slack rejected the Block Kit blocks: check them in the Block Kit Builder",
    "invalid_blocks_format": "Slack rejected the Block Kit blocks: check them in the Block Kit Builder",
    "users_not_found": "no Slack user has the email {where}: make the email in the CRM match the person's Slack "
                       "profile",
    "user_not_found": "Slack knows no user behind {where}: check the person's email in the CRM",
    "user_disabled": "the Slack account of {where} is deactivated: give the account a new owner",
    "cannot_dm_bot": "{where} is a bot, which cannot get direct messages",
    "restricted_action": "the workspace does not let the bot post in {where}: ask a Slack admin to allow it",
    "restricted_action_read_only_channel": "{where} is read-only for the bot: ask a Slack admin, or post elsewhere",
    "team_access_not_granted": "the app is not installed in the workspace of {where}: install it there",
    "invalid_metadata_format": "Slack refused the metadata csops uses to post exactly once (a csops bug: report it)",
    "metadata_too_large": "Slack refused the metadata csops uses to post exactly once (a csops bug: report it)",
}


class _ServerErrors(AsyncServerErrorRetryHandler):
    """slack-sdk's 5xx handler, widened to 502 and 504 (it retries only 500 and 503): Slack's edge
    answers those for the same passing trouble."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        return response is not None and response.status_code >= 500


class _RateLimits(AsyncRateLimitErrorRetryHandler):
    """slack-sdk's 429 handler, for short waits only."""

    async def _can_retry_async(self, *, state: RetryState, request: HttpRequest, response: HttpResponse | None = None,
                               error: Exception | None = None) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = _seconds(next((v[0] for k, v in response.headers.items() if k.lower() == "retry-after"), None))
        return wait is None or wait <= MAX_INLINE_WAIT


class SlackChat:
    """Implements connectors.base.Chat with a Slack bot token (xoxb-...).

    Args:
        token: The Bot User OAuth Token; passed in by the caller, never logged.
        base_url: The Web API root (a loopback fake in tests, a proxy in some enterprises).
        timeout: Seconds for one HTTP request.
        max_retries: Retries within one call, per kind of failure, before giving it back to Temporal.
    """

    def __init__(self, token: str, *, base_url: str = "https://slack.com/api/", timeout: float = 10.0,
                 max_retries: int = 5) -> None:
        self.base_url, self.timeout, self.max_retries = base_url, timeout, max_retries
        redact.register(token)
        # Reads are safe to repeat; a post is not, so its client retries only 429s (never processed).
        self._client = AsyncWebClient(token=token, base_url=base_url, retry_handlers=[
            _RateLimits(max_retry_count=max_retries), _ServerErrors(max_retry_count=max_retries),
            AsyncConnectionErrorRetryHandler(max_retry_count=max_retries,
                                             error_types=[aiohttp.ClientConnectionError, TimeoutError])])
        self._poster = AsyncWebClient(token=token, base_url=base_url,
                                      retry_handlers=[_RateLimits(max_retry_count=max_retries)])
        self._session: aiohttp.ClientSession | None = None
        self._dms: dict[str, str] = {}
        """Email (lower case) → DM channel id."""
        self._ids: dict[str, str] = {}
        """Channel name → id."""
        self._unsure: dict[str, float] = {}
        """Keys whose post may have reached Slack → when it was first tried."""

    def __repr__(self) -> str:
        return f"SlackChat(token='***', base_url={self.base_url!r})"

    async def post(self, message: ChatMessage, idempotency_key: str) -> str:
        """Post the message once per key; return ``channel_id:ts``.

        Raises:
            RetryableError: Slack is rate limiting or failing, or cannot be reached.
            PermanentError: a bad message or recipient, or the app lacks a scope or membership.
        """
        channel, email = message.channel.strip().removeprefix("#"), message.user_email.strip()
        if bool(channel) == bool(email):
            raise PermanentError("a chat message goes to exactly one of a channel or a user_email")
        if not message.text.strip():
            raise PermanentError("a chat message needs text (it is also the notification text)")
        self._ready()
        where = f"#{channel}" if channel else email
        target = channel or await self._dm(email)
        key = idempotency_key
        since = min((t for t in (self._unsure.get(key), _earlier_attempt()) if t is not None), default=None)
        attempt = 0
        while True:
            if since is not None and (found := await self._find(target, where, key, since)):
                self._unsure.pop(key, None)
                return found
            started = time.time()
            try:
                res = await self._poster.chat_postMessage(
                    channel=target, text=message.text, blocks=list(message.blocks) or None,
                    metadata={"event_type": EVENT_TYPE, "event_payload": {"key": key}})
            except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
                error, unsure = _mapped(exc, "chat.postMessage", where)
            else:
                self._unsure.pop(key, None)
                if channel:
                    self._ids[channel] = str(res["channel"])
                return f"{res['channel']}:{res['ts']}"
            if not unsure:
                raise error
            since = since or started
            self._remember(key, since)
            if attempt == self.max_retries:
                raise error
            log.warning("Slack post %s to %s may not have arrived (%s); checking before trying again", key, where,
                        error)
            await asyncio.sleep(default_interval_calculator.calculate_sleep_duration(attempt))
            attempt += 1

    async def check(self) -> list[str]:
        """The problems with the token and its scopes, in plain words ([] when all is well)."""
        self._ready()
        try:
            res = await self._api(self._client.auth_test(), "auth.test", "the workspace")
        except ConnectorError as exc:
            return [str(exc)]
        problems = []
        if not res.get("bot_id"):
            problems.append("the token is not a bot token: use the Bot User OAuth Token (xoxb-...) from "
                            "OAuth & Permissions")
        header = res.headers.get("x-oauth-scopes")
        if header is None:
            return [*problems, f"Slack did not say which scopes the token has; make sure it has {', '.join(SCOPES)}"]
        granted = {s.strip() for s in str(header).split(",")}
        problems += [f"the bot token lacks {scope}, which csops needs to {why}; add it under OAuth & Permissions "
                     "and reinstall the app" for scope, why in SCOPES.items() if scope not in granted]
        return problems

    async def close(self) -> None:
        """Close the HTTP connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _dm(self, email: str) -> str:
        if (dm := self._dms.get(email.lower())) is None:
            user = await self._api(self._client.users_lookupByEmail(email=email), "users.lookupByEmail", email)
            opened = await self._api(self._client.conversations_open(users=str(user["user"]["id"])),
                                     "conversations.open", email)
            dm = self._dms[email.lower()] = str(opened["channel"]["id"])
        return dm

    async def _find(self, target: str, where: str, key: str, since: float) -> str | None:
        """The ``channel:ts`` of a message carrying ``key`` posted since ``since``, if any."""
        channel = target if _ID.fullmatch(target) else await self._channel_id(target, where)
        if channel is None:
            return None  # not a channel the bot can see: the post will say so
        cursor = None
        for _ in range(HISTORY_PAGES):
            res = await self._api(self._client.conversations_history(
                channel=channel, oldest=f"{since - CLOCK_SKEW:.6f}", limit=200, include_all_metadata=True,
                cursor=cursor), "conversations.history", where)
            for m in res.get("messages") or []:
                meta = m.get("metadata") or {}
                if meta.get("event_type") == EVENT_TYPE and (meta.get("event_payload") or {}).get("key") == key:
                    log.info("Slack post %s was already in %s; not posting it again", key, where)
                    return f"{channel}:{m['ts']}"
            cursor = (res.get("response_metadata") or {}).get("next_cursor")
            if not res.get("has_more") or not cursor:
                return None
        log.warning("Slack post %s: searched %d pages of %s without finding it; posting", key, HISTORY_PAGES, where)
        return None

    async def _channel_id(self, name: str, where: str) -> str | None:
        if name not in self._ids:
            cursor = None
            while True:
                res = await self._api(self._client.conversations_list(
                    types="public_channel,private_channel", exclude_archived=True, limit=1000, cursor=cursor),
                    "conversations.list", where)
                self._ids.update({str(c["name"]): str(c["id"]) for c in res.get("channels") or []})
                cursor = (res.get("response_metadata") or {}).get("next_cursor")
                if name in self._ids or not cursor:
                    break
        return self._ids.get(name)

    async def _api(self, call: Awaitable[AsyncSlackResponse], method: str, where: str) -> AsyncSlackResponse:
        """Await a read, turning its failure into a ConnectorError.

        The error is raised outside the ``except`` so that it does not chain slack-sdk's, whose
        response keeps the request headers, token included.
        """
        try:
            return await call
        except (SlackApiError, aiohttp.ClientError, TimeoutError) as exc:
            error, _ = _mapped(exc, method, where)
        raise error

    def _ready(self) -> None:
        # One connection pool for both clients, made inside the running loop it belongs to.
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout))
            self._client.session = self._poster.session = self._session

    def _remember(self, key: str, since: float) -> None:
        self._unsure.setdefault(key, since)
        if len(self._unsure) > 10_000:  # keys whose runs gave up never come back: forget the oldest
            del self._unsure[next(iter(self._unsure))]


def _earlier_attempt() -> float | None:
    """When this Temporal activity was first scheduled, if this is a retry of it."""
    if not activity.in_activity():
        return None
    info = activity.info()
    return info.scheduled_time.timestamp() if info.attempt > 1 else None


def _mapped(exc: Exception, method: str, where: str) -> tuple[ConnectorError, bool]:
    """The ConnectorError for a failed call, and whether Slack may have processed it anyway; its
    message and detail redacted (an error body may quote the token)."""
    error, unsure = _classified(exc, method, where)
    error.args = (redact.redact(str(error)),)
    error.detail = redact.redact(error.detail)
    return error, unsure


def _classified(exc: Exception, method: str, where: str) -> tuple[ConnectorError, bool]:
    if not isinstance(exc, SlackApiError):
        return RetryableError(f"cannot reach Slack ({method}): {type(exc).__name__}"), True
    # A body that is not JSON leaves aiohttp's response here instead of slack-sdk's.
    res = exc.response
    data = getattr(res, "data", None)
    data = data if isinstance(data, dict) else {}
    status = int(getattr(res, "status_code", None) or getattr(res, "status", None) or 0)
    code, detail = str(data.get("error") or f"HTTP {status}"), json.dumps(data)[:1000]
    if status == 429 or code in ("ratelimited", "rate_limited"):
        wait = _seconds(res.headers.get("Retry-After"))
        asks = f"; it asks to wait {wait:g} s" if wait is not None else ""
        return RetryableError(f"Slack is rate limiting {method}{asks}", retry_after=wait, detail=detail), False
    if status >= 500 or code in _TRANSIENT:
        return RetryableError(f"Slack failed on {method} ({code}); try again later", detail=detail), True
    if code in _TOKEN:
        return PermanentError(f"the token is not valid (SLACK_BOT_TOKEN): Slack said {code}; copy the Bot User "
                              "OAuth Token (xoxb-...) from OAuth & Permissions of the installed app",
                              detail=detail), False
    if not data:
        return PermanentError(f"{method} answered HTTP {status} without a Slack answer: check the base_url",
                              detail=detail), False
    if code == "missing_scope":
        needed = data.get("needed") or "a scope"
        return PermanentError(f"Slack said missing_scope: the bot token needs {needed} ({method}); add it under "
                              "OAuth & Permissions and reinstall the app", detail=detail), False
    advice = _ADVICE.get(code, f"see https://api.slack.com/methods/{method}#errors").format(where=where)
    return PermanentError(f"Slack said {code}: {advice}", detail=detail), False


def _seconds(value: Any) -> float | None:
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return None
