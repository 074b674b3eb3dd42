"""A loopback Pipedrive: the API v1 endpoints PipedriveCRM calls, as Pipedrive documents them
(https://developers.pipedrive.com/docs/api/v1): organizations (get, update), an organization's
persons and activities, users (get, find by email, me), activities (add, get, update) and notes
(add, list by organization).

It checks what Pipedrive checks: ``api_token`` as a query parameter (401 ``unauthorized access``
otherwise); numeric ids (404 for unknown ones); an activity's ``subject``, its ``type`` among the
activity types (call, meeting, task, deadline, email, lunch), ``due_date`` as YYYY-MM-DD, ``done`` 0
or 1, a ``user_id`` and ``org_id`` that exist; a note's ``content`` with one of org_id, person_id or
deal_id; organization custom fields by their 40-character keys. It answers in Pipedrive's envelope
``{success, data, additional_data: {pagination: {start, limit, more_items_in_collection,
next_start}}}`` and errors ``{success: false, error, errorCode}``; 429 with ``Retry-After`` and the
``x-ratelimit-*`` headers. ``created`` counts activities and notes made, server side.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, date, datetime
from typing import Any

from aiohttp import web

from tests.fakes.http import FakeServer, Faults

TOKEN = "pipedrive-test-token-0123456789abcdef"
TYPES = ("call", "meeting", "task", "deadline", "email", "lunch")
FIELD_KEY = re.compile(r"^[0-9a-f]{40}$")


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"success": False, "error": message, "errorCode": status}, status=status)


class FakePipedrive(FakeServer):
    """Organizations, persons, users, activities and notes in memory."""

    def __init__(self, faults: Faults | None = None, *, page_size: int = 100) -> None:
        super().__init__(faults)
        self.orgs: dict[int, dict[str, Any]] = {}
        self.persons: dict[int, dict[str, Any]] = {}
        self.users: dict[int, dict[str, Any]] = {}
        self.activities: dict[int, dict[str, Any]] = {}
        self.notes: dict[int, dict[str, Any]] = {}
        self.created: Counter[str] = Counter()
        self.page_size = page_size
        self._next = 100

    # --- seeding (what the account already has) ---------------------------------------------------

    def add_user(self, uid: int, email: str, name: str) -> None:
        self.users[uid] = {"id": uid, "email": email, "name": name, "active_flag": True}

    def add_org(self, oid: int, name: str, owner: int, **custom: Any) -> None:
        self.orgs[oid] = {"id": oid, "name": name, "owner_id": {"id": owner, "value": owner}, **custom}

    def add_person(self, pid: int, org: int, first: str, last: str, email: str, **custom: Any) -> None:
        self.persons[pid] = {"id": pid, "name": f"{first} {last}".strip(), "first_name": first, "last_name": last,
                             "org_id": {"value": org}, "email": [{"value": email, "primary": True, "label": "work"}],
                             "phone": [], **custom}

    def _id(self) -> int:
        self._next += 1
        return self._next

    # --- the API ------------------------------------------------------------------------------------

    def routes(self, app: web.Application) -> None:
        app.middlewares.append(self._auth)
        r = app.router
        r.add_get("/v1/users/me", self._me)
        r.add_get("/v1/users/find", self._find_user)
        r.add_get("/v1/users/{id}", self._user)
        r.add_get("/v1/organizations", self._orgs)
        r.add_get("/v1/organizations/{id}", self._org)
        r.add_put("/v1/organizations/{id}", self._update_org)
        r.add_get("/v1/organizations/{id}/persons", self._org_persons)
        r.add_get("/v1/organizations/{id}/activities", self._org_activities)
        r.add_post("/v1/activities", self._add_activity)
        r.add_get("/v1/activities/{id}", self._activity)
        r.add_put("/v1/activities/{id}", self._update_activity)
        r.add_post("/v1/notes", self._add_note)
        r.add_get("/v1/notes", self._list_notes)

    def rate_limited(self, request: web.Request) -> web.StreamResponse:
        return web.json_response({"success": False, "error": "Request over limit", "errorCode": 429}, status=429,
                                 headers={"Retry-After": str(self.faults.retry_after), "x-ratelimit-limit": "80",
                                          "x-ratelimit-remaining": "0", "x-ratelimit-reset": "2"})

    def server_error(self, request: web.Request, status: int) -> web.StreamResponse:
        return _error(status, "Internal server error")

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.query.get("api_token") != TOKEN:
            return _error(401, "unauthorized access")
        response: web.StreamResponse = await handler(request)
        return response

    @staticmethod
    def _ok(data: Any, more: bool = False, start: int = 0, limit: int = 0) -> web.Response:
        extra = {"pagination": {"start": start, "limit": limit, "more_items_in_collection": more,
                                **({"next_start": start + limit} if more else {})}}
        return web.json_response({"success": True, "data": data, "additional_data": extra})

    def _page(self, request: web.Request, items: list[dict[str, Any]]) -> web.Response:
        start = int(request.query.get("start", "0"))
        limit = min(int(request.query.get("limit", "100")), self.page_size)
        chunk = items[start:start + limit]
        return self._ok(chunk or None, more=start + limit < len(items), start=start, limit=limit)

    @staticmethod
    def _num(request: web.Request) -> int | None:
        text = request.match_info["id"]
        return int(text) if text.isdigit() else None

    async def _me(self, request: web.Request) -> web.Response:
        return self._ok(next(iter(self.users.values()), {"id": 1, "email": "api@example.com"}))

    async def _user(self, request: web.Request) -> web.Response:
        uid = self._num(request)
        return self._ok(self.users[uid]) if uid in self.users else _error(404, "User not found")

    async def _find_user(self, request: web.Request) -> web.Response:
        term = request.query.get("term", "").lower()
        by_email = request.query.get("search_by_email") == "1"
        found = [u for u in self.users.values() if (u["email"].lower() == term if by_email else term in
                                                    u["name"].lower())]
        return self._ok(found or None)

    async def _orgs(self, request: web.Request) -> web.Response:
        sort = request.query.get("sort", "")
        if sort not in ("", "id ASC", "id DESC", "name ASC"):
            return _error(400, f"Invalid sort field {sort}")
        items = sorted(self.orgs.values(), key=lambda o: o["id"] if sort != "name ASC" else o["name"],
                       reverse=sort == "id DESC")
        return self._page(request, items)

    async def _org(self, request: web.Request) -> web.Response:
        oid = self._num(request)
        return self._ok(self.orgs[oid]) if oid in self.orgs else _error(404, "Organization not found")

    async def _update_org(self, request: web.Request) -> web.Response:
        oid = self._num(request)
        if oid not in self.orgs:
            return _error(404, "Organization not found")
        body = await request.json()
        for key, value in body.items():
            if key == "owner_id":
                if value not in self.users:
                    return _error(400, f"User with id {value} not found")
                self.orgs[oid]["owner_id"] = {"id": value, "value": value}
            elif key == "name" or FIELD_KEY.match(key):
                self.orgs[oid][key] = value
            else:
                return _error(400, f"Unknown field {key}")
        return self._ok(self.orgs[oid])

    async def _org_persons(self, request: web.Request) -> web.Response:
        oid = self._num(request)
        if oid not in self.orgs:
            return _error(404, "Organization not found")
        return self._page(request, [p for p in self.persons.values() if p["org_id"]["value"] == oid])

    async def _org_activities(self, request: web.Request) -> web.Response:
        oid = self._num(request)
        if oid not in self.orgs:
            return _error(404, "Organization not found")
        done = request.query.get("done")
        items = [a for a in self.activities.values() if a["org_id"] == oid
                 and (done is None or a["done"] == (done == "1"))]
        return self._page(request, items)

    def _check_activity(self, body: dict[str, Any], creating: bool) -> str:
        if creating and not str(body.get("subject") or "").strip():
            return "Subject is required"
        if "type" in body and body["type"] not in TYPES:
            return f"Activity type {body['type']} not found"
        if body.get("due_date"):
            try:
                date.fromisoformat(str(body["due_date"]))
            except ValueError:
                return "Invalid due_date format, expected YYYY-MM-DD"
        if "done" in body and body["done"] not in (0, 1, True, False):
            return "done must be 0 or 1"
        if "user_id" in body and body["user_id"] not in self.users:
            return f"User with id {body['user_id']} not found"
        if "org_id" in body and body["org_id"] not in self.orgs:
            return f"Organization with id {body['org_id']} not found"
        return ""

    async def _add_activity(self, request: web.Request) -> web.Response:
        body = await request.json()
        problem = self._check_activity(body, creating=True)
        if problem:
            return _error(400, problem)
        aid = self._id()
        self.activities[aid] = {"id": aid, "subject": body["subject"], "type": body.get("type", "task"),
                                "due_date": body.get("due_date"), "user_id": body.get("user_id", 1),
                                "org_id": body.get("org_id"), "note": body.get("note", ""),
                                "done": bool(body.get("done", 0)),
                                "add_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")}
        self.created["activities"] += 1
        return web.json_response({"success": True, "data": self.activities[aid]}, status=201)

    async def _activity(self, request: web.Request) -> web.Response:
        aid = self._num(request)
        return self._ok(self.activities[aid]) if aid in self.activities else _error(404, "Activity not found")

    async def _update_activity(self, request: web.Request) -> web.Response:
        aid = self._num(request)
        if aid not in self.activities:
            return _error(404, "Activity not found")
        body = await request.json()
        problem = self._check_activity(body, creating=False)
        if problem:
            return _error(400, problem)
        for key in ("subject", "due_date", "user_id", "note", "type"):
            if key in body:
                self.activities[aid][key] = body[key]
        if "done" in body:
            self.activities[aid]["done"] = bool(body["done"])
        return self._ok(self.activities[aid])

    async def _add_note(self, request: web.Request) -> web.Response:
        body = await request.json()
        if not str(body.get("content") or "").strip():
            return _error(400, "Content is required")
        if not any(body.get(k) for k in ("org_id", "person_id", "deal_id", "lead_id")):
            return _error(400, "Note must be attached to a deal, person, organization or lead")
        if body.get("org_id") and body["org_id"] not in self.orgs:
            return _error(404, "Organization not found")
        nid = self._id()
        self.notes[nid] = {"id": nid, "content": body["content"], "org_id": body.get("org_id")}
        self.created["notes"] += 1
        return web.json_response({"success": True, "data": self.notes[nid]}, status=201)

    async def _list_notes(self, request: web.Request) -> web.Response:
        org = request.query.get("org_id")
        items = [n for n in self.notes.values() if org is None or str(n["org_id"]) == org]
        return self._page(request, items)
