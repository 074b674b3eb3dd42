"""A loopback stand-in for the Slack Web API: the methods csops calls, with Slack's shapes.

Follows the vendor spec (``vendor-specs/slack/slack_web_openapi_v2.json``) and slack-sdk's way of
calling it: ``POST|GET /api/METHOD``, arguments in the query string, a form body or a JSON body,
``Authorization: Bearer xoxb-...``; answers are HTTP 200 with ``{"ok": true, ...}`` or
``{"ok": false, "error": CODE}`` and carry the token's scopes in ``x-oauth-scopes``. A method the
token lacks the scope for answers ``missing_scope`` with ``needed``/``provided``, as Slack does.
Message metadata (newer than the spec file) follows Slack's docs: ``metadata`` on
``chat.postMessage``, returned by ``conversations.history`` only with ``include_all_metadata``.

Every message the fake accepts is kept (:attr:`FakeSlack.posted`), with whether its answer got
out (a ``drop_after`` fault processes the post and cuts the connection before the answer), so
tests count deliveries on the server side.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, Faults

ALL_SCOPES = ("chat:write", "users:read", "users:read.email", "im:write", "channels:read", "groups:read",
              "channels:history", "groups:history", "im:history")
BOT_USER, BOT_ID, TEAM = "U0000000BOT", "B0000000BOT", "T00000TEAM"
Args = dict[str, Any]


class Error(Exception):
    """A Slack error answer: ``{"ok": false, "error": code, **extra}``."""

    def __init__(self, code: str, **extra: Any) -> None:
        super().__init__(code)
        self.code, self.extra = code, extra


@dataclass
class Channel:
    """A conversation in the fake workspace."""

    id: str
    name: str = ""
    private: bool = False
    archived: bool = False
    member: bool = True
    """Whether the bot is in it."""
    user: str = ""
    """For a DM: the other person's user id."""


@dataclass
class Posted:
    """A message the fake accepted."""

    channel: str
    ts: str
    text: str
    blocks: list[Any]
    metadata: dict[str, Any] | None
    at: float
    """time.monotonic() when it was processed."""
    answered: bool = False
    """Whether the answer reached the client (False after a ``drop_after`` fault)."""

    @property
    def key(self) -> str | None:
        return ((self.metadata or {}).get("event_payload") or {}).get("key")


@dataclass
class FaultScript(Faults):
    """Faults in a fixed order, one entry per request (None: no fault), then none."""

    plan: list[str | None] = field(default_factory=list)

    def draw(self) -> str | None:
        kind = self.plan.pop(0) if self.plan else None
        if kind is not None:
            self.injected[kind] += 1
        return kind


POSTED = web.RequestKey("posted", Posted)
"""The message a request posted, so the answer hook can mark it answered."""


