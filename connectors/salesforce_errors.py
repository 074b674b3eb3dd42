"""Salesforce's error answers in plain words: which are worth a retry, the hint for each error code,
and the back-off between attempts (for connectors/salesforce.py).
"""

from __future__ import annotations

import random
import re

import httpx

from connectors.base import PermanentError, RetryableError
from connectors.salesforce_map import (
    is_id,
)

MAX_DETAIL = 2_000
LIMIT_WAIT = 1800.0
"""After REQUEST_LIMIT_EXCEEDED: the daily limit is a rolling 24 hours, so calls free up slowly."""
CONCURRENT_WAIT = 60.0
"""After REQUEST_LIMIT_EXCEEDED for too many long-running requests at once."""



def require_id(what: str, value: str) -> None:
    if not is_id(value):
        raise PermanentError(f"{what} {value!r} is not a Salesforce id (15 or 18 letters and digits)")


def backoff_seconds(attempt: int) -> float:
    # Full jitter: many runs retrying at once should not hit Salesforce in step.
    return random.uniform(0.5, 1.0) * min(0.1 * 2.0 ** attempt, 4.0)


class AuthError(PermanentError):
    """The credentials do not work: every call will fail the same way."""


_HINTS = {
    "FIELD_CUSTOM_VALIDATION_EXCEPTION": "a validation rule refused the change ({message}){on}; change the value in "
                                         "the playbook or the rule in Salesforce",
    "REQUIRED_FIELD_MISSING": "a required field is missing{on}; give it a default value in Salesforce",
    "INVALID_FIELD_FOR_INSERT_UPDATE": "the integration user cannot write{on}; give it Edit access in the "
                                       "field-level security of those fields",
    "INSUFFICIENT_ACCESS_OR_READONLY": "the integration user may not change this record; give it Edit on the "
                                       "object and access to the record",
    "INSUFFICIENT_ACCESS_ON_CROSS_REFERENCE_ENTITY": "the integration user cannot see a record this refers to "
                                                     "(the account or the user); share it with the integration user",
    "INSUFFICIENT_ACCESS": "the integration user lacks a permission ({message})",
    "API_DISABLED_FOR_ORG": "the API is off for this org or user; give the integration user the API Enabled "
                            "permission",
    "API_CURRENTLY_DISABLED": "the API is off for this org or user; give the integration user the API Enabled "
                              "permission",
    "INACTIVE_OWNER_OR_USER": "the owner or assignee is an inactive Salesforce user; reactivate them or reassign "
                              "their accounts",
    "INVALID_CROSS_REFERENCE_KEY": "a record it refers to does not exist ({message}){on}",
    "STRING_TOO_LONG": "a value is too long{on}; shorten it in the playbook",
    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST": "a value is not in the picklist{on} ({message}); add it to the "
                                               "picklist in Salesforce or use an allowed value",
    "MALFORMED_QUERY": "Salesforce could not run csops's query ({message}); please report this as a csops bug",
    "INVALID_QUERY_FILTER_OPERATOR": "Salesforce could not run csops's query ({message}); please report this as a "
                                     "csops bug",
    "DUPLICATE_VALUE": "a unique field already holds this value ({message})",
    "JSON_PARSER_ERROR": "Salesforce could not read a value ({message}); check the field's type",
    "NOT_FOUND": "the record does not exist, or the integration user cannot see it",
    "ENTITY_IS_DELETED": "the record was deleted",
}


_NO_COLUMN = re.compile(r"No such column '([^']+)' on (?:entity|sobject of type) '?(\w+)")


_NO_EXTERNAL_ID = re.compile(r"external ID field does not exist or is not accessible: (\w+)", re.IGNORECASE)


def error_for(res: httpx.Response, what: str, *, can_refresh: bool) -> PermanentError | RetryableError:
    """The error for a Salesforce answer that is not a success, in plain words."""
    detail = res.text[:MAX_DETAIL]
    if res.status_code == 300:
        return PermanentError(f"Salesforce found more than one Task with the same External ID while {what}: "
                              "mark the Task key field Unique", detail=detail)
    code, message, fields = _parse_error(res)
    said = f"Salesforce said {code or f'HTTP {res.status_code}'} while {what}"
    if res.status_code == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        wait = CONCURRENT_WAIT if "concurrent" in message.lower() else LIMIT_WAIT
        return RetryableError(f"{said}: the org's API request limit is used up ({message}); csops waits "
                              f"{wait / 60:.0f} minutes and tries again (Setup > System Overview shows API usage)",
                              retry_after=wait, detail=detail)
    if res.status_code == 401 or code == "INVALID_SESSION_ID":
        fix = ("check the connected app: the client credentials flow enabled, with a Run As user" if can_refresh
               else "put a new token in SALESFORCE_ACCESS_TOKEN, or configure client_id and client_secret so that "
               "csops renews tokens itself")
        return AuthError(f"{said}: the access token is invalid or expired; {fix}", detail=detail)
    if code in ("invalid_client", "invalid_client_id", "invalid_grant", "unsupported_grant_type", "invalid_request"):
        return AuthError(f"{said}: {message or code}; check client_id and client_secret, and that the connected app "
                          "allows the client credentials flow with a Run As user", detail=detail)
    if code == "INVALID_FIELD" and (m := _NO_COLUMN.search(message)):
        hint = (f"Salesforce has no field {m.group(1)} on {m.group(2)}, or the integration user cannot see it: "
                "create the custom field in Setup > Object Manager, give the user field-level access, or map "
                "another field with field_map")
    elif code == "NOT_FOUND" and (m := _NO_EXTERNAL_ID.search(message)):
        hint = (f"Task has no External ID field {m.group(1)}, or the integration user cannot see it: create it "
                "(Text(32), Unique, External ID) as docs/connectors.md (Salesforce) describes")
    else:
        on = f" on {', '.join(fields)}" if fields else ""
        hint = _HINTS.get(code, "{message}").format(message=message or "no details", on=on)
    return PermanentError(f"{said}: {hint}", detail=detail)


def _parse_error(res: httpx.Response) -> tuple[str, str, list[str]]:
    """errorCode, message and fields of a REST error list (or an OAuth error object)."""
    try:
        data = res.json()
    except ValueError:
        return "", res.text[:200], []
    if isinstance(data, list) and data and isinstance(data[0], dict):
        first = data[0]
        fields = [str(f) for f in first.get("fields") or []]
        return str(first.get("errorCode", "")), str(first.get("message", "")), fields
    if isinstance(data, dict) and "error" in data:
        return str(data["error"]), str(data.get("error_description", "")), []
    return "", str(data)[:200], []


def retry_after_seconds(res: httpx.Response) -> float | None:
    try:
        return max(0.0, float(res.headers.get("Retry-After", "")))
    except ValueError:
        return None  # absent, or an HTTP date: back off instead
