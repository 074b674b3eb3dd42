"""HubSpot companies page by page through the CRM search API, for the daily date scan and schedule
ticks (``HubSpotCRM.list_accounts``, the ``AccountLister`` Protocol).

What HubSpot documents for ``POST /crm/v3/objects/companies/search`` ("Search the CRM") and what
follows from it here:

- Filter groups are ORed and the filters in a group ANDed; a search holds at most 5 groups, 6
  filters in a group and 18 in all (``VALIDATION_ERROR`` past that). Each date range is one group
  (the range AND segment IN AND stage IN AND the id cursor), so at most 4 filters; ranges beyond
  what one search holds go to further searches, merged (below). Overlapping ranges on one
  property are joined first.
- A search answers at most 200 records, and its ``after`` cursor cannot go past 10,000 results
  (400). So the cursor is never used: every request is a fresh search with ``hs_object_id GT
  <last id>`` in each group, sorted by ``hs_object_id`` ascending (one sort rule is all HubSpot
  takes). A scan can then go through any number of companies.
- Date properties hold midnight UTC and filters take epoch milliseconds. A range runs from
  midnight of its first day to the millisecond before midnight after its last, so a datetime
  property (``fields.NAME`` mapped to one) keeps its last day too; an open end (``date.min`` or
  ``date.max``, as ``engine.triggers.scan.date_window`` gives when it cannot bound a window) drops that
  side of the filter.
- ``IN`` on a string property matches lowercase values only (HubSpot compares strings without
  case), while an enumeration compares exactly. Each value is sent as given and lowercased, so
  either kind finds it; that can only widen the page, and the matcher checks the audience exactly.

Several searches for one page: each gives its first ``limit`` companies after the cursor, and the
page is the first ``limit`` ids of their union, so nothing in between is skipped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, timedelta
from typing import Any, Protocol

import httpx

from connectors.base import Account, PermanentError
from connectors.hubspot_map import PropertyMap, date_millis

__all__ = ["MAX_FILTERS", "MAX_GROUPS", "MAX_GROUP_FILTERS", "PAGE_MAX", "list_companies", "plan"]

PATH = "/crm/v3/objects/companies/search"
MAX_GROUPS = 5
MAX_GROUP_FILTERS = 6
MAX_FILTERS = 18
PAGE_MAX = 200
"""HubSpot's documented limits: filter groups per search, filters per group and in all, records per answer."""
ID = "hs_object_id"

Filter = dict[str, Any]
Group = list[Filter]


class Call(Protocol):
    """``HubSpotCRM._call``: one request with its retries, 429 and rate-limit window handling."""

    async def __call__(self, method: str, path: str, what: str, *, json: Any = None) -> httpx.Response: ...


async def list_companies(call: Call, props: PropertyMap, after: str | None, limit: int, *,
                         dates: Sequence[tuple[str, date, date]] = (), segments: Sequence[str] = (),
                         stages: Sequence[str] = ()) -> list[Account]:
    """Up to ``limit`` companies with ids above ``after`` that pass the filters, in ascending id order
    (the ``AccountLister`` contract).

    Raises:
        ValueError: a date field with no company property, or an ``after`` that is not a company id.
        RetryableError, PermanentError: as ``HubSpotCRM._call`` raises them.
    """
    if after is not None and not after.isdigit():
        raise ValueError(f"after={after!r} is not a HubSpot company id: pass the last id of the previous page")
    searches = plan(props, dates, segments, stages)
    if limit <= 0 or not searches:
        return []
    found: dict[int, dict[str, Any]] = {}
    for groups in searches:
        found.update((int(obj["id"]), obj) for obj in await _first(call, props, groups, after, limit))
    return [props.account(found[i]) for i in sorted(found)[:limit]]


def plan(props: PropertyMap, dates: Sequence[tuple[str, date, date]], segments: Sequence[str],
         stages: Sequence[str]) -> list[list[Group]]:
    """The searches to make, each its filter groups without the id cursor; [] when no date range can
    match (every ``first`` after its ``last``).

    Raises:
        ValueError: a date field with no company property (see ``PropertyMap.date_property``).
    """
    common = [f for f in (_one_of(props.map["segment"], segments), _one_of(props.map["lifecycle_stage"], stages))
              if f is not None]
    if not dates:
        return [[common]]
    ranges = _joined([(props.date_property(name), first, last) for name, first, last in dates])
    groups = [[_within(prop, first, last), *common] for prop, first, last in ranges]
    per_search = min(MAX_GROUPS, MAX_FILTERS // (len(common) + 2))  # + the range and the id cursor
    return [groups[i:i + per_search] for i in range(0, len(groups), per_search)]


async def _first(call: Call, props: PropertyMap, groups: list[Group], after: str | None,
                 limit: int) -> list[dict[str, Any]]:
    """The first ``limit`` companies after ``after`` that one search finds, 200 per request."""
    out: list[dict[str, Any]] = []
    cursor = after
    while len(out) < limit:
        size = min(PAGE_MAX, limit - len(out))
        page = await _search(call, props, groups, cursor, size)
        out += page
        if len(page) < size:
            break
        last = max(int(obj["id"]) for obj in page)
        if cursor is not None and last <= int(cursor):
            raise PermanentError(f"HubSpot's company search ignored the id filter (ids after {cursor} came back "
                                 f"up to {last}); the scan stops rather than read the same companies again")
        cursor = str(last)
    return out


async def _search(call: Call, props: PropertyMap, groups: list[Group], cursor: str | None,
                  size: int) -> list[dict[str, Any]]:
    after = [{"propertyName": ID, "operator": "GT", "value": cursor}] if cursor is not None else []
    body: dict[str, Any] = {"sorts": [{"propertyName": ID, "direction": "ASCENDING"}],
                            "properties": props.company_properties(), "limit": size}
    filter_groups = [{"filters": [*group, *after]} for group in groups if group or after]
    if filter_groups:
        body["filterGroups"] = filter_groups
    what = f"search companies for a scan (ids after {cursor})" if cursor else "search companies for a scan"
    res = await call("POST", PATH, what, json=body)
    return list(res.json().get("results") or [])


def _one_of(prop: str, values: Sequence[str]) -> Filter | None:
    wanted = list(dict.fromkeys(v for value in values for v in (value, value.lower())))
    return {"propertyName": prop, "operator": "IN", "values": wanted} if wanted else None


def _joined(ranges: list[tuple[str, date, date]]) -> list[tuple[str, date, date]]:
    """The ranges without empty ones, overlapping or touching ranges of one property joined."""
    out: list[tuple[str, date, date]] = []
    for prop, first, last in sorted(r for r in ranges if r[1] <= r[2]):
        if out and out[-1][0] == prop and (first - out[-1][2]).days <= 1:
            out[-1] = (prop, out[-1][1], max(out[-1][2], last))
        else:
            out.append((prop, first, last))
    return out


def _within(prop: str, first: date, last: date) -> Filter:
    """``prop`` holds a time from midnight UTC of ``first`` to the end of ``last`` (epoch ms)."""
    low = None if first == date.min else date_millis(first)
    high = None if last == date.max else str(int(date_millis(last + timedelta(days=1))) - 1)
    if low is None and high is None:
        return {"propertyName": prop, "operator": "HAS_PROPERTY"}
    if high is None:
        return {"propertyName": prop, "operator": "GTE", "value": low}
    if low is None:
        return {"propertyName": prop, "operator": "LTE", "value": high}
    return {"propertyName": prop, "operator": "BETWEEN", "value": low, "highValue": high}