class FakeSlack(FakeServer):
    """The fake workspace; ``base_url`` is what SlackChat takes.

    Args:
        token: The one valid bot token.
        scopes: The scopes it was granted.
        channels: Channel name → whether it is private; the bot is a member of all.
        users: Email → user id of the people in the workspace.
        faults: Which requests fail (see tests.fakes.http).
    """

    def __init__(self, *, token: str = "xoxb-test-token", scopes: tuple[str, ...] = ALL_SCOPES,
                 channels: dict[str, bool] | None = None, users: dict[str, str] | None = None,
                 faults: Faults | None = None, echo_token: bool = False) -> None:
        super().__init__(faults)
        self.token, self.scopes = token, scopes
        self.echo_token = echo_token
        """Misbehave like a careless proxy: every error answer quotes the request's bearer token."""
        self.channels: dict[str, Channel] = {}
        for name, private in (channels if channels is not None else {"cs-alerts": False}).items():
            self.add_channel(name, private=private)
        self.users = dict(users if users is not None else {"carl@example.com": "U00000CARL"})
        self.posted: list[Posted] = []
        self.calls: list[tuple[str, Args, float]] = []
        """(method, arguments, time.monotonic()) of every call processed."""
        self.throttled: list[tuple[str, float]] = []
        """(path, time.monotonic()) of every 429 answered."""
        self.refusals: dict[str, str] = {}
        """Method → the error it answers instead, for workspace states the fake does not model
        (a deactivated account, a restricted channel...)."""
        self._last_ts = 0.0

    async def __aenter__(self) -> FakeSlack:
        await super().__aenter__()
        return self

    @property
    def base_url(self) -> str:
        return f"{self.url}/api/"

    def add_channel(self, name: str, *, private: bool = False, archived: bool = False, member: bool = True) -> str:
        cid = f"{'G' if private else 'C'}{len(self.channels) + 1:010d}"
        self.channels[cid] = Channel(id=cid, name=name, private=private, archived=archived, member=member)
        return cid

    def deliveries(self) -> dict[str, int]:
        """How many messages each idempotency key produced."""
        counts: dict[str, int] = {}
        for p in self.posted:
            counts[str(p.key)] = counts.get(str(p.key), 0) + 1
        return counts

    def called(self, method: str) -> list[Args]:
        return [args for m, args, _ in self.calls if m == method]

    # --- HTTP ---------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/api/{method}", self._dispatch)
        app.on_response_prepare.append(self._answered)

    def rate_limited(self, request: web.Request) -> web.StreamResponse:
        self.throttled.append((request.path, time.monotonic()))
        return web.json_response({"ok": False, "error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(self.faults.retry_after)})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        if status == 500:
            return web.json_response({"ok": False, "error": "fatal_error"}, status=500)
        # Slack's edge answers 502/503 with an HTML page, not JSON.
        return web.Response(status=status, text="<html><body>Service Unavailable</body></html>",
                            content_type="text/html")

    async def _answered(self, request: web.Request, response: web.StreamResponse) -> None:
        if (posted := request.get(POSTED)) is not None:
            posted.answered = True

    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        headers = {"x-oauth-scopes": ",".join(self.scopes)}
        try:
            method = request.match_info["method"]
            handler, scopes = self._method(method)
            args = await _arguments(request)
            self._authenticate(request)
            needed = scopes(args) if callable(scopes) else scopes
            missing = [s for s in needed if s not in self.scopes]
            if missing:
                raise Error("missing_scope", needed=",".join(missing), provided=",".join(self.scopes))
            if method in self.refusals:
                raise Error(self.refusals[method])
            self.calls.append((method, args, time.monotonic()))
            body = {"ok": True, **handler(request, args)}
        except Error as exc:
            body = {"ok": False, "error": exc.code, **exc.extra}
            if self.echo_token:
                auth = request.headers.get("Authorization", "")
                body.update(error=f"{exc.code} (request authorized as {auth})", warning=auth.removeprefix("Bearer "))
        return web.json_response(body, headers=headers)

    def _method(self, name: str) -> tuple[Callable[[web.Request, Args], Args], Any]:
        methods: dict[str, tuple[Callable[[web.Request, Args], Args], Any]] = {
            "auth.test": (self._auth_test, ()),
            "chat.postMessage": (self._post_message, ("chat:write",)),
            "users.lookupByEmail": (self._lookup_by_email, ("users:read.email",)),
            "conversations.open": (self._open, ("im:write",)),
            "conversations.history": (self._history, self._history_scope),
            "conversations.list": (self._list, self._list_scopes),
        }
        if name not in methods:
            raise Error("unknown_method")
        return methods[name]

    def _authenticate(self, request: web.Request) -> None:
        auth = request.headers.get("Authorization", "")
        if not auth:
            raise Error("not_authed")
        if auth != f"Bearer {self.token}":
            raise Error("invalid_auth")

    # --- methods --------------------------------------------------------------------------------

    def _auth_test(self, request: web.Request, args: Args) -> Args:
        return {"url": "https://fake-workspace.slack.com/", "team": "Fake Workspace", "user": "csops",
                "team_id": TEAM, "user_id": BOT_USER, "bot_id": BOT_ID, "is_enterprise_install": False}

    def _post_message(self, request: web.Request, args: Args) -> Args:
        channel = self._conversation(str(args.get("channel", "")))
        if channel.archived:
            raise Error("is_archived")
        if not channel.member:
            raise Error("channel_not_found" if channel.private else "not_in_channel")
        text, blocks = str(args.get("text") or ""), _json(args.get("blocks"), [])
        if not text and not blocks:
            raise Error("no_text")
        if len(text) > 40_000:
            raise Error("msg_too_long")
        if not isinstance(blocks, list) or len(blocks) > 50 or not all(
                isinstance(b, dict) and isinstance(b.get("type"), str) for b in blocks):
            raise Error("invalid_blocks")
        metadata = _json(args.get("metadata"), None)
        if metadata is not None and not (isinstance(metadata, dict) and isinstance(metadata.get("event_type"), str)
                                         and isinstance(metadata.get("event_payload"), dict)):
            raise Error("invalid_metadata_format")
        self._last_ts = max(time.time(), self._last_ts + 1e-6)  # ts is unique within a channel
        posted = Posted(channel=channel.id, ts=f"{self._last_ts:.6f}", text=text, blocks=blocks, metadata=metadata,
                        at=time.monotonic())
        self.posted.append(posted)
        request[POSTED] = posted
        return {"channel": channel.id, "ts": posted.ts, "message": self._message(posted, with_metadata=True)}

    def _lookup_by_email(self, request: web.Request, args: Args) -> Args:
        email = str(args.get("email", "")).lower()
        if email not in self.users:
            raise Error("users_not_found")
        uid = self.users[email]
        return {"user": {"id": uid, "team_id": TEAM, "name": email.split("@")[0], "deleted": False,
                         "is_bot": False, "profile": {"email": email, "real_name": email.split("@")[0]}}}

    def _open(self, request: web.Request, args: Args) -> Args:
        users = [u for u in str(args.get("users", "")).split(",") if u]
        if not users:
            raise Error("users_list_not_supplied")
        if len(users) > 1:
            raise Error("invalid_user_combination")  # group DMs: csops never opens them
        if users[0] not in self.users.values():
            raise Error("user_not_found")
        for c in self.channels.values():
            if c.user == users[0]:
                return {"no_op": True, "already_open": True, "channel": {"id": c.id}}
        dm = Channel(id=f"D{len(self.channels) + 1:010d}", user=users[0])
        self.channels[dm.id] = dm
        return {"channel": {"id": dm.id}}

    def _history_scope(self, args: Args) -> tuple[str, ...]:
        c = self.channels.get(str(args.get("channel", "")))
        kind = "channels" if c is None or c.id[0] == "C" else "groups" if c.id[0] == "G" else "im"
        return (f"{kind}:history",)

    def _history(self, request: web.Request, args: Args) -> Args:
        cid = str(args.get("channel", ""))
        if cid not in self.channels:  # history takes an id, never a name
            raise Error("channel_not_found")
        if not self.channels[cid].member:
            raise Error("not_in_channel")
        oldest = _ts(args.get("oldest"), "invalid_ts_oldest") or 0.0
        latest = _ts(args.get("latest"), "invalid_ts_latest")
        inclusive = _flag(args.get("inclusive"))
        found = [p for p in reversed(self.posted) if p.channel == cid
                 and (float(p.ts) >= oldest if inclusive else float(p.ts) > oldest)
                 and (latest is None or float(p.ts) <= latest)]
        page, more, cursor = _page(found, args, default=100, most=999)
        return {"messages": [self._message(p, with_metadata=_flag(args.get("include_all_metadata"))) for p in page],
                "has_more": more, "pin_count": 0, "channel_actions_ts": None, "channel_actions_count": 0,
                "response_metadata": {"next_cursor": cursor}}

    def _list_scopes(self, args: Args) -> tuple[str, ...]:
        types = str(args.get("types") or "public_channel").split(",")
        return tuple(s for t, s in (("public_channel", "channels:read"), ("private_channel", "groups:read"))
                     if t in types)

    def _list(self, request: web.Request, args: Args) -> Args:
        types = str(args.get("types") or "public_channel").split(",")
        found = [c for c in self.channels.values() if c.name
                 and ("private_channel" if c.private else "public_channel") in types
                 and (c.member or not c.private) and not (c.archived and _flag(args.get("exclude_archived")))]
        page, _, cursor = _page(found, args, default=100, most=1000)
        return {"channels": [{"id": c.id, "name": c.name, "is_channel": not c.private, "is_group": c.private,
                              "is_private": c.private, "is_archived": c.archived, "is_member": c.member}
                             for c in page],
                "response_metadata": {"next_cursor": cursor}}

    # --- helpers --------------------------------------------------------------------------------

    def _conversation(self, ref: str) -> Channel:
        """chat.postMessage takes an id or a name, with or without '#'."""
        if ref in self.channels:
            return self.channels[ref]
        for c in self.channels.values():
            if c.name and c.name == ref.removeprefix("#"):
                return c
        raise Error("channel_not_found")

    def _message(self, p: Posted, *, with_metadata: bool) -> Args:
        message: Args = {"type": "message", "subtype": "bot_message", "text": p.text, "ts": p.ts, "user": BOT_USER,
                         "bot_id": BOT_ID, "team": TEAM}
        if p.blocks:
            message["blocks"] = p.blocks
        if with_metadata and p.metadata is not None:
            message["metadata"] = p.metadata
        return message


async def _arguments(request: web.Request) -> Args:
    """Query string, then the body (form or JSON), as Slack reads them."""
    args: Args = dict(request.query)
    if request.method != "POST" or not request.can_read_body:
        return args
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except ValueError:
            raise Error("invalid_json") from None
        if not isinstance(body, dict):
            raise Error("json_not_object")
        return {**args, **body}
    if request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        return {**args, **dict(await request.post())}
    raise Error("invalid_form_data")


def _json(value: Any, default: Any) -> Any:
    """A JSON argument: already decoded in a JSON body, encoded text in a form."""
    if value is None or value == "":
        return default
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise Error("invalid_arguments") from None
    return value


def _flag(value: Any) -> bool:
    return str(value).lower() in ("1", "true")


def _ts(value: Any, error: str) -> float | None:
    if value in (None, ""):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Error(error) from None


def _page(items: list[Any], args: Args, *, default: int, most: int) -> tuple[list[Any], bool, str]:
    """One page of ``items`` after the cursor; the cursor is the offset, opaque to the client."""
    try:
        limit = min(int(args.get("limit") or default), most)
        start = int(base64.b64decode(str(args.get("cursor") or "")).decode() or 0)
    except ValueError:
        raise Error("invalid_cursor") from None
    end = start + limit
    more = end < len(items)
    return items[start:end], more, base64.b64encode(str(end).encode()).decode() if more else ""
