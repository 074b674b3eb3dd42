"""Salesforce accounts a page at a time, for the daily date scan and schedule triggers (``AccountLister``).

One SOQL query per page, keyset-paged by Id::

    SELECT Id, <the account's fields> FROM Account
    WHERE ((Renewal_Date__c >= 2026-03-02 AND Renewal_Date__c <= 2026-03-31) OR (...))
      AND Segment__c IN ('strategic', 'smb') AND Lifecycle_Stage__c IN ('renew')
      AND Id > '001...'
    ORDER BY Id LIMIT 1000

Why ``Id > last`` and not OFFSET: OFFSET stops at 2,000 rows, while an Id range (what Salesforce's
own PK chunking adds to queries) costs the same on every page and neither skips nor repeats an
account when others are added or deleted meanwhile. Salesforce answers with 18-character ids, and
an ``after`` is lengthened to that form too: as text a 15-character id sorts before its own
18-character form, so mixing the two would repeat an account.

The SELECT lists the mapped fields and every custom field (``__c``) describe shows, because the
scan decides on the accounts it lists (audience conditions, templates) and ``get_account`` shows
all of them as ``fields.API_NAME``. Fields the org does not have are left out, as ``get_account``
leaves them empty. Dates are unquoted literals; a Date/Time field is compared with the UTC days
[first 00:00, last + 1 day 00:00), the days ISO text of its values shows.

Limits (Salesforce docs): the query URI and headers together at most 16,384 bytes (REST API); at
most 4,000 characters in one string in WHERE; a query answers 2,000 rows per batch, and
``_query`` follows ``nextRecordsUrl`` for the rest, so LIMIT needs no cap. The filter values come
from one playbook (a date range per trigger, the segments and stages of its audience), far below
the URI limit, so long IN lists are not split (that would need several queries per page merged
back into id order); a filter that would pass the limit anyway is a ValueError. When the custom
fields alone would, the page reads only the mapped fields, with a warning.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta
from typing import Any, Protocol

import httpx

from connectors.base import Account
from connectors.salesforce_map import FieldMap, account_from, is_id, soql_quote

log = logging.getLogger(__name__)

MAX_URI = 15_000
"""Bytes of path and query for one query: Salesforce takes 16,384 with the headers, which need < 1,400."""
MAX_STRING = 4_000
"""Characters of one string literal in a WHERE clause."""
FIRST_DAY, LAST_DAY = date(1700, 1, 1), date(4000, 12, 31)
"""The dates Salesforce can hold: a bound beyond them is left out of the query."""
DATE_TYPES = ("date", "datetime")
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
_CUSTOM = re.compile(r"fields\.([A-Za-z][A-Za-z0-9_]*)")
_STANDARD_DATES = ("renewal_date", "contract_start")


class Org(Protocol):
    """What a page needs of SalesforceCRM: its field map, describe and query machinery."""

    fields: FieldMap
    api: str

    async def _describe(self, obj: str, *, fresh: bool = False) -> dict[str, Any]: ...
    async def _query(self, soql: str, what: str) -> list[dict[str, Any]]: ...


def full_id(value: str) -> str:
    """The 18-character form of a Salesforce id given with 15 or 18 characters.

    An 18-character id is case-insensitive: its last three characters say which of the first 15
    are capitals, so the case is restored from them.

    Raises:
        ValueError: not a Salesforce id.
    """
    tail = value[15:].upper()
    if not is_id(value) or any(c not in _SUFFIX for c in tail):
        raise ValueError(f"after={value!r} is not a Salesforce id (15 or 18 letters and digits): page on from the "
                         "id of the last account of the previous page")
    head = value[:15]
    if tail:
        head = "".join(c.upper() if _SUFFIX.index(tail[i // 5]) >> (i % 5) & 1 else c.lower()
                       for i, c in enumerate(head))
    return head + "".join(_SUFFIX[sum(1 << i for i, c in enumerate(head[j:j + 5]) if "A" <= c <= "Z")]
                          for j in (0, 5, 10))


def date_field(fm: FieldMap, name: str) -> str:
    """The Account field a date filter on ``name`` (renewal_date, contract_start, fields.NAME) reads.

    ``fields.NAME`` is the field mapped to it, or the custom field NAME itself (``fields.Go_Live__c``),
    as ``get_account`` reads them.

    Raises:
        ValueError: not a date field of the account, or not mapped to a Salesforce field.
    """
    if name in _STANDARD_DATES:
        if not fm.account[name]:
            raise ValueError(f"{name} is not mapped to a Salesforce field (field_map.{name} is empty), so the scan "
                             f"cannot filter on it: map it to the Account date field that holds it")
        return fm.account[name]
    if m := _CUSTOM.fullmatch(name):
        alias = m.group(1)
        if alias in fm.custom:
            return fm.custom[alias]
        if alias.lower().endswith("__c"):
            return alias
        raise ValueError(f"{name} is not mapped to a Salesforce field, so the scan cannot filter on it: set "
                         f"field_map.{name} to the API name of an Account date field in csops.yaml, or name the "
                         "custom field itself (fields.Its_Name__c)")
    raise ValueError(f"{name!r} is not a date field of the account; use renewal_date, contract_start or fields.NAME")


async def list_page(org: Org, after: str | None, limit: int, *, dates: Sequence[tuple[str, date, date]],
                    segments: Sequence[str], stages: Sequence[str]) -> list[Account]:
    """A page of at most ``limit`` accounts in ascending id order after ``after`` (see the module docstring).

    Raises:
        ValueError: a filter field that is unmapped, missing in the org or not a date; a bad
            ``after``; a filter too long for one query.
        RetryableError, PermanentError: as every Salesforce call (connectors.salesforce).
    """
    start = full_id(after) if after is not None else None
    ranges = [(name, date_field(org.fields, name), first, last) for name, first, last in dates]
    choices = [(what, org.fields.account[what], _values(what, values))
               for what, values in (("segment", segments), ("lifecycle_stage", stages)) if values]
    for what, field, _ in choices:
        if not field:
            raise ValueError(f"{what} is not mapped to a Salesforce field (field_map.{what} is empty), so accounts "
                             f"cannot be filtered by {what}: map it, or take the {what} filter out of the playbook")
    ranges = [r for r in ranges if r[2] <= r[3]]
    if limit < 1 or (dates and not ranges):
        return []  # nothing can match: no call

    # A new scan starts with a fresh describe, so custom fields created since show up in it.
    described = await _fields(org, fresh=after is None, wanted=[r[1] for r in ranges] + [c[1] for c in choices])
    where = [_any_range(described, ranges)] if ranges else []
    where += [f"{_known(described, field, what)} IN ({', '.join(values)})" for what, field, values in choices]
    if start is not None:
        where.append(f"Id > {soql_quote(start)}")
    tail = (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY Id LIMIT {limit}"
    filtered = [r[1] for r in ranges]
    soql = f"SELECT {', '.join(_select(org.fields, described, filtered, every_custom=True))} FROM Account"
    if _uri_bytes(org.api, soql + tail) > MAX_URI:
        if after is None:
            log.warning("Salesforce: Account has too many custom fields for the scan's query; scans see only the "
                        "mapped ones. Map the fields playbooks use with field_map (fields.NAME) in csops.yaml")
        soql = f"SELECT {', '.join(_select(org.fields, described, filtered, every_custom=False))} FROM Account"
        if (size := _uri_bytes(org.api, soql + tail)) > MAX_URI:
            raise ValueError(f"the scan's filter is too long for one Salesforce query ({size} bytes, at most "
                             f"{MAX_URI}): use fewer segments or lifecycle stages in the playbook's audience")
    rows = await org._query(soql + tail, "listing accounts")
    return [account_from(row, org.fields) for row in rows]


def _values(what: str, values: Iterable[str]) -> list[str]:
    """Distinct values as SOQL string literals."""
    out = []
    for value in dict.fromkeys(values):
        if not isinstance(value, str) or len(value) > MAX_STRING:
            raise ValueError(f"{what} filter value {str(value)[:40]!r} is not text of at most {MAX_STRING} characters")
        out.append(soql_quote(value))
    return out


async def _fields(org: Org, *, fresh: bool, wanted: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Account's fields from describe by lower-cased name; described again once if a wanted one is missing."""
    def by_name(data: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
        return {name.lower(): info for name, info in data["fields"].items()}

    described = by_name(await org._describe("Account", fresh=fresh))
    if not fresh and any(w.lower() not in described for w in wanted):
        described = by_name(await org._describe("Account", fresh=True))
    return described


def _known(described: Mapping[str, Mapping[str, Any]], field: str, what: str) -> str:
    """The field's API name as describe spells it, or ValueError naming the fix."""
    info = described.get(field.lower())
    if info is None:
        raise ValueError(f"{what}: Salesforce accounts have no field {field}, or the integration user cannot see it: "
                         f"create it in Setup > Object Manager > Account, give the user Read access in its "
                         f"field-level security, or map another field with field_map")
    return str(info.get("name", field))


def _any_range(described: Mapping[str, Mapping[str, Any]], ranges: Sequence[tuple[str, str, date, date]]) -> str:
    """SOQL: any one of the (name, field, first, last) ranges holds; each in brackets, as AND within OR needs."""
    parts = []
    for name, field, first, last in ranges:
        api = _known(described, field, name)
        kind = str(described[field.lower()].get("type", ""))
        if kind not in DATE_TYPES:
            raise ValueError(f"{name}: Account.{api} is a {kind or 'non-date'} field; a date scan needs a Date or "
                             "Date/Time field: map another field with field_map")
        parts.append(f"({_range(api, kind, first, last)})")
    return parts[0] if len(parts) == 1 else f"({' OR '.join(parts)})"


def _range(field: str, kind: str, first: date, last: date) -> str:
    """SOQL: ``field`` (date or datetime) holds a day in [first, last]; every Salesforce date is in
    1700-4000, so a bound at or beyond those is left out."""
    parts = []
    midnight = "" if kind == "date" else "T00:00:00Z"
    if first > FIRST_DAY:
        parts.append(f"{field} >= {first.isoformat()}{midnight}")
    if last < LAST_DAY:
        parts.append(f"{field} <= {last.isoformat()}" if kind == "date"
                     else f"{field} < {(last + timedelta(days=1)).isoformat()}{midnight}")
    return " AND ".join(parts) or f"{field} != null"


def _select(fm: FieldMap, described: Mapping[str, Mapping[str, Any]], extra: Iterable[str], *,
            every_custom: bool) -> list[str]:
    """Id, the mapped fields the org has, the date filter fields, and (``every_custom``) all custom fields."""
    names = [*(f for f in fm.account.values() if f), *fm.custom.values(), *extra]
    if every_custom:
        names += [str(info.get("name", key)) for key, info in described.items() if key.endswith("__c")]
    out = {"id": "Id"}
    for name in names:
        info = described.get(name.lower())
        if info is not None:  # as get_account, a mapped field the org lacks reads as empty
            out.setdefault(name.lower(), str(info.get("name", name)))
    return list(out.values())


def _uri_bytes(api: str, soql: str) -> int:
    return len(httpx.URL(f"{api}/query", params={"q": soql}).raw_path)
