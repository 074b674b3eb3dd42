"""HubSpot's HTTP details for connectors/hubspot.py: request bodies (associations, searches), the
back-off and Retry-After, and its error answers in plain words (which are worth a retry).
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import httpx

from connectors.base import (
    PermanentError,
    RetryableError,
)

SETTINGS_HINT = "Settings > Integrations > Private Apps"


class TokenRefused(PermanentError):
    """HubSpot answered 401: the token is invalid, expired or rotated."""


def association(record_id: str, type_id: int) -> dict[str, Any]:
    kind = {"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}
    return {"to": {"id": record_id}, "types": [kind]}


def search_body(prop: str, value: str, properties: list[str]) -> dict[str, Any]:
    # Oldest first: should the index window ever let a duplicate in, every retry returns the same record.
    return {"filterGroups": [{"filters": [{"propertyName": prop, "operator": "EQ", "value": value}]}],
            "sorts": [{"propertyName": "hs_createdate", "direction": "ASCENDING"}],
            "properties": properties, "limit": 1}


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def backoff_seconds(attempt: int) -> float:
    base: float = min(0.25 * 2 ** attempt, 4.0)
    return base + random.uniform(0, base / 2)  # jitter, so parallel runs do not retry in step


def number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def retry_after_seconds(res: httpx.Response) -> float | None:
    value = number(res.headers.get("Retry-After"))
    return max(0.0, value) if value is not None else None


def body_of(res: httpx.Response) -> dict[str, Any]:
    try:
        data = res.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def detail_of(res: httpx.Response) -> str:
    body = body_of(res)
    return f"HTTP {res.status_code}; correlationId {body.get('correlationId', '-')}; {res.text[:2000]}"


def lost(what: str, how: str, delay: float) -> RetryableError:
    return RetryableError(f"the answer from HubSpot was lost ({how}) while trying to {what}; it may have been "
                          f"done, so the retry in {delay:g} s first looks for it by its idempotency key",
                          retry_after=delay)


def rate_limited(res: httpx.Response, what: str, backoff: float) -> tuple[float, RetryableError]:
    body = body_of(res)
    policy = str(body.get("policyName") or "")
    wait = retry_after_seconds(res)
    if wait is None and number(res.headers.get("X-HubSpot-RateLimit-Remaining")) == 0:
        wait = (number(res.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")) or 0) / 1000 or None
    if policy == "DAILY":
        wait = max(wait or 0, 900.0)  # resets at midnight in the portal's time zone: check back later
    wait = backoff if wait is None else wait
    message = (f"HubSpot's API rate limit is reached ({policy or 'HTTP 429'}: {body.get('message', '')}); "
               f"could not {what}; trying again in {wait:g} s")
    return wait, RetryableError(message, retry_after=wait, detail=detail_of(res))


def permanent_error(res: httpx.Response, what: str) -> PermanentError:
    body = body_of(res)
    message = str(body.get("message") or res.reason_phrase)
    category = str(body.get("category") or "")
    status = res.status_code
    if status == 401:
        return TokenRefused(f"HubSpot refused the access token (401 {category or 'unauthorized'}): it is invalid, "
                            f"expired or was rotated. Copy the private app's current token from {SETTINGS_HINT} "
                            "into HUBSPOT_TOKEN", detail=detail_of(res))
    if status == 403 and category == "MISSING_SCOPES":
        scopes = sorted({s for e in body.get("errors") or [] for s in (e.get("context") or {}).get(
            "requiredGranularScopes") or (e.get("context") or {}).get("requiredScopes") or []})
        text = (f"HubSpot says the private app lacks the scope(s) {', '.join(scopes) or '(not named)'} needed "
                f"to {what}: add them under {SETTINGS_HINT} > your app > Scopes and commit the change")
    elif status == 404:
        text = f"HubSpot has no such record: could not {what} ({message})"
    else:
        text = f"HubSpot refused to {what}: {message}" + (f" ({category})" if category else f" (HTTP {status})")
        if "PROPERTY_DOESNT_EXIST" in res.text:
            text += ("; create the property in HubSpot or map the field to an existing one with property_map "
                     "(docs/connectors.md lists the csops properties)")
    return PermanentError(text, detail=detail_of(res))
