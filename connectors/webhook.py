"""Webhooks (the ``http`` step) over httpx: allow-listed hosts only, the idempotency key sent along.

The receiving side can dedupe on the ``Idempotency-Key`` header (the step's ``workflow-id/
step-path``). 429 and 5xx are retryable (honouring Retry-After), other 4xx are permanent, timeouts and
dropped connections retryable. The SSRF defences (resolved addresses, redirects) come with the
connectors issue; until then only exact host names on the allow-list are called.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

import httpx

from connectors.base import HttpResult, PermanentError, RetryableError

MAX_BODY = 4_000


class Webhook:
    """Implements connectors.base.Http."""

    def __init__(self, allowed_hosts: list[str], *, timeout: float = 10.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.allowed = {h.lower() for h in allowed_hosts}
        self.client = httpx.AsyncClient(timeout=timeout, follow_redirects=False, transport=transport)

    async def request(self, method: str, url: str, *, headers: dict[str, str], json: Any,
                      idempotency_key: str) -> HttpResult:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme not in ("http", "https") or not host:
            raise PermanentError(f"not an http(s) URL: {url!r}")
        if host not in self.allowed:
            raise PermanentError(f"host {host} is not on the webhook allow-list",
                                 detail="add it to the allowed hosts in the configuration")
        try:
            res = await self.client.request(method, url, headers={**headers, "Idempotency-Key": idempotency_key},
                                            json=json)
        except (httpx.TimeoutException, httpx.TransportError) as exc:
            raise RetryableError(f"{method} {host}: {type(exc).__name__}") from exc
        body = res.text[:MAX_BODY]
        if res.status_code == 429 or res.status_code >= 500:
            raise RetryableError(f"{method} {host}: HTTP {res.status_code}", retry_after=_retry_after(res),
                                 detail=body)
        if res.status_code >= 400:
            raise PermanentError(f"{method} {host}: HTTP {res.status_code}", detail=body)
        return HttpResult(status=res.status_code, body=body)

    async def close(self) -> None:
        await self.client.aclose()


def _retry_after(res: httpx.Response) -> float | None:
    value = res.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date: let the retry policy's backoff decide
