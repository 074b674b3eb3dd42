"""A loopback Salesforce: the REST API endpoints connectors/salesforce.py calls, shaped as the REST
API Developer Guide documents them.

- ``POST /services/oauth2/token``: the client credentials flow;
- ``GET|PATCH /services/data/vXX.X/sobjects/{object}/{id}``, ``GET .../{object}/describe``;
- ``GET|PATCH /services/data/vXX.X/sobjects/{object}/{externalIdField}/{value}``: upsert (201 with
  ``created: true``; 200 with ``created: false`` from v46.0, 204 before) and retrieve by external ID;
- ``GET /services/data/vXX.X/query?q=SOQL`` and ``.../query/{locator}`` (``nextRecordsUrl``).

Errors are Salesforce's error lists ``[{"message", "errorCode", "fields"}]``. The SOQL subset is
parsed, not matched (``parse_soql``): ``SELECT f, ... FROM o [WHERE cond] [ORDER BY f [ASC|DESC]]
[LIMIT n]``, where ``cond`` joins ``f op value`` (op ``= != < <= > >=``), ``f [NOT] IN (v, ...)``
and bracketed conditions with AND or OR; values are string literals with their backslash escapes,
numbers, TRUE/FALSE/NULL, dates (``2026-03-01``) and date-times (``2026-03-01T00:00:00Z``),
unquoted. As Salesforce, mixing AND and OR at one level without brackets is MALFORMED_QUERY; a
stricter subset than Salesforce, an OR must be in brackets. Values are checked against the field's
type as Salesforce does (INVALID_QUERY_FILTER_OPERATOR): ids 15 or 18 characters (both mean the
same record, ordered as 18-character ids), dates only for Date fields, date-times only for
Date/Time fields, quoted text for text fields. A query URI over 16,384 bytes is 414, as the REST
API answers. Writes check field existence, createable/updateable, types, lengths, restricted
picklists, references, unique fields and validation rules. ``tasks_created`` counts Tasks made,
server side.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, Faults

Record = dict[str, Any]
Rule = Callable[[str, Record], str | None]
"""A validation rule: (object, record after the change) -> an error message, or None."""


@dataclass(frozen=True)
class Field:
    """One field as describe reports it."""

    type: str
    createable: bool = True
    updateable: bool = True
    length: int = 0
    picklist: tuple[str, ...] = ()
    restricted: bool = False
    reference_to: str = ""
    external_id: bool = False
    unique: bool = False


_RO = Field("id", createable=False, updateable=False)
_TEXT = Field("string", length=255)
_USER = Field("reference", reference_to="User")


def _schema() -> dict[str, dict[str, Field]]:
    return {
        "Account": {"Id": _RO, "Name": _TEXT, "OwnerId": _USER, "AnnualRevenue": Field("currency"),
                    "Segment__c": Field("picklist", picklist=("strategic", "commercial", "smb")),
                    "Lifecycle_Stage__c": Field("picklist", picklist=("onboard", "adopt", "expand", "renew")),
                    "ARR__c": Field("currency"), "Renewal_Date__c": Field("date"), "Contract_Start__c": Field("date"),
                    "Renewal_Status__c": Field("picklist", picklist=("open", "renewed", "churned")),
                    "Health_Score__c": Field("double"), "Health_Band__c": Field("picklist"),
                    "Tier__c": _TEXT, "Seats__c": Field("int"), "Strategic__c": Field("boolean"),
                    "Last_QBR__c": Field("datetime"), "CSM__c": _USER},
        "Contact": {"Id": _RO, "AccountId": Field("reference", reference_to="Account"), "Email": Field("email"),
                    "FirstName": _TEXT, "LastName": _TEXT, "Title": _TEXT, "Phone": Field("phone"),
                    "Role__c": Field("picklist"), "Primary__c": Field("boolean")},
        "User": {"Id": _RO, "Username": _TEXT, "Email": Field("email"), "Name": replace(_TEXT, createable=False,
                 updateable=False), "Title": _TEXT, "ManagerId": _USER, "TimeZoneSidKey": Field("picklist"),
                 "IsActive": Field("boolean")},
        "Task": {"Id": _RO, "Subject": Field("combobox", length=255), "Description": Field("textarea", length=32000),
                 "Status": Field("picklist", picklist=TASK_STATUSES, restricted=True),
                 "IsClosed": Field("boolean", createable=False, updateable=False),
                 "Priority": Field("picklist", picklist=("High", "Normal", "Low"), restricted=True),
                 "ActivityDate": Field("date"), "OwnerId": _USER, "WhatId": Field("reference", reference_to="Account"),
                 "TaskSubtype": Field("picklist", picklist=("Task", "Email", "Call"), updateable=False),
                 "Csops_Key__c": Field("string", length=32, external_id=True, unique=True)},
    }


TASK_STATUSES = ("Not Started", "In Progress", "Completed", "Waiting on someone else", "Deferred")
PREFIXES = {"Account": "001", "Contact": "003", "User": "005", "Task": "00T"}
DEFAULTS: dict[str, Record] = {"Task": {"Status": "Not Started", "Priority": "Normal"}, "User": {"IsActive": True}}
REQUIRED = {"Account": ("Name",), "Contact": ("LastName",), "User": ("Username",), "Task": ()}
_VERSION = re.compile(r"v(\d+)\.\d")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"
MAX_URI = 16_384
"""The REST API's limit on the request URI and headers together, in bytes."""


