"""A loopback HubSpot: the CRM v3 endpoints HubSpotCRM calls (companies, contacts, owners, tasks,
notes, search, batch read), the v4 company → contacts associations and the private-app token info.

It checks requests as HubSpot documents them: a ``Bearer`` private-app token (401 otherwise), the
scopes of each endpoint (403 ``MISSING_SCOPES``), property names and value types (date properties
at midnight UTC, enumerations, owner ids), association shapes and type ids (192 task → company,
190 note → company). It answers in HubSpot's shapes: records ``{id, properties, createdAt,
updatedAt, archived}``, pages ``{results, paging: {next: {after}}}``, errors ``{status: "error",
message, correlationId, category}``, and ``X-HubSpot-RateLimit-*`` headers on every response,
with a real fixed-window limiter behind them (429 ``TEN_SECONDLY_ROLLING`` past the limit).

Search (companies, tasks, notes) works as "Search the CRM" documents it: ``filterGroups`` ORed,
filters in a group ANDed, at most 5 groups, 6 filters in a group and 18 in all (400
``VALIDATION_ERROR`` past that); operators EQ, IN, BETWEEN (inclusive, needs ``highValue``), GT,
GTE, LT, LTE, HAS_PROPERTY and NOT_HAS_PROPERTY on the object's properties and ``hs_object_id``;
numbers and ``hs_object_id`` compare as numbers, date and datetime properties as epoch
milliseconds (a filter value in ms or ISO; a date property is midnight UTC), IN on a string
property only matches lowercase values, enumerations compare exactly. One sort rule; ``limit`` up
to 200; ``paging.next.after`` is an offset, and an ``after`` at or past ``search_cap`` (10,000 on
HubSpot) is a 400. EQ on text stays an exact match here (HubSpot's own is case-insensitive).
Searches are consistent unless ``search_lag`` is set: real HubSpot search lags writes by seconds.
``searches`` keeps every search body received, as (object, body).
``created`` counts the tasks and notes made, server side.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, Faults, Handler

SCOPES = ("crm.objects.companies.read", "crm.objects.companies.write", "crm.objects.contacts.read",
          "crm.objects.contacts.write", "crm.objects.owners.read")
_OBJ = {"type": "string"}
PROPERTIES: dict[str, dict[str, dict[str, Any]]] = {
    "companies": {p: _OBJ for p in ("name", "domain", "csops_segment", "csops_renewal_status", "csops_health_band")}
    | {p: {"type": "number"} for p in ("csops_arr", "annualrevenue", "csops_health_score",
                                       "csops_previous_health_score")}
    | {p: {"type": "date"} for p in ("csops_renewal_date", "csops_contract_start")}
    | {"lifecyclestage": {"type": "enumeration", "options": ("subscriber", "lead", "marketingqualifiedlead",
                                                             "salesqualifiedlead", "opportunity", "customer",
                                                             "evangelist", "other")},
       "hubspot_owner_id": {"type": "owner"}},
    "contacts": {p: _OBJ for p in ("email", "firstname", "lastname", "jobtitle", "phone", "csops_role")}
    | {"csops_primary_contact": {"type": "bool"}},
    "tasks": {p: _OBJ for p in ("hs_task_subject", "hs_task_body", "csops_idempotency_key")}
    | {"hs_task_status": {"type": "enumeration", "options": ("NOT_STARTED", "IN_PROGRESS", "WAITING", "COMPLETED",
                                                             "DEFERRED")},
       "hs_task_priority": {"type": "enumeration", "options": ("NONE", "LOW", "MEDIUM", "HIGH")},
       "hs_task_type": {"type": "enumeration", "options": ("EMAIL", "CALL", "TODO")},
       "hs_timestamp": {"type": "datetime"}, "hubspot_owner_id": {"type": "owner"}},
    "notes": {p: _OBJ for p in ("hs_note_body", "csops_idempotency_key")}
    | {"hs_timestamp": {"type": "datetime"}, "hubspot_owner_id": {"type": "owner"}},
}
"""Property definitions per object (HubSpot's defaults plus the csops custom properties)."""
ASSOCIATION_TYPES = {"tasks": 192, "notes": 190}
BUILT_IN: dict[str, dict[str, Any]] = {"hs_object_id": {"type": "number"}, "hs_createdate": {"type": "datetime"},
                                       "hs_lastmodifieddate": {"type": "datetime"}}
"""Read-only properties every object has, searchable like the others."""
SEARCH_GROUPS, SEARCH_GROUP_FILTERS, SEARCH_FILTERS, SEARCH_PAGE = 5, 6, 18, 200
OPERATORS = ("EQ", "IN", "BETWEEN", "GT", "GTE", "LT", "LTE", "HAS_PROPERTY", "NOT_HAS_PROPERTY")
_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "GT": lambda a, b: bool(a > b), "GTE": lambda a, b: bool(a >= b), "LT": lambda a, b: bool(a < b),
    "LTE": lambda a, b: bool(a <= b)}


