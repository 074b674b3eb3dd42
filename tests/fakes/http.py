"""A base for the loopback stand-ins of vendor APIs (Slack, HubSpot, Salesforce): an aiohttp server
on a free port in the test's own event loop, with faults injected at a chosen rate.

Faults are what the real services do to us:

- ``429``: Too Many Requests with ``Retry-After`` (the request was not processed);
- ``5xx``: 500/502/503 (not processed);
- ``drop_before``: the connection is cut before the request is processed;
- ``drop_after``: the request IS processed, then the connection is cut before the answer: the
  client cannot know it succeeded, the case that makes a naive retry send twice.

A vendor fake subclasses :class:`FakeServer`, adds routes in ``routes()`` and counts what it
processed; ``faults`` decides per request. Exempt paths (``exempt``) never fail, for setup calls.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import ClassVar, Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
FAULT_KINDS = ("429", "5xx", "drop_before", "drop_after")


@dataclass
class Faults:
    """Which requests fail, and how: each request fails with probability ``rate``, the kind drawn
    from ``kinds``; seeded, so a failing test repeats."""

    known: ClassVar[tuple[str, ...]] = FAULT_KINDS
    """The kinds this stand-in can inject (a subclass for another protocol names its own)."""
    rate: float = 0.0
    kinds: tuple[str, ...] = FAULT_KINDS
    seed: int = 0
    retry_after: int = 1
    """Seconds the 429 answers ask the client to wait."""
    injected: Counter[str] = field(default_factory=Counter)
    """How many of each kind were injected (tests assert the faults really happened)."""

    def __post_init__(self) -> None:
        unknown = set(self.kinds) - set(self.known)
        if unknown:
            raise ValueError(f"unknown fault kinds {sorted(unknown)}; known: {self.known}")
        self._rng = random.Random(self.seed)

    def draw(self) -> str | None:
        if self.rate <= 0 or self._rng.random() >= self.rate:
            return None
        kind = self._rng.choice(self.kinds)
        self.injected[kind] += 1
        return kind


@dataclass
class Scripted(Faults):
    """Faults in a set order: one kind (or None) per request, then none."""

    script: list[str | None] = field(default_factory=list)

    def draw(self) -> str | None:
        kind = self.script.pop(0) if self.script else None
        if kind:
            self.injected[kind] += 1
        return kind


class FakeServer:
    """An aiohttp app on 127.0.0.1 and a free port; use as ``async with Fake() as fake: fake.url``."""

    exempt: tuple[str, ...] = ()
    """Path prefixes that never get faults."""

    def __init__(self, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.requests: list[tuple[str, str]] = []
        """(method, path) of every request received, faulted or not."""
        self.url = ""
        self._runner: web.AppRunner | None = None

    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def rate_limited(self, request: web.Request) -> web.StreamResponse:
        """The vendor's own 429 answer; subclasses override to match the vendor's shape."""
        return web.json_response({"error": "ratelimited"}, status=429,
                                 headers={"Retry-After": str(self.faults.retry_after)})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        """The vendor's own 5xx answer."""
        return web.json_response({"error": "internal_error"}, status=status)

    def fault_for(self, request: web.Request) -> str | None:
        """The fault for this request, if any (a stand-in may cap faults per request key)."""
        return self.faults.draw()

    @web.middleware
    async def _inject(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests.append((request.method, request.path))
        kind = None if request.path.startswith(self.exempt) else self.fault_for(request)
        if kind == "429":
            return self.rate_limited(request)
        if kind == "5xx":
            return self.server_error(request, random.Random(len(self.requests)).choice((500, 502, 503)))
        if kind == "drop_before":
            await request.read()
            _cut(request)
            raise asyncio.CancelledError  # aiohttp ends the handler quietly on a cut connection
        response = await handler(request)
        if kind == "drop_after":
            _cut(request)
            raise asyncio.CancelledError
        return response

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._inject])
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets  # type: ignore[attr-defined]
        port = server.sockets[0].getsockname()[1]  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


def _cut(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        transport.abort()