def sf_id(prefix: str, n: int) -> str:
    """An 18-character id: prefix, counter, and the case-safe suffix Salesforce computes."""
    return case_safe(f"{prefix}Hx{n:010d}")


def case_safe(value: str) -> str:
    """The 18-character id a 15- or 18-character one means. The suffix encodes which of the first 15
    characters are capitals, so an 18-character id in any case means one record."""
    head, tail = value[:15], value[15:].upper()
    if tail:
        head = "".join(c.upper() if _SUFFIX.index(tail[i // 5]) >> (i % 5) & 1 else c.lower()
                       for i, c in enumerate(head))
    return head + "".join(_SUFFIX[sum(1 << i for i, c in enumerate(head[j:j + 5]) if c.isupper())]
                          for j in (0, 5, 10))


class SalesforceError(Exception):
    """An answer with Salesforce's error list."""

    def __init__(self, status: int, code: str, message: str, fields: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.status, self.code, self.fields = status, code, fields

    def response(self) -> web.Response:
        return web.json_response([{"message": str(self), "errorCode": self.code, "fields": list(self.fields)}],
                                 status=self.status)


NOT_FOUND = ("NOT_FOUND", "The requested resource does not exist")


class FakeSalesforce(FakeServer):
    """The fake org. Seed with ``add``; read ``rows``, ``tasks_created``, ``queries``.

    Args:
        faults: Fault injection (shared FakeServer base).
        client_id: The connected app's consumer key the token endpoint accepts ("" refuses all).
        client_secret: Its consumer secret.
        access_token: A token that works from the start ("" for none).
        page_size: Rows per query page before ``nextRecordsUrl``.
    """

    def __init__(self, faults: Faults | None = None, *, client_id: str = "", client_secret: str = "",
                 access_token: str = "", page_size: int = 2000) -> None:
        super().__init__(faults)
        self.schema = _schema()
        self.object_access: dict[str, dict[str, bool]] = {}
        """Per object, describe flags to override (createable, updateable, queryable...)."""
        self.rows: dict[str, dict[str, Record]] = {obj: {} for obj in self.schema}
        self.client_id, self.client_secret = client_id, client_secret
        self.tokens = {access_token} if access_token else set()
        self.tokens_issued = 0
        self.page_size = page_size
        self.queries: list[str] = []
        """Every SOQL text received, in order."""
        self.tasks_created = 0
        self.upserts_updated = 0
        self.rules: list[Rule] = []
        self.request_limit_exceeded = ""
        """When set, every data call answers 403 REQUEST_LIMIT_EXCEEDED with this message."""
        self.stalls = 0
        """How many coming data calls hang until the fake stops (for client timeouts)."""
        self.expire_tokens_at_task = 0
        """When this many Tasks exist, every token expires (a session timeout in the middle of a load)."""
        self.closed_task_statuses = {"Completed"}
        """Task Status values marked Closed (Setup > Task Fields > Status): ``IsClosed`` follows them."""
        self._released = asyncio.Event()
        self._ids = itertools.count(1)
        self._locators: dict[str, tuple[list[Record], int]] = {}

    # --- seeding and inspection --------------------------------------------------------------

    def add(self, obj: str, **values: Any) -> str:
        """Insert a record as is (no validation); returns its id."""
        record = {**DEFAULTS.get(obj, {}), **values}
        record["Id"] = case_safe(record["Id"]) if record.get("Id") else sf_id(PREFIXES[obj], next(self._ids))
        self.rows[obj][record["Id"]] = record
        return str(record["Id"])

    def add_task_status(self, value: str, *, closed: bool) -> None:
        """Add a value to the Task Status picklist, Closed or not, as an admin does in Setup."""
        status = self.schema["Task"]["Status"]
        self.schema["Task"]["Status"] = replace(status, picklist=(*status.picklist, value))
        if closed:
            self.closed_task_statuses.add(value)

    def expire_tokens(self) -> None:
        """Every token issued so far stops working (INVALID_SESSION_ID), as after a session timeout."""
        self.tokens.clear()

    def tasks(self) -> list[Record]:
        """Every Task as the API shows it."""
        return [self._view("Task", r, None) for r in self.rows["Task"].values()]

    # --- the server ---------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        # aiohttp refuses request lines over 8,190 bytes; Salesforce takes query URIs up to 16,384
        # (then 414), and the fake should answer as it does.
        app._handler_args = {"max_line_size": 2 * MAX_URI}
        app.middlewares.append(self._gate)
        app.router.add_post("/services/oauth2/token", self._token)
        app.router.add_get("/services/data/{version}/query", self._query)
        app.router.add_get("/services/data/{version}/query/{locator}", self._query_more)
        app.router.add_route("*", "/services/data/{version}/sobjects/{obj}/{ref}", self._row)
        app.router.add_route("*", "/services/data/{version}/sobjects/{obj}/{field}/{value}", self._external)

    def rate_limited(self, request: web.Request) -> web.StreamResponse:
        return web.json_response([{"message": "Too many requests; try again shortly",
                                   "errorCode": "REQUEST_LIMIT_EXCEEDED"}], status=429,
                                 headers={"Retry-After": str(self.faults.retry_after)})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        if status == 502:  # what the load balancer in front answers: HTML, not JSON
            return web.Response(text="<html><body>502 Bad Gateway</body></html>", status=502,
                                content_type="text/html")
        code, message = (("SERVER_UNAVAILABLE", "Server temporarily unavailable, retry your request") if status == 503
                         else ("UNKNOWN_EXCEPTION", "An unexpected error occurred. Please include this ErrorId if "
                               "you contact support: 1234567-89 (-1234567)"))
        return web.json_response([{"message": message, "errorCode": code}], status=status)

    @web.middleware
    async def _gate(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/services/data/"):
            return await handler(request)  # type: ignore[no-any-return]
        if len(request.raw_path) > MAX_URI:
            return web.Response(status=414, text="URI Too Long")
        if len(request.raw_path) + sum(len(k) + len(v) + 4 for k, v in request.headers.items()) > MAX_URI:
            return web.Response(status=431, text="Request Header Fields Too Large")
        if self.stalls > 0:
            self.stalls -= 1
            await self._released.wait()
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer ") or auth[7:] not in self.tokens:
            return SalesforceError(401, "INVALID_SESSION_ID", "Session expired or invalid").response()
        if self.request_limit_exceeded:
            return SalesforceError(403, "REQUEST_LIMIT_EXCEEDED", self.request_limit_exceeded).response()
        if not _VERSION.fullmatch(request.match_info.get("version", "")):
            return SalesforceError(404, *NOT_FOUND).response()
        try:
            return await handler(request)  # type: ignore[no-any-return]
        except SalesforceError as exc:
            return exc.response()

    async def __aenter__(self) -> FakeSalesforce:
        await super().__aenter__()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._released.set()
        await super().__aexit__(*exc)

    async def _token(self, request: web.Request) -> web.StreamResponse:
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response({"error": "unsupported_grant_type", "error_description": "grant type not "
                                      "supported"}, status=400)
        if not self.client_id or (form.get("client_id"), form.get("client_secret")) != (self.client_id,
                                                                                       self.client_secret):
            return web.json_response({"error": "invalid_client", "error_description": "invalid client credentials"},
                                     status=400)
        token = f"00DHx0000001!{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        self.tokens_issued += 1
        return web.json_response({"access_token": token, "instance_url": self.url, "token_type": "Bearer",
                                  "id": f"{self.url}/id/00DHx0000001AAA/005Hx0000001AAA", "issued_at": "1700000000000",
                                  "signature": secrets.token_urlsafe(16)})

    async def _row(self, request: web.Request) -> web.StreamResponse:
        obj, ref = self._object(request), request.match_info["ref"]
        if ref == "describe" and request.method == "GET":
            return web.json_response(self._describe(obj))
        record = self.rows[obj].get(ref)
        if record is None:
            raise SalesforceError(404, *NOT_FOUND)
        if request.method == "GET":
            return web.json_response(self._view(obj, record, request.query.get("fields"), request))
        if request.method == "PATCH":
            self._write(obj, record, await _body(request), create=False)
            return web.Response(status=204)
        raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed. Allowed are "
                              "GET,PATCH")

    async def _external(self, request: web.Request) -> web.StreamResponse:
        obj, value = self._object(request), request.match_info["value"]
        field = self._field(obj, request.match_info["field"], missing=(
            404, "NOT_FOUND", f"Provided external ID field does not exist or is not accessible: "
            f"{request.match_info['field']}"))
        if not self.schema[obj][field].external_id:
            raise SalesforceError(400, "INVALID_FIELD", f"Field {field} is not an External ID or indexed field for "
                                  f"{obj}")
        matches = [r for r in self.rows[obj].values() if r.get(field) == value]
        if len(matches) > 1:
            urls = [f"/services/data/{request.match_info['version']}/sobjects/{obj}/{r['Id']}" for r in matches]
            return web.json_response(urls, status=300)
        if request.method == "GET":
            if not matches:
                raise SalesforceError(404, *NOT_FOUND)
            return web.json_response(self._view(obj, matches[0], request.query.get("fields"), request))
        if request.method != "PATCH":
            raise SalesforceError(405, "METHOD_NOT_ALLOWED", f"HTTP Method '{request.method}' not allowed.")
        body = await _body(request)
        if matches:
            self._write(obj, matches[0], body, create=False)
            self.upserts_updated += 1
            if int(_VERSION.fullmatch(request.match_info["version"]).group(1)) < 46:  # type: ignore[union-attr]
                return web.Response(status=204)
            return web.json_response({"id": matches[0]["Id"], "success": True, "errors": [], "created": False})
        record = self._write(obj, {field: value}, body, create=True)
        return web.json_response({"id": record["Id"], "success": True, "errors": [], "created": True}, status=201)

    async def _query(self, request: web.Request) -> web.StreamResponse:
        text = request.query.get("q", "")
        self.queries.append(text)
        try:
            query = parse_soql(text)
        except SoqlError as exc:
            raise SalesforceError(400, exc.code, str(exc)) from None
        obj = self._object(request, query.obj, status=400, code="INVALID_TYPE")
        fields = [self._field(obj, f) for f in query.fields]
        if len(set(fields)) < len(fields):
            twice = next(f for f in fields if fields.count(f) > 1)
            raise SalesforceError(400, "MALFORMED_QUERY", f"duplicate field selected: {twice}")
        rows = [r for r in self.rows[obj].values() if all(self._matches(obj, r, c) for c in query.where)]
        if query.order:
            name, desc = self._field(obj, query.order[0]), query.order[1]
            rows.sort(key=lambda r: (r.get(name) is not None, False if r.get(name) is None else r[name]), reverse=desc)
        rows = rows[:query.limit] if query.limit is not None else rows
        views = [self._view(obj, r, ",".join(fields), request) for r in rows]
        return web.json_response(self._page(request, views, 0))

    async def _query_more(self, request: web.Request) -> web.StreamResponse:
        found = self._locators.get(request.match_info["locator"])  # reusable: a client may ask again
        if found is None:
            raise SalesforceError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return web.json_response(self._page(request, *found))

    # --- helpers ------------------------------------------------------------------------------

    def _page(self, request: web.Request, rows: list[Record], start: int) -> Record:
        end = start + self.page_size
        page: Record = {"totalSize": len(rows), "done": end >= len(rows), "records": rows[start:end]}
        if end < len(rows):
            locator = f"01gHx{next(self._ids):010d}-{end}"
            self._locators[locator] = (rows, end)
            page["nextRecordsUrl"] = f"/services/data/{request.match_info['version']}/query/{locator}"
        return page

    def _object(self, request: web.Request, name: str | None = None, status: int = 404,
                code: str = "NOT_FOUND") -> str:
        name = name if name is not None else request.match_info["obj"]
        for obj in self.schema:
            if obj.lower() == name.lower():
                return obj
        raise SalesforceError(status, code, f"sObject type '{name}' is not supported." if status == 400
                              else NOT_FOUND[1])

    def _field(self, obj: str, name: str, missing: tuple[int, str, str] | None = None) -> str:
        for field in self.schema[obj]:
            if field.lower() == name.lower():
                return field
        status, code, message = missing or (400, "INVALID_FIELD", f"No such column '{name}' on entity '{obj}'. If you "
                                            "are attempting to use a custom field, be sure to append the '__c' after "
                                            "the custom field name.")
        raise SalesforceError(status, code, message)

    def _matches(self, obj: str, record: Record, cond: Cond) -> bool:
        if isinstance(cond, AnyOf):
            return any(all(self._matches(obj, record, c) for c in option) for option in cond.options)
        field, op, value = self._field(obj, cond[0]), cond[1], cond[2]
        spec = self.schema[obj][field]
        have = _key(spec, record.get(field))
        if op in ("IN", "NOT IN"):
            found = any(have is not None and have == _operand(field, spec, v) for v in value)
            return found if op == "IN" else not found
        want = _operand(field, spec, value)
        if op in ("=", "!="):
            return bool(have == want) == (op == "=")
        if spec.type == "boolean":
            raise SalesforceError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid operator on boolean field: {field}")
        if have is None or want is None:
            return False  # a null is neither less nor more than anything
        return bool({"<": have < want, "<=": have <= want, ">": have > want, ">=": have >= want}[op])

    def _view(self, obj: str, record: Record, fields: str | None, request: web.Request | None = None) -> Record:
        names = [self._field(obj, f.strip()) for f in fields.split(",")] if fields else list(self.schema[obj])
        version = request.match_info["version"] if request is not None else "v61.0"
        out: Record = {"attributes": {"type": obj, "url": f"/services/data/{version}/sobjects/{obj}/{record['Id']}"}}
        for name in names:
            closed = record.get("Status") in self.closed_task_statuses
            out[name] = closed if (obj, name) == ("Task", "IsClosed") else record.get(name)
        return out

    def _describe(self, obj: str) -> Record:
        def field(name: str, f: Field) -> Record:
            return {"name": name, "label": name.removesuffix("__c").replace("_", " "), "type": f.type,
                    "length": f.length, "custom": name.endswith("__c"), "createable": f.createable,
                    "updateable": f.updateable, "nillable": name not in REQUIRED[obj], "externalId": f.external_id,
                    "unique": f.unique, "referenceTo": [f.reference_to] if f.reference_to else [],
                    "picklistValues": [{"value": v, "label": v, "active": True, "defaultValue": False}
                                       for v in f.picklist]}
        flags = {"createable": True, "updateable": True, "queryable": True, "retrieveable": True,
                 **self.object_access.get(obj, {})}
        return {"name": obj, "label": obj, "custom": False, **flags,
                "fields": [field(n, f) for n, f in self.schema[obj].items()]}

    def _write(self, obj: str, record: Record, body: Any, *, create: bool) -> Record:
        """Validate ``body`` against the schema and apply it to ``record``: all or nothing."""
        if not isinstance(body, dict):
            raise SalesforceError(400, "JSON_PARSER_ERROR", "Can not deserialize SObject out of START_ARRAY token")
        changes = {self._field(obj, k): v for k, v in body.items()}
        for name, value in changes.items():
            self._check_value(obj, name, value, create)
        merged = {**(DEFAULTS.get(obj, {}) if create else {}), **record, **changes}
        missing = [f for f in REQUIRED[obj] if merged.get(f) in (None, "")]
        if missing:
            raise SalesforceError(400, "REQUIRED_FIELD_MISSING", f"Required fields are missing: {missing}",
                                  tuple(missing))
        for name, spec in self.schema[obj].items():
            if spec.unique and merged.get(name) is not None:
                other = next((r for r in self.rows[obj].values() if r.get(name) == merged[name]
                              and r.get("Id") != merged.get("Id")), None)
                if other is not None:
                    raise SalesforceError(400, "DUPLICATE_VALUE", f"duplicate value found: {name} duplicates value "
                                          f"on record with id: {other['Id']}", (name,))
        for rule in self.rules:
            if message := rule(obj, merged):
                raise SalesforceError(400, "FIELD_CUSTOM_VALIDATION_EXCEPTION", message)
        if create:
            merged["Id"] = sf_id(PREFIXES[obj], next(self._ids))
            self.tasks_created += obj == "Task"
            if obj == "Task" and self.tasks_created == self.expire_tokens_at_task:
                self.expire_tokens()
        self.rows[obj][merged["Id"]] = merged
        return merged

    def _check_value(self, obj: str, name: str, value: Any, create: bool) -> None:
        spec = self.schema[obj][name]
        if not (spec.createable if create else spec.updateable):
            raise SalesforceError(400, "INVALID_FIELD_FOR_INSERT_UPDATE", f"Unable to create/update fields: {name}. "
                                  "Please check the security settings of this field and verify that it is read/write "
                                  "for your profile or permission set.", (name,))
        if value is None:
            return
        ok = {"boolean": isinstance(value, bool),
              "date": isinstance(value, str) and bool(_DATE.fullmatch(value)),
              "datetime": isinstance(value, str) and "T" in value}.get(spec.type)
        if spec.type in ("double", "currency", "percent", "int"):
            ok = isinstance(value, int | float) and not isinstance(value, bool) and (
                spec.type != "int" or float(value).is_integer())
        if ok is False or (ok is None and not isinstance(value, str)):
            raise SalesforceError(400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of {spec.type} from "
                                  f"{json.dumps(value)} value or request may be missing a required field")
        if spec.length and isinstance(value, str) and len(value) > spec.length:
            raise SalesforceError(400, "STRING_TOO_LONG", f"{name}: data value too large: {value[:40]} (max length="
                                  f"{spec.length})", (name,))
        if spec.restricted and value not in spec.picklist:
            raise SalesforceError(400, "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST", f"{name}: bad value for restricted "
                                  f"picklist field: {value}", (name,))
        if spec.reference_to:
            target = self.rows[spec.reference_to].get(value)
            if target is None:
                raise SalesforceError(400, "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id", (name,))
            if spec.reference_to == "User" and name == "OwnerId" and target.get("IsActive") is False:
                raise SalesforceError(400, "INACTIVE_OWNER_OR_USER", f"operation performed with inactive user "
                                      f"[{value}] as owner of {obj.lower()}")


_NUMBERS = ("double", "currency", "percent", "int", "long")


def _key(spec: Field, value: Any) -> Any:
    """A stored value in the form filters compare: ids case-safe, dates and date-times parsed, text
    case-folded (Salesforce compares text case-insensitively)."""
    if value is None:
        return None
    if spec.type in ("id", "reference"):
        return case_safe(value) if isinstance(value, str) and _ID.fullmatch(value) else value
    if spec.type == "date":
        return date.fromisoformat(str(value)[:10])
    if spec.type == "datetime":
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return value.casefold() if isinstance(value, str) else value


def _operand(field: str, spec: Field, value: Any) -> Any:
    """A query value in the form filters compare, or Salesforce's answer to a value of the wrong type."""
    if value is None:
        return None

    def wrong(kind: str, quotes: str = "should not be enclosed in quotes") -> SalesforceError:
        return SalesforceError(400, "INVALID_QUERY_FILTER_OPERATOR", f"value of filter criterion for field "
                               f"'{field}' must be of type {kind} and {quotes}")
    if spec.type in ("id", "reference"):
        if not (isinstance(value, str) and _ID.fullmatch(value)):
            raise SalesforceError(400, "INVALID_QUERY_FILTER_OPERATOR", f"invalid ID field: {value}")
        return case_safe(value)
    if spec.type == "boolean":
        if not isinstance(value, bool):
            raise wrong("boolean")
        return value
    if spec.type == "datetime":
        if not isinstance(value, datetime):
            raise wrong("dateTime")
        return value
    if spec.type == "date":
        if not isinstance(value, date) or isinstance(value, datetime):
            raise wrong("date")
        return value
    if spec.type in _NUMBERS:
        if not isinstance(value, float):
            raise wrong("double")
        return value
    if not isinstance(value, str):
        raise wrong("string", "should be enclosed in quotes")
    return value.casefold()


async def _body(request: web.Request) -> Any:
    try:
        return json.loads(await request.read())
    except ValueError:
        raise SalesforceError(400, "JSON_PARSER_ERROR", "Unexpected character: was expecting a JSON value") from None


# --- the SOQL subset --------------------------------------------------------------------------

class SoqlError(Exception):
    """A query Salesforce would refuse; ``code`` is its errorCode."""

    def __init__(self, message: str, code: str = "MALFORMED_QUERY") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AnyOf:
    """A bracketed OR: holds when every condition of any one option holds."""

    options: tuple[tuple[Cond, ...], ...]


Cond = tuple[str, str, Any] | AnyOf
"""(field, operator, value) with operator ``= != < <= > >=`` or ``IN``/``NOT IN`` (value a tuple), or an AnyOf."""


@dataclass(frozen=True)
class Query:
    """A parsed query."""

    fields: tuple[str, ...]
    obj: str
    where: tuple[Cond, ...]
    """Conditions all of which must hold (AND); brackets without OR are flattened into it."""
    order: tuple[str, bool] | None
    """(field, descending)."""
    limit: int | None


_ESCAPES = {"n": "\n", "N": "\n", "r": "\r", "R": "\r", "t": "\t", "T": "\t", "b": "\b", "B": "\b",
            "f": "\f", "F": "\f", '"': '"', "'": "'", "\\": "\\"}
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|-?\d+(?:\.\d+)?|!=|<=|>=|[=<>(),]")
_DATETIME = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(Z|[+-]\d{2}:\d{2})")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}(?![\w:.-])")
_OPERATORS = ("=", "!=", "<", "<=", ">", ">=")
_KEYWORDS = frozenset({"SELECT", "FROM", "WHERE", "AND", "OR", "NOT", "IN", "ORDER", "BY", "LIMIT", "ASC", "DESC",
                       "NULL", "TRUE", "FALSE"})


def _tokens(text: str) -> list[tuple[str, Any]]:
    """(kind, value) tokens: ``str`` for string literals (escapes decoded), ``date``/``datetime`` for
    unquoted date literals, ``word`` for the rest."""
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(text):
        if text[i].isspace():
            i += 1
        elif text[i] == "'":
            value, i = _literal(text, i + 1)
            out.append(("str", value))
        elif m := _DATETIME.match(text, i):
            try:
                out.append(("datetime", datetime.fromisoformat(m.group().replace("Z", "+00:00"))))
            except ValueError:
                raise SoqlError(f"invalid date time: {m.group()}") from None
            i = m.end()
        elif m := _DAY.match(text, i):
            try:
                out.append(("date", date.fromisoformat(m.group())))
            except ValueError:
                raise SoqlError(f"invalid date: {m.group()}") from None
            i = m.end()
        elif m := _WORD.match(text, i):
            out.append(("word", m.group()))
            i = m.end()
        else:
            raise SoqlError(f"unexpected token: '{text[i]}'")
    return out


def _literal(text: str, i: int) -> tuple[str, int]:
    chars: list[str] = []
    while i < len(text):
        c = text[i]
        if c == "'":
            return "".join(chars), i + 1
        if c != "\\":
            chars.append(c)
            i += 1
            continue
        nxt = text[i + 1:i + 2]
        if nxt in _ESCAPES:
            chars.append(_ESCAPES[nxt])
            i += 2
        elif nxt in "uU" and nxt and re.fullmatch(r"[0-9a-fA-F]{4}", text[i + 2:i + 6]):
            chars.append(chr(int(text[i + 2:i + 6], 16)))
            i += 6
        else:
            raise SoqlError(f"Invalid string literal '{text[:i + 2]}'. Illegal character sequence "
                            f"'\\{nxt}' in string literal.")
    raise SoqlError("unexpected end of query: a string literal is not closed")


def parse_soql(text: str) -> Query:
    """Parse the subset (module docstring): SELECT f, ... FROM o [WHERE cond] [ORDER BY f [ASC|DESC]] [LIMIT n]."""
    toks = _tokens(text)
    pos = 0

    def peek() -> str:
        return str(toks[pos][1]).upper() if pos < len(toks) and toks[pos][0] == "word" else ""

    def take(kind: str = "word", keyword: str = "") -> Any:
        nonlocal pos
        if pos >= len(toks):
            raise SoqlError(f"unexpected end of query, expecting {keyword or kind}")
        got_kind, value = toks[pos]
        if got_kind != kind or (keyword and str(value).upper() != keyword):
            raise SoqlError(f"unexpected token: '{value}'")
        pos += 1
        return value

    def name() -> str:
        value = str(take())
        if not re.fullmatch(r"[A-Za-z_]\w*", value) or value.upper() in _KEYWORDS:
            raise SoqlError(f"unexpected token: '{value}'")
        return value

    def value() -> Any:
        if pos < len(toks) and toks[pos][0] in ("str", "date", "datetime"):
            return take(toks[pos][0])
        word = str(take())
        if word.upper() in ("TRUE", "FALSE", "NULL"):
            return {"TRUE": True, "FALSE": False, "NULL": None}[word.upper()]
        try:
            return float(word)
        except ValueError:
            raise SoqlError(f"unexpected token: '{word}'") from None

    def values() -> tuple[Any, ...]:
        take(keyword="(")
        out = [value()]
        while peek() == ",":
            take()
            out.append(value())
        take(keyword=")")
        return tuple(out)

    def term() -> tuple[Cond, ...]:
        """A comparison, an IN list, or a bracketed condition, as a conjunction."""
        if peek() == "(":
            take()
            inner = condition()
            take(keyword=")")
            return inner
        field = name()
        if peek() == "NOT":
            take()
            take(keyword="IN")
            return ((field, "NOT IN", values()),)
        if peek() == "IN":
            take()
            return ((field, "IN", values()),)
        op = str(take())
        if op not in _OPERATORS:
            raise SoqlError(f"unexpected token: '{op}'")
        return ((field, op, value()),)

    def condition(top: bool = False) -> tuple[Cond, ...]:
        """Terms joined by one of AND or OR: mixing them needs brackets, in Salesforce too."""
        terms, joiner = [term()], ""
        while peek() in ("AND", "OR"):
            if joiner and peek() != joiner:
                raise SoqlError(f"unexpected token: '{toks[pos][1]}': use parentheses to mix AND and OR")
            joiner = peek()
            if joiner == "OR" and top:
                raise SoqlError("unexpected token: 'OR' (this fake takes OR only in brackets)")
            take()
            terms.append(term())
        if joiner == "OR":
            return (AnyOf(tuple(terms)),)
        return tuple(c for t in terms for c in t)

    take(keyword="SELECT")
    fields = [name()]
    while peek() == ",":
        take()
        fields.append(name())
    take(keyword="FROM")
    obj = name()
    where: tuple[Cond, ...] = ()
    if peek() == "WHERE":
        take()
        where = condition(top=True)
    order = None
    if peek() == "ORDER":
        take()
        take(keyword="BY")
        field = name()
        desc = peek() == "DESC"
        if peek() in ("ASC", "DESC"):
            take()
        order = (field, desc)
    limit = None
    if peek() == "LIMIT":
        take()
        word = str(take())
        if not word.isdigit():
            raise SoqlError(f"unexpected token: '{word}'")
        limit = int(word)
    if pos != len(toks):
        raise SoqlError(f"unexpected token: '{toks[pos][1]}'")
    return Query(tuple(fields), obj, where, order, limit)