class Rejected(Exception):
    """An error answer, raised by a handler and written by the middleware."""

    def __init__(self, status: int, message: str, category: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.body = status, {"message": message, "category": category, **extra}


@dataclass
class HubSpotFaults(Faults):
    """Faults with a script (the next requests' kinds, ``None`` for no fault) before the random draw,
    and a count of faults per route (``by_route[(method, route, kind)]``)."""

    script: list[str | None] = field(default_factory=list)
    by_route: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    requests: list[tuple[str, str]] = field(default_factory=list)

    def draw(self) -> str | None:
        if self.script:
            kind = self.script.pop(0)
            if kind:
                self.injected[kind] += 1
        else:
            kind = super().draw()
        if kind and self.requests:  # the server appended this request just before drawing
            method, path = self.requests[-1]
            self.by_route[(method, re.sub(r"/\d+", "/{id}", path), kind)] += 1
        return kind


@dataclass
class Record:
    id: str
    kind: str
    properties: dict[str, str]
    created: datetime
    searchable_at: float
    defined: dict[str, dict[str, Any]]
    """The object's property definitions: a read asking for an undefined property gets no key for it."""
    company: str = ""

    def json(self, wanted: list[str] | None = None) -> dict[str, Any]:
        stamp = _iso(self.created)
        props: dict[str, str | None] = {"hs_object_id": self.id, "hs_createdate": stamp, "hs_lastmodifieddate": stamp}
        if wanted is None:
            props |= self.properties
        else:
            props |= {p: self.properties.get(p) for p in wanted if p in self.defined}
        return {"id": self.id, "properties": props, "createdAt": _iso(self.created), "updatedAt": _iso(self.created),
                "archived": False}


class FakeHubSpot(FakeServer):
    """HubSpot on loopback; seed it with ``add_owner``/``add_company``/``add_contact``."""

    def __init__(self, token: str, faults: Faults | None = None, *, scopes: tuple[str, ...] = SCOPES,
                 window_max: int = 100_000, window_ms: int = 1000) -> None:
        super().__init__(faults or HubSpotFaults())
        if isinstance(self.faults, HubSpotFaults):
            self.faults.requests = self.requests
        self.token, self.scopes = token, set(scopes)
        self.window_max, self.window_ms = window_max, window_ms
        """The limiter: ``window_max`` requests per ``window_ms`` (HubSpot: 100-190 per 10 s)."""
        self.properties = {kind: dict(defs) for kind, defs in PROPERTIES.items()}
        self.owners: dict[str, dict[str, Any]] = {}
        self.records: dict[str, dict[str, Record]] = {kind: {} for kind in PROPERTIES}
        self.company_contacts: dict[str, list[str]] = {}
        self.created: Counter[str] = Counter()
        """Tasks and notes created, server side (``created["tasks"]``)."""
        self.throttled = 0
        """429s the limiter answered (faults not included)."""
        self.unique_keys = False
        """Make ``csops_idempotency_key`` a unique-value property: a second create answers 409."""
        self.search_lag = 0.0
        """Seconds before a new record shows in search results."""
        self.latency = 0.0
        """Seconds every answer takes (for timeouts)."""
        self.search_cap = 10_000
        """Results one search can page through with ``after`` (HubSpot: 10,000)."""
        self.searches: list[tuple[str, dict[str, Any]]] = []
        """Every search body received: (object, body)."""
        self._ids = 1000
        self._window = (0.0, 0)

    async def __aenter__(self) -> FakeHubSpot:
        await super().__aenter__()
        return self

    # --- seeding and reading, in process --------------------------------------------------------

    def add_owner(self, email: str, first: str = "", last: str = "") -> str:
        oid = self._new_id()
        self.owners[oid] = {"id": oid, "email": email, "firstName": first, "lastName": last, "userId": int(oid) + 1,
                            "type": "PERSON", "createdAt": _iso(_now()), "updatedAt": _iso(_now()), "archived": False,
                            "teams": []}
        return oid

    def add_company(self, **props: str) -> str:
        return self._store("companies", props).id

    def add_contact(self, company_id: str, **props: str) -> str:
        rec = self._store("contacts", props)
        self.company_contacts.setdefault(company_id, []).append(rec.id)
        return rec.id

    def tasks(self) -> list[Record]:
        return list(self.records["tasks"].values())

    def notes(self) -> list[Record]:
        return list(self.records["notes"].values())

    # --- the server -------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._hubspot)
        v3 = "/crm/v3/objects"
        app.router.add_get(v3 + "/{kind:companies|contacts}", self._list)
        app.router.add_get(v3 + r"/{kind:companies|tasks}/{id:\d+}", self._read)
        app.router.add_patch(v3 + r"/{kind:companies|tasks}/{id:\d+}", self._update)
        app.router.add_post(v3 + "/{kind:tasks|notes}", self._create)
        app.router.add_post(v3 + "/{kind:companies|tasks|notes}/search", self._search)
        app.router.add_post(v3 + "/contacts/batch/read", self._batch_read)
        app.router.add_get(r"/crm/v4/objects/companies/{id:\d+}/associations/contacts", self._associated)
        app.router.add_get("/crm/v3/owners", self._owners)
        app.router.add_get(r"/crm/v3/owners/{id:\d+}", self._owner)
        app.router.add_post("/oauth/v2/private-apps/get/access-token-info", self._token_info)

    def rate_limited(self, request: web.Request) -> web.StreamResponse:
        body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()), "policyName": "TEN_SECONDLY_ROLLING",
                "requestId": str(uuid.uuid4())}
        return web.json_response(body, status=429, headers={"Retry-After": str(self.faults.retry_after),
                                                            **self._limit_headers(0)})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        body = {"status": "error", "message": "internal error", "correlationId": str(uuid.uuid4()),
                "category": "INTERNAL_ERROR"}
        return web.json_response(body, status=status, headers=self._limit_headers(None))

    @web.middleware
    async def _hubspot(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        start, count = self._window
        now = time.monotonic()
        if now - start >= self.window_ms / 1000:
            start, count = now, 0
        self._window = (start, count + 1)
        if count + 1 > self.window_max:
            self.throttled += 1
            body = {"status": "error", "message": "You have reached your ten_secondly_rolling limit.",
                    "errorType": "RATE_LIMIT", "correlationId": str(uuid.uuid4()),
                    "policyName": "TEN_SECONDLY_ROLLING"}
            return web.json_response(body, status=429, headers=self._limit_headers(0))
        try:
            if request.headers.get("Authorization") != f"Bearer {self.token}":
                raise Rejected(401, "Authentication credentials not found. This API supports OAuth 2.0 "
                               "authentication and you can find more details at https://developers.hubspot.com/"
                               "docs/methods/auth/oauth-overview", "INVALID_AUTHENTICATION")
            scope = _scope(request)
            if scope and scope not in self.scopes:
                raise Rejected(403, "This app hasn't been granted all required scopes to make this call. Read more "
                               "about required scopes here: https://developers.hubspot.com/scopes.", "MISSING_SCOPES",
                               errors=[{"message": "One or more of the following scopes are required.",
                                        "context": {"requiredGranularScopes": [scope]}}],
                               links={"scopes": "https://developers.hubspot.com/scopes"})
            if self.latency:
                await asyncio.sleep(self.latency)
            response = await handler(request)
        except Rejected as exc:
            response = web.json_response({"status": "error", "correlationId": str(uuid.uuid4()), **exc.body},
                                         status=exc.status)
        response.headers.update(self._limit_headers(max(0, self.window_max - count - 1)))
        return response

    def _limit_headers(self, remaining: int | None) -> dict[str, str]:
        left = max(0, self.window_max - self._window[1]) if remaining is None else remaining
        return {"X-HubSpot-RateLimit-Max": str(self.window_max), "X-HubSpot-RateLimit-Remaining": str(left),
                "X-HubSpot-RateLimit-Interval-Milliseconds": str(self.window_ms),
                "X-HubSpot-RateLimit-Daily": "500000", "X-HubSpot-RateLimit-Daily-Remaining": "499000"}

    async def _list(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        limit = _limit(request.query.get("limit", "10"), 100)
        wanted = _wanted(request)
        return web.json_response(_page([r.json(wanted) for r in self.records[kind].values()],
                                       request.query.get("after"), limit))

    async def _read(self, request: web.Request) -> web.StreamResponse:
        rec = self._get(request.match_info["kind"], request.match_info["id"])
        out = rec.json(_wanted(request))
        if "companies" in request.query.get("associations", "").split(",") and rec.company:
            link = {"id": rec.company, "type": f"{rec.kind[:-1]}_to_company"}
            out["associations"] = {"companies": {"results": [link]}}
        return web.json_response(out)

    async def _update(self, request: web.Request) -> web.StreamResponse:
        rec = self._get(request.match_info["kind"], request.match_info["id"])
        rec.properties.update(self._valid(rec.kind, (await _json(request)).get("properties")))
        return web.json_response(rec.json())

    async def _create(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        body = await _json(request)
        props = self._valid(kind, body.get("properties"))
        if not props.get("hs_timestamp"):
            raise Rejected(400, "Property values were not valid: hs_timestamp is required", "VALIDATION_ERROR")
        company = self._association(kind, body.get("associations"))
        key = props.get("csops_idempotency_key", "")
        same = [r for r in self.records[kind].values() if key and r.properties.get("csops_idempotency_key") == key]
        if self.unique_keys and same:
            raise Rejected(409, f"Object with csops_idempotency_key {key} already exists. Existing ID: "
                               f"{same[0].id}", "CONFLICT")
        rec = self._store(kind, props, company=company)
        self.created[kind] += 1
        return web.json_response(rec.json(), status=201)

    async def _search(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        body = await _json(request)
        self.searches.append((kind, body))
        groups = [[self._test(kind, f) for f in g] for g in _filter_groups(body.get("filterGroups"))]
        now = time.monotonic()
        hits = [r for r in self.records[kind].values() if r.searchable_at <= now
                and (not groups or any(all(test(r) for test in g) for g in groups))]
        sorts = body.get("sorts") or []
        if len(sorts) > 1 or not all(isinstance(s, dict) for s in sorts):
            raise Rejected(400, "There was a problem with the request: only one sort rule can be applied",
                           "VALIDATION_ERROR")
        for sort in sorts:
            hits.sort(key=self._sort_key(kind, sort.get("propertyName")), reverse=sort.get("direction") == "DESCENDING")
        limit = _limit(str(body.get("limit", 10)), SEARCH_PAGE)
        after = body.get("after")
        start = int(str(after)) if str(after or "").isdigit() else 0
        if start >= self.search_cap:
            raise Rejected(400, f"There was a problem with the request: search results are limited to "
                           f"{self.search_cap} in total; paging past them is not supported", "VALIDATION_ERROR")
        wanted = list(body.get("properties") or [])
        out: dict[str, Any] = {"total": len(hits), "results": [
            r.json(wanted) for r in hits[start:min(start + limit, self.search_cap)]]}
        if start + limit < len(hits):
            out["paging"] = {"next": {"after": str(start + limit), "link": f"?after={start + limit}"}}
        return web.json_response(out)

    def _test(self, kind: str, f: dict[str, Any]) -> Callable[[Record], bool]:
        """One search filter as a test of a record, or a 400 for a filter HubSpot would refuse."""
        name, op = f.get("propertyName"), f.get("operator")
        spec = BUILT_IN.get(str(name)) or self.properties[kind].get(str(name))
        if spec is None or op not in OPERATORS:
            raise Rejected(400, f"There was a problem with the request: cannot filter on {name!r} with {op!r}",
                           "VALIDATION_ERROR")
        prop, typ = str(name), str(spec["type"])
        if op in ("HAS_PROPERTY", "NOT_HAS_PROPERTY"):
            return lambda r: (_stored(r, prop) not in (None, "")) == (op == "HAS_PROPERTY")
        if op == "IN":
            values = f.get("values")
            if not isinstance(values, list) or not values:
                raise Rejected(400, "Invalid input JSON: operator IN requires values", "VALIDATION_ERROR")
            keys = {_filter_value(typ, v, op) for v in values}
            if typ == "string":  # HubSpot matches string IN values in lowercase only
                return lambda r: str(_stored(r, prop) or "").lower() in keys
            return lambda r: _scalar(typ, _stored(r, prop)) in keys
        if "value" not in f:
            raise Rejected(400, f"Invalid input JSON: operator {op} requires a value", "VALIDATION_ERROR")
        low = _filter_value(typ, f["value"], op)
        if op == "EQ":  # exact, as this fake always answered EQ
            return lambda r: _scalar(typ, _stored(r, prop)) == low
        if op == "BETWEEN":
            if "highValue" not in f:
                raise Rejected(400, "Invalid input JSON: operator BETWEEN requires a highValue", "VALIDATION_ERROR")
            high = _filter_value(typ, f["highValue"], op)
            return lambda r: _ordered(typ, _stored(r, prop), lambda v: bool(_fold(low) <= v <= _fold(high)))
        compare = _COMPARE[str(op)]
        return lambda r: _ordered(typ, _stored(r, prop), lambda v: compare(v, _fold(low)))

    def _sort_key(self, kind: str, name: Any) -> Callable[[Record], Any]:
        if name in (None, "hs_createdate", "createdate"):
            return lambda r: r.created
        spec = BUILT_IN.get(str(name)) or self.properties[kind].get(str(name))
        if spec is None:
            raise Rejected(400, f"There was a problem with the request: cannot sort on {name!r}", "VALIDATION_ERROR")
        typ, prop = str(spec["type"]), str(name)

        def key(rec: Record) -> tuple[bool, Any]:
            value = _fold(_scalar(typ, _stored(rec, prop)))
            return value is None, 0 if value is None else value  # records without a value last
        return key

    async def _batch_read(self, request: web.Request) -> web.StreamResponse:
        body = await _json(request)
        ids = [str(i.get("id")) for i in body.get("inputs") or []]
        if len(ids) > 100:
            raise Rejected(400, "Batch input must contain at most 100 inputs", "VALIDATION_ERROR")
        wanted = list(body.get("properties") or [])
        found = [self.records["contacts"][i].json(wanted) for i in ids if i in self.records["contacts"]]
        missing = [i for i in ids if i not in self.records["contacts"]]
        out: dict[str, Any] = {"status": "COMPLETE", "results": found, "startedAt": _iso(_now()),
                               "completedAt": _iso(_now())}
        if missing:
            out |= {"numErrors": 1, "errors": [{"status": "error", "category": "OBJECT_NOT_FOUND", "context":
                                                {"ids": missing}, "message": "Could not get some CONTACT objects, "
                                                "they may be deleted or not exist."}]}
        return web.json_response(out, status=207 if missing else 200)

    async def _associated(self, request: web.Request) -> web.StreamResponse:
        ids = self.company_contacts.get(request.match_info["id"], [])
        results = [{"toObjectId": int(i), "associationTypes": [
            {"category": "HUBSPOT_DEFINED", "typeId": 280, "label": None}]} for i in ids]
        return web.json_response(_page(results, request.query.get("after"),
                                       _limit(request.query.get("limit", "500"), 500)))

    async def _owners(self, request: web.Request) -> web.StreamResponse:
        email = request.query.get("email", "").lower()
        owners = [o for o in self.owners.values() if not email or o["email"].lower() == email]
        return web.json_response(_page(owners, request.query.get("after"),
                                       _limit(request.query.get("limit", "100"), 500)))

    async def _owner(self, request: web.Request) -> web.StreamResponse:
        if (owner := self.owners.get(request.match_info["id"])) is None:
            raise Rejected(404, "Owner not found", "OBJECT_NOT_FOUND")
        return web.json_response(owner)

    async def _token_info(self, request: web.Request) -> web.StreamResponse:
        if (await _json(request)).get("tokenKey") != self.token:
            raise Rejected(400, "The token key is not valid", "VALIDATION_ERROR")
        return web.json_response({"userId": 42, "hubId": 4242, "appId": 7, "scopes": sorted(self.scopes)})

    # --- validation ---------------------------------------------------------------------------------

    def _get(self, kind: str, rid: str) -> Record:
        if (rec := self.records[kind].get(rid)) is None:
            raise Rejected(404, "resource not found", "OBJECT_NOT_FOUND")
        return rec

    def _valid(self, kind: str, props: Any) -> dict[str, str]:
        if not isinstance(props, dict):
            raise Rejected(400, "Invalid input JSON: properties must be an object", "VALIDATION_ERROR")
        problems = [p for name, value in props.items() if (p := self._problem(kind, name, value))]
        if problems:
            raise Rejected(400, f"Property values were not valid: {json.dumps(problems)}", "VALIDATION_ERROR")
        return {k: _normal(self.properties[kind][k]["type"], v) for k, v in props.items()}

    def _problem(self, kind: str, name: str, value: Any) -> dict[str, Any] | None:
        spec = self.properties[kind].get(name)
        if spec is None:
            return _invalid(name, f'Property "{name}" does not exist', "PROPERTY_DOESNT_EXIST")
        if not isinstance(value, str):
            return _invalid(name, f"{value!r} is not a string", "INVALID_TYPE")
        kind_ = spec["type"]
        if value == "":
            return None
        if kind_ == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            return _invalid(name, f"{value} is not a valid number", "INVALID_FLOAT")
        if kind_ == "date" and value.isdigit() and int(value) % 86_400_000:
            at = datetime.fromtimestamp(int(value) / 1000, UTC).time().isoformat(timespec="milliseconds")
            return _invalid(name, f"{value} is at {at} UTC, not midnight!", "INVALID_DATE")
        if kind_ == "date" and not (value.isdigit() or re.fullmatch(r"\d{4}-\d{2}-\d{2}", value)):
            return _invalid(name, f"{value} is not a valid date", "INVALID_DATE")
        if kind_ == "datetime" and not (value.isdigit() or _parses(value)):
            return _invalid(name, f"{value} is not a valid datetime", "INVALID_DATE")
        if kind_ == "enumeration" and value not in spec["options"]:
            return _invalid(name, f"{value} was not one of the allowed options: {list(spec['options'])}",
                            "INVALID_OPTION")
        if kind_ == "owner" and value not in self.owners:
            return _invalid(name, f"{value} is not a valid owner id", "INVALID_OWNER_ID")
        if kind_ == "bool" and value not in ("true", "false"):
            return _invalid(name, f"{value} is not a valid boolean", "INVALID_BOOLEAN")
        return None

    def _association(self, kind: str, associations: Any) -> str:
        for a in associations or []:
            types = a.get("types") if isinstance(a, dict) else None
            to = str((a.get("to") or {}).get("id", "")) if isinstance(a, dict) else ""
            if not isinstance(types, list) or not types or any(
                    t.get("associationCategory") != "HUBSPOT_DEFINED" or t.get("associationTypeId") !=
                    ASSOCIATION_TYPES[kind] for t in types):
                raise Rejected(400, f"invalid association type for {kind} to companies: {types!r}", "VALIDATION_ERROR")
            if to not in self.records["companies"]:
                raise Rejected(400, f"One or more associations are invalid: no company {to}", "VALIDATION_ERROR")
            return to
        return ""

    def _store(self, kind: str, props: dict[str, str], company: str = "") -> Record:
        rec = Record(id=self._new_id(), kind=kind, properties=dict(props), created=_now(),
                     searchable_at=time.monotonic() + self.search_lag, defined=self.properties[kind], company=company)
        self.records[kind][rec.id] = rec
        return rec

    def _new_id(self) -> str:
        self._ids += 1
        return str(self._ids)


def _scope(request: web.Request) -> str:
    path, kind = request.path, request.match_info.get("kind", "")
    if path.startswith("/oauth/"):
        return ""
    if path.startswith("/crm/v3/owners"):
        return "crm.objects.owners.read"
    obj = "companies" if kind == "companies" or path.startswith("/crm/v4/objects/companies") else "contacts"
    write = request.method == "PATCH" or (request.method == "POST" and not path.endswith(("/search", "/read")))
    return f"crm.objects.{obj}.{'write' if write else 'read'}"


def _filter_groups(groups: Any) -> list[list[dict[str, Any]]]:
    """The filter groups of a search body, checked against HubSpot's documented limits."""
    if groups is None:
        return []
    if not isinstance(groups, list) or not all(isinstance(g, dict) and isinstance(g.get("filters") or [], list)
                                               for g in groups):
        raise Rejected(400, "Invalid input JSON: filterGroups must be a list of {filters: [...]}", "VALIDATION_ERROR")
    out = [[f if isinstance(f, dict) else {} for f in g.get("filters") or []] for g in groups]
    total = sum(len(g) for g in out)
    if len(out) > SEARCH_GROUPS or any(len(g) > SEARCH_GROUP_FILTERS for g in out) or total > SEARCH_FILTERS:
        raise Rejected(400, f"There was a problem with the request: a search can have at most {SEARCH_GROUPS} "
                       f"filterGroups with up to {SEARCH_GROUP_FILTERS} filters each and {SEARCH_FILTERS} filters in "
                       f"total (got {len(out)} groups, {total} filters)", "VALIDATION_ERROR")
    return out


def _stored(rec: Record, name: str) -> str | None:
    if name == "hs_object_id":
        return rec.id
    if name in ("hs_createdate", "hs_lastmodifieddate"):
        return _iso(rec.created)
    return rec.properties.get(name)


def _scalar(typ: str, value: Any) -> float | str | None:
    """A value as search compares it: numbers as numbers, dates and datetimes as epoch ms, else text."""
    text = "" if value is None else str(value).strip()
    if not text:
        return None
    try:
        if typ == "number":
            return float(text)
        if typ in ("date", "datetime"):
            if re.fullmatch(r"-?\d+", text):
                return float(text)
            when = datetime.fromisoformat(text.replace("Z", "+00:00"))
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp() * 1000
    except ValueError:
        return None
    return text


def _filter_value(typ: str, value: Any, op: Any) -> float | str:
    key = _scalar(typ, value)
    if key is None:
        raise Rejected(400, f"There was a problem with the request: {value!r} is not a valid value for {op} on a "
                       f"{typ} property", "VALIDATION_ERROR")
    return key


def _fold(value: float | str | None) -> float | str | None:
    """Text compares without case in ranges, as HubSpot's search does."""
    return value.lower() if isinstance(value, str) else value


def _ordered(typ: str, stored: str | None, test: Callable[[Any], bool]) -> bool:
    value = _fold(_scalar(typ, stored))
    if value is None:
        return False  # a record without a value matches no comparison
    try:
        return test(value)
    except TypeError:
        return False  # text against a number: no match


def _page(results: list[dict[str, Any]], after: Any, limit: int) -> dict[str, Any]:
    start = int(after) if str(after or "").isdigit() else 0
    out: dict[str, Any] = {"results": results[start:start + limit]}
    if start + limit < len(results):
        out["paging"] = {"next": {"after": str(start + limit), "link": f"?after={start + limit}"}}
    return out


async def _json(request: web.Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        raise Rejected(400, "Invalid input JSON on line 1", "VALIDATION_ERROR") from None
    if not isinstance(body, dict):
        raise Rejected(400, "Invalid input JSON: expected an object", "VALIDATION_ERROR")
    return body


def _wanted(request: web.Request) -> list[str]:
    return [p for p in request.query.get("properties", "").split(",") if p]


def _limit(value: str, most: int) -> int:
    return max(1, min(int(value) if value.isdigit() else 10, most))


def _invalid(name: str, message: str, error: str) -> dict[str, Any]:
    return {"isValid": False, "message": message, "error": error, "name": name, "localizedErrorMessage": message}


def _normal(kind: str, value: str) -> str:
    """Values as HubSpot stores and returns them: dates as YYYY-MM-DD, datetimes as ISO instants."""
    if kind == "date" and value.isdigit():
        return datetime.fromtimestamp(int(value) / 1000, UTC).date().isoformat()
    if kind == "datetime" and value:
        when = datetime.fromtimestamp(int(value) / 1000, UTC) if value.isdigit() else _parse(value)
        return _iso(when)
    return value


def _parses(value: str) -> bool:
    try:
        _parse(value)
    except ValueError:
        return False
    return True


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)


def _now() -> datetime:
    return datetime.now(UTC)


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")
