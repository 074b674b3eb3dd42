"""Webhooks (the ``http`` step) over httpx, with SSRF defences (rules in connectors.netguard).

Each hop of a call: parse the URL strictly, match it against the allow-list, resolve the host once,
check every address, then connect to a checked address (the URL's host replaced by the address, the
``Host`` header and TLS SNI / certificate check kept on the name), so a DNS answer that changes
between check and connect (rebinding) cannot redirect the call. Redirects are followed here, each hop
checked the same way; headers (``Idempotency-Key`` and the step's own) go only to the first origin.

The receiving side can dedupe on the ``Idempotency-Key`` header (the step's ``workflow-id/step-path``).
429 and 5xx are retryable (honouring Retry-After), other 4xx permanent, timeouts and dropped
connections retryable. Connections are not kept alive: a pooled connection would be reused for another
host name on the same address, whose certificate was never checked.
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from ipaddress import ip_address
from typing import Any

import httpx

from connectors.base import ConnectorError, HttpResult, PermanentError, RetryableError
from connectors.netguard import (
    DEFAULT_PORTS,
    METADATA_NAMES,
    HostRule,
    IPAddress,
    RefusedError,
    Target,
    connect_address,
    parse_network,
    parse_url,
    refusal,
    system_resolver,
)

Resolver = Callable[[str, int], Awaitable[list[str]]]
REDIRECTS = frozenset({301, 302, 303, 307, 308})
USER_AGENT = "csops-webhook"
_FRAMING = frozenset({"host", "content-length", "transfer-encoding", "connection", "idempotency-key"})
_NOT_FOUND = {socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)}


class Webhook:
    """Implements connectors.base.Http for allow-listed hosts on public addresses."""

    def __init__(self, allowed_hosts: Sequence[str], *, allow_private: Sequence[str] = (), timeout: float = 10.0,
                 max_redirects: int = 3, max_body: int = 4000, transport: httpx.AsyncBaseTransport | None = None,
                 resolver: Resolver | None = None) -> None:
        """Args:
            allowed_hosts: ``webhooks.allowed_hosts``: host names, ``*.domain`` wildcards, ``host:port``.
            allow_private: ``webhooks.allow_private``: address ranges (CIDR) of receivers on your network.
            timeout: Seconds for the lookup and for each of connect, write and read.
            max_redirects: Redirects followed per call.
            max_body: Characters of the response body kept.
            transport: httpx transport (tests: custom TLS trust); default: no proxy, no keep-alive.
            resolver: ``(host, port) -> addresses``; default: the operating system's getaddrinfo.
        """
        self.rules = tuple(HostRule.parse(h) for h in allowed_hosts)
        self.allow_private = tuple(parse_network(n) for n in allow_private)
        self.timeout = timeout
        self.max_redirects = max_redirects
        self.max_body = max_body
        self.transport = transport or httpx.AsyncHTTPTransport(limits=httpx.Limits(max_keepalive_connections=0))
        self.resolver = resolver or system_resolver

    def __repr__(self) -> str:
        return f"Webhook(allowed_hosts={[r.entry for r in self.rules]}, allow_private={list(self.allow_private)})"

    async def request(self, method: str, url: str, *, headers: dict[str, str], json: Any,
                      idempotency_key: str) -> HttpResult:
        first = target = self._allowed(parse_url(url))
        addresses = await self._addresses(target)
        own = {k: v for k, v in headers.items() if k.lower() not in _FRAMING} | {"Idempotency-Key": idempotency_key}
        for hop in range(self.max_redirects + 1):
            status, location, retry_after, body = await self._send(method, target, addresses, own if target.origin ==
                                                                   first.origin else {}, json)
            if status in REDIRECTS and location:
                if hop == self.max_redirects:
                    raise RefusedError("redirects", f"{first.netloc} still redirected after {hop} redirects")
                target, addresses = await self._redirect(target, location)
                if status == 303 or (status in (301, 302) and method == "POST"):
                    method, json = ("HEAD" if method == "HEAD" else "GET"), None
                continue
            if status == 429 or status >= 500:
                raise RetryableError(f"{method} {target.netloc}: HTTP {status}", retry_after=retry_after, detail=body)
            if status >= 400:
                raise PermanentError(f"{method} {target.netloc}: HTTP {status}", detail=body)
            return HttpResult(status=status, body=body)
        raise AssertionError("unreachable: the loop returns or raises")

    async def check(self) -> list[str]:
        """Each exact allow-list entry resolves, to addresses a webhook may call (wildcards are checked per call)."""
        problems = []
        for rule in self.rules:
            if rule.wildcard:
                continue
            port = rule.port or DEFAULT_PORTS["https"]
            target = Target(url=httpx.URL(scheme="https", host=rule.host, port=port), scheme="https", host=rule.host,
                            port=port, ip=rule.ip)
            try:
                await self._addresses(target)
            except RefusedError as exc:
                problems.append(f"webhooks.allowed_hosts entry {rule.entry!r}: {exc.why}")
            except ConnectorError as exc:
                problems.append(f"webhooks.allowed_hosts entry {rule.entry!r}: {exc}")
        return problems

    async def close(self) -> None:
        await self.transport.aclose()

    def _allowed(self, target: Target) -> Target:
        if target.ip is None and (target.host in METADATA_NAMES or target.host.endswith(".metadata.google.internal")):
            raise RefusedError("metadata", f"{target.host} is a cloud metadata service; webhooks may never call it")
        if not any(rule.matches(target) for rule in self.rules):
            on_port = "" if target.port == DEFAULT_PORTS[target.scheme] else f" on port {target.port}"
            raise RefusedError("not-allowed", f"host {target.host}{on_port} is not on the webhook allow-list; if it is "
                               f"a receiver you trust, add {target.netloc!r} to webhooks.allowed_hosts in csops.yaml")
        return target

    async def _redirect(self, current: Target, location: str) -> tuple[Target, list[IPAddress]]:
        """The next hop, checked like the first: allow-list, then every address."""
        try:
            if any(c.isspace() or not c.isprintable() or c == "\\" for c in location):
                raise RefusedError("invalid-url", "the Location header contains spaces, control characters or "
                                   "a backslash")
            try:
                joined = str(current.url.join(location))
            except httpx.InvalidURL:
                raise RefusedError("invalid-url", "the Location header is not a valid URL") from None
            target = self._allowed(parse_url(joined))
            if current.scheme == "https" and target.scheme == "http":
                raise RefusedError("insecure-redirect", f"the redirect to {target.netloc} drops https")
            return target, await self._addresses(target)
        except RefusedError as exc:
            raise RefusedError(exc.reason, f"{current.netloc} redirected the call elsewhere: {exc.why}") from None

    async def _addresses(self, target: Target) -> list[IPAddress]:
        """Resolve once and check every address: all must be allowed, not just the one dialled first."""
        if target.ip is not None:
            found: list[IPAddress] = [target.ip]
        else:
            found = await self._resolve(target)
        for ip in found:
            if (why := refusal(ip, self.allow_private)) is not None:
                kind, words = why
                where = f"{target.host} resolves to {ip}," if target.ip is None else f"{ip} is"
                if kind == "metadata":
                    raise RefusedError(kind, f"{where} {words}; webhooks may never call it")
                plain = connect_address(ip)
                raise RefusedError(kind, f"{where} {words}; webhooks only go to public internet addresses. If "
                                   f"this receiver really is on your own network, add its range (for example "
                                   f"{plain}/{plain.max_prefixlen}) to webhooks.allow_private in csops.yaml: every "
                                   "address in it becomes reachable from playbooks")
        return found

    async def _resolve(self, target: Target) -> list[IPAddress]:
        try:
            answer = await asyncio.wait_for(self.resolver(target.host, target.port), self.timeout)
        except TimeoutError:
            raise RetryableError(f"looking up {target.host} timed out") from None
        except socket.gaierror as exc:
            if exc.errno in _NOT_FOUND:
                raise RefusedError("dns", f"{target.host} does not resolve (no such host); check the URL") from None
            raise RetryableError(f"looking up {target.host} failed: {exc.strerror}") from None
        except OSError as exc:
            raise RetryableError(f"looking up {target.host} failed: {exc}") from None
        try:
            found = list(dict.fromkeys(ip_address(a) for a in answer))
        except ValueError:
            raise RefusedError("dns", f"looking up {target.host} gave something that is not an address") from None
        if not found:
            raise RefusedError("dns", f"{target.host} has no addresses")
        return found

    async def _send(self, method: str, target: Target, addresses: list[IPAddress], headers: dict[str, str],
                    json: Any) -> tuple[int, str, float | None, str]:
        """One hop to checked ``addresses``: (status, Location, Retry-After, truncated body)."""
        sni = {"sni_hostname": target.host} if target.scheme == "https" and target.ip is None else {}
        extensions = {"timeout": httpx.Timeout(self.timeout).as_dict(), **sni}
        failure: Exception | None = None
        for ip in addresses:
            dial = connect_address(ip)
            request = httpx.Request(method, target.url.copy_with(host=str(dial)), json=json, extensions=extensions,
                                    headers={"User-Agent": USER_AGENT, **headers, "Host": target.netloc})
            try:
                response = await self.transport.handle_async_request(request)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure = exc  # nothing was sent: the next checked address is safe to try
                continue
            except httpx.HTTPError as exc:
                raise RetryableError(f"{method} {target.netloc}: {type(exc).__name__}") from exc
            try:
                body = await self._body(response)
            except httpx.HTTPError as exc:
                raise RetryableError(f"{method} {target.netloc}: {type(exc).__name__} reading the answer") from exc
            finally:
                await response.aclose()
            return (response.status_code, response.headers.get("Location", ""),
                    _retry_after(response.headers.get("Retry-After", "")), body)
        raise RetryableError(f"{method} {target.netloc}: could not connect ({failure})")

    async def _body(self, response: httpx.Response) -> str:
        """At most ``max_body`` characters, reading no more bytes than they can take."""
        limit, chunks, size = self.max_body * 4, [], 0
        async for chunk in response.aiter_bytes():
            chunks.append(chunk)
            size += len(chunk)
            if size >= limit:
                break
        try:
            return b"".join(chunks)[:limit].decode(response.encoding or "utf-8", errors="replace")[:self.max_body]
        except LookupError:  # an unknown charset
            return b"".join(chunks)[:limit].decode("utf-8", errors="replace")[:self.max_body]


def _retry_after(value: str) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date); None when absent or nonsense."""
    try:
        seconds = float(value)
        return max(0.0, seconds) if math.isfinite(seconds) else None
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, (when - datetime.now(UTC)).total_seconds()) if when.tzinfo else None
