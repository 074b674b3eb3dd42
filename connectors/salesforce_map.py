"""Which Salesforce field holds each csops field, and the conversions between their records.

The defaults below are what docs/connectors.md (Salesforce) tells admins to create; ``field_map`` in
csops.yaml overrides any of them. Keys are the names the playbook language uses for the account
(``segment``, ``arr``...), ``contact.NAME`` and ``user.NAME`` for contacts and users, ``task.key`` for
the External ID field that makes task and note creation exactly-once, and ``fields.NAME`` to give a
Salesforce field a custom-field name in playbooks. An empty value leaves an optional field unmapped.
Every Salesforce custom field (``__c``) of an account is readable as ``fields.API_NAME`` anyway.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from connectors.base import Account, Contact, NewTask, PermanentError, TaskRecord, User

ACCOUNT_FIELDS = {
    "name": "Name", "segment": "Segment__c", "lifecycle_stage": "Lifecycle_Stage__c", "owner_id": "OwnerId",
    "arr": "ARR__c", "renewal_date": "Renewal_Date__c", "contract_start": "Contract_Start__c",
    "renewal_status": "Renewal_Status__c", "health_score": "Health_Score__c", "health_band": "Health_Band__c",
    "previous_health_score": "",
}
CONTACT_FIELDS = {
    "contact.email": "Email", "contact.first_name": "FirstName", "contact.last_name": "LastName",
    "contact.title": "Title", "contact.phone": "Phone", "contact.role": "Role__c", "contact.primary": "",
}
USER_FIELDS = {
    "user.email": "Email", "user.name": "Name", "user.title": "Title", "user.manager_id": "ManagerId",
    "user.timezone": "TimeZoneSidKey", "user.active": "IsActive",
}
TASK_KEY = "task.key"
DEFAULT_TASK_KEY = "Csops_Key__c"
REQUIRED = frozenset({"name", "owner_id", "contact.email", "user.email", TASK_KEY})
"""Keys that cannot be left unmapped."""
TASK_FIELDS = ("Id", "Subject", "Status", "IsClosed", "Priority", "ActivityDate", "OwnerId", "WhatId", "Description")
"""The Task fields get_task reads."""
TASK_WRITES = ("Subject", "Description", "Status", "Priority", "ActivityDate", "OwnerId", "WhatId")
"""The Task fields tasks and notes write."""
PRIORITIES = {"low": "Low", "normal": "Normal", "high": "High"}
STATUSES = {"open": "Not Started", "completed": "Completed", "closed": "Completed"}
CANCELLED_STATUS = "Completed"
"""The Task Status a cancelled task gets by default: the standard picklist has no cancelled value and
only Completed is closed (Deferred stays open in the owner's list). ``cancelled_task_status`` picks
another value, e.g. a closed "Cancelled" the admin added."""
CANCELLED_NOTE = "Cancelled by csops, not done: "
"""Added to a cancelled task's Description with the reason: how csops reads it back as cancelled."""
HEALTH_BANDS = ("green", "yellow", "red")
SUBJECT_MAX = 255
DESCRIPTION_MAX = 32_000

_API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")
_ID = re.compile(r"[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?")
_CUSTOM = re.compile(r"fields\.([A-Za-z_][A-Za-z0-9_]*)")
_TEXT = ("name", "segment", "lifecycle_stage", "renewal_status", "health_band")
_SCORES = ("health_score", "previous_health_score")
_DATES = ("renewal_date", "contract_start")
_NUMBER_TYPES = ("double", "currency", "percent", "int", "long")
_TEXT_TYPES = ("string", "textarea", "picklist", "multipicklist", "combobox", "email", "phone", "url",
               "reference", "id", "encryptedstring")


def is_id(value: str) -> bool:
    """A Salesforce record id has 15 or 18 letters and digits; anything else cannot be one."""
    return bool(_ID.fullmatch(value))


def soql_quote(value: str) -> str:
    """``value`` as a SOQL string literal, quotes included: nothing in it can end the literal.

    Backslash goes first so that the escapes added after it are not escaped again.
    """
    out = value.replace("\\", "\\\\").replace("'", "\\'").replace('"', '\\"')
    out = out.replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t").replace("\b", "\\b").replace("\f", "\\f")
    out = "".join(f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F else c for c in out)
    return f"'{out}'"


def key_hash(idempotency_key: str) -> str:
    """The External ID value for an idempotency key: URL-safe, 32 characters, the same every time."""
    return hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True, kw_only=True)
class FieldMap:
    """The mapping in force: csops name to Salesforce API field name (``""`` when unmapped)."""

    account: dict[str, str]
    """Account fields by the playbook name (``owner_id`` for the owner)."""
    custom: dict[str, str]
    """``fields.NAME`` aliases: NAME to the Salesforce field read and written under it."""
    contact: dict[str, str]
    """Contact fields by ``contact.NAME``."""
    user: dict[str, str]
    """User fields by ``user.NAME``."""
    task_key: str
    """The Task External ID field holding the hash of the idempotency key."""

    @classmethod
    def build(cls, overrides: Mapping[str, str]) -> FieldMap:
        """The defaults with ``overrides`` applied.

        Raises:
            ValueError: an unknown key, a value that is not a Salesforce API name, or an unmapped
                required field.
        """
        merged = {**ACCOUNT_FIELDS, **CONTACT_FIELDS, **USER_FIELDS, TASK_KEY: DEFAULT_TASK_KEY}
        custom: dict[str, str] = {}
        for key, value in overrides.items():
            key = "owner_id" if key == "owner" else key
            if not isinstance(value, str) or (value and not _API_NAME.fullmatch(value)):
                raise ValueError(f"field_map.{key}: {value!r} is not a Salesforce field API name")
            if m := _CUSTOM.fullmatch(key):
                if not value:
                    raise ValueError(f"field_map.{key} needs a Salesforce field name")
                custom[m.group(1)] = value
            elif key not in merged:
                known = ", ".join(sorted(merged))
                raise ValueError(f"field_map has no key {key!r}; known keys: {known}, and fields.NAME")
            elif not value and key in REQUIRED:
                raise ValueError(f"field_map.{key} cannot be empty: csops needs that field")
            else:
                merged[key] = value
        return cls(account={k: merged[k] for k in ACCOUNT_FIELDS}, custom=custom,
                   contact={k: merged[k] for k in CONTACT_FIELDS}, user={k: merged[k] for k in USER_FIELDS},
                   task_key=merged[TASK_KEY])

    def needed(self) -> dict[str, dict[str, str]]:
        """Per sObject, each mapped Salesforce field and the csops name it serves (for check())."""
        account = {sf: k for k, sf in self.account.items() if sf}
        account.update({sf: f"fields.{k}" for k, sf in self.custom.items()})
        task = {f: "tasks" for f in (*TASK_FIELDS[1:], *TASK_WRITES)}
        return {"Account": account, "Contact": {sf: k for k, sf in self.contact.items() if sf},
                "User": {sf: k for k, sf in self.user.items() if sf}, "Task": {self.task_key: TASK_KEY, **task}}

    def contact_select(self) -> list[str]:
        """The Contact fields list_contacts reads."""
        return ["Id", "AccountId", *(f for f in self.contact.values() if f)]

    def user_select(self) -> list[str]:
        """The User fields get_user reads."""
        return ["Id", *(f for f in self.user.values() if f)]


def _text(record: Mapping[str, Any], field: str) -> str:
    value = record.get(field) if field else None
    return "" if value is None else str(value)


def _date(value: Any) -> date | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return date.fromisoformat(value[:10])
    except ValueError:
        return None


def _score(value: Any) -> int | None:
    return round(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def account_from(record: Mapping[str, Any], fm: FieldMap) -> Account:
    """An Account from a Salesforce Account record (all fields, as ``GET sobjects/Account/{id}`` gives)."""
    a = fm.account

    def get(key: str) -> Any:
        return record.get(a[key]) if a[key] else None

    arr = get("arr")
    custom = {k: v for k, v in record.items() if k.endswith("__c")}
    custom.update({alias: record.get(sf) for alias, sf in fm.custom.items()})
    return Account(id=str(record["Id"]), name=_text(record, a["name"]), segment=_text(record, a["segment"]),
                   lifecycle_stage=_text(record, a["lifecycle_stage"]), owner_id=get("owner_id") or None,
                   arr=float(arr) if isinstance(arr, int | float) else 0.0, renewal_date=_date(get("renewal_date")),
                   contract_start=_date(get("contract_start")), renewal_status=_text(record, a["renewal_status"]),
                   health_score=_score(get("health_score")), health_band=_text(record, a["health_band"]).lower(),
                   previous_health_score=_score(get("previous_health_score")), fields=custom)


def contact_from(record: Mapping[str, Any], fm: FieldMap) -> Contact:
    """A Contact from a Contact query row."""
    c = fm.contact
    return Contact(id=str(record["Id"]), account_id=_text(record, "AccountId"), email=_text(record, c["contact.email"]),
                   first_name=_text(record, c["contact.first_name"]), last_name=_text(record, c["contact.last_name"]),
                   title=_text(record, c["contact.title"]), phone=_text(record, c["contact.phone"]),
                   role=_text(record, c["contact.role"]),
                   primary=bool(record.get(c["contact.primary"])) if c["contact.primary"] else False)


def user_from(record: Mapping[str, Any], fm: FieldMap) -> User:
    """A User from a User record; an inactive user counts as away with no backup, so work falls back."""
    u = fm.user
    active = record.get(u["user.active"], True) if u["user.active"] else True
    return User(id=str(record["Id"]), email=_text(record, u["user.email"]), name=_text(record, u["user.name"]),
                title=_text(record, u["user.title"]), manager_id=_text(record, u["user.manager_id"]) or None,
                timezone=_text(record, u["user.timezone"]) or "UTC", out_of_office=active is False)


def task_from(record: Mapping[str, Any], cancelled_status: str = CANCELLED_STATUS) -> TaskRecord:
    """A TaskRecord from a Task record; any closed status (IsClosed) counts as completed, unless csops
    cancelled it (the cancelled status and :data:`CANCELLED_NOTE` in the Description)."""
    priority = _text(record, "Priority").lower()
    status, reason = "completed" if record.get("IsClosed") else "open", ""
    description = _text(record, "Description")
    if CANCELLED_NOTE in description and (status == "completed" or _text(record, "Status") == cancelled_status):
        status, reason = "cancelled", description.rsplit(CANCELLED_NOTE, 1)[1].strip()
    return TaskRecord(id=str(record["Id"]), account_id=_text(record, "WhatId"), assignee_id=_text(record, "OwnerId"),
                      title=_text(record, "Subject"), status=status, reason=reason,
                      priority=priority if priority in PRIORITIES else "normal", due=_date(record.get("ActivityDate")))


def cancelled_description(description: str, reason: str) -> str:
    """A task's Description with the cancel line added (once: a retried cancel adds nothing)."""
    line = CANCELLED_NOTE + (" ".join(reason.split()) or "the run ended")
    if description.rstrip().endswith(line):
        return description
    return (f"{description.rstrip()}\n\n{line}" if description.strip() else line)[-DESCRIPTION_MAX:]


def check_choice(name: str, value: str, allowed: Mapping[str, str]) -> str:
    """The Salesforce value for a csops choice, or PermanentError."""
    if value not in allowed:
        raise PermanentError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return allowed[value]


def task_body(task: NewTask) -> dict[str, Any]:
    """The Task fields for a new task (the same for every retry, so an upsert rewrites the same values)."""
    body: dict[str, Any] = {"Subject": task.title[:SUBJECT_MAX], "Description": task.notes[:DESCRIPTION_MAX],
                            "Status": STATUSES["open"], "Priority": check_choice("priority", task.priority, PRIORITIES),
                            "OwnerId": task.assignee_id, "WhatId": task.account_id}
    if task.due is not None:
        body["ActivityDate"] = task.due.isoformat()
    return body


def note_body(account_id: str, text: str) -> dict[str, Any]:
    """A note as a completed Task on the account: it shows in the account's activity history."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    return {"Subject": f"Note: {first}"[:SUBJECT_MAX], "Description": text[:DESCRIPTION_MAX],
            "Status": STATUSES["completed"], "Priority": PRIORITIES["normal"], "WhatId": account_id}


def account_patch(changes: Mapping[str, Any], fm: FieldMap,
                  describe: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The Account fields to PATCH for ``changes`` (owner excluded: it needs a user lookup).

    Standard names convert by their csops type; ``fields.NAME`` by the Salesforce field's type
    from ``describe`` (field name to its describe entry). An empty string clears a field.

    Raises:
        PermanentError: an unknown or unmapped name, a field the user cannot write, a bad value.
    """
    body: dict[str, Any] = {}
    for name, value in changes.items():
        if m := _CUSTOM.fullmatch(name):
            field = fm.custom.get(m.group(1), m.group(1))
            info = describe.get(field)
            if info is None:
                raise PermanentError(f"{name}: Salesforce accounts have no field {field}; create it in Setup > "
                                     "Object Manager > Account, or map it with field_map")
            if not info.get("updateable"):
                raise PermanentError(f"{name}: the integration user cannot write Account.{field}; give it Edit "
                                     "access in the field's field-level security")
            body[field] = _by_type(name, value, str(info.get("type", "")))
        elif name in fm.account and name != "owner_id":
            field = fm.account[name]
            if not field:
                raise PermanentError(f"{name} is not mapped to a Salesforce field; set field_map.{name} in csops.yaml")
            body[field] = _standard(name, value)
        else:
            raise PermanentError(f'"{name}" is not a field of the account; custom fields are fields.NAME')
    return body


def _standard(name: str, value: Any) -> Any:
    """A standard account field's value in its csops type, or PermanentError."""
    if name in _TEXT:
        if not isinstance(value, str) or (name == "name" and not value.strip()):
            raise PermanentError(f"{name}: {value!r} is not valid {'non-empty ' if name == 'name' else ''}text")
        if name == "health_band" and value and value not in HEALTH_BANDS:
            raise PermanentError(f"health_band must be one of {', '.join(HEALTH_BANDS)}, not {value!r}")
        return value or None
    if value is None or value == "":
        if name == "arr":
            raise PermanentError("arr: an empty value is not a number")
        return None
    if name in _DATES:
        return _iso_date(name, value)
    number = _number(name, value)
    if name in _SCORES and (not number.is_integer() or not 0 <= number <= 100):
        raise PermanentError(f"{name}: {value!r} is not a whole number 0-100")
    return int(number) if name in _SCORES else number


def _by_type(name: str, value: Any, sf_type: str) -> Any:
    """A value for a Salesforce field of type ``sf_type`` (describe's ``type``)."""
    if value is None or value == "":
        return False if sf_type == "boolean" else None
    if sf_type == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "yes", "1"):
            return True
        if text in ("false", "no", "0"):
            return False
        raise PermanentError(f"{name}: {value!r} is not true or false")
    if sf_type in _NUMBER_TYPES:
        number = _number(name, value)
        if sf_type in ("int", "long"):
            if not number.is_integer():
                raise PermanentError(f"{name}: {value!r} is not a whole number")
            return int(number)
        return number
    if sf_type == "date":
        return _iso_date(name, value)
    if sf_type == "datetime":
        try:
            return (value if isinstance(value, datetime) else datetime.fromisoformat(str(value).strip())).isoformat()
        except ValueError:
            raise PermanentError(f"{name}: {value!r} is not an ISO date and time") from None
    if sf_type in _TEXT_TYPES:
        return value.isoformat() if isinstance(value, date) else str(value)
    raise PermanentError(f"{name}: csops cannot write a Salesforce field of type {sf_type or 'unknown'}")


def _iso_date(name: str, value: Any) -> str:
    if isinstance(value, datetime) or not isinstance(value, date | str):
        raise PermanentError(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD)")
    try:
        return (value if isinstance(value, date) else date.fromisoformat(value.strip())).isoformat()
    except ValueError:
        raise PermanentError(f"{name}: {value!r} is not an ISO date (YYYY-MM-DD)") from None


def _number(name: str, value: Any) -> float:
    if isinstance(value, bool):
        raise PermanentError(f"{name}: {value!r} is not a number")
    try:
        number = float(value.strip() if isinstance(value, str) else value)
    except (TypeError, ValueError):
        raise PermanentError(f"{name}: {value!r} is not a number") from None
    if not math.isfinite(number):
        raise PermanentError(f"{name}: {value!r} is not a number")
    return number


def describe_problems(obj: str, described: Mapping[str, Any], fm: FieldMap) -> list[str]:
    """What the sObject's describe (``fields`` as a dict by name) says is missing, in plain words."""
    problems = []
    if not (described.get("queryable", True) and described.get("retrieveable", True)):
        problems.append(f"the integration user cannot read {obj} records: give it Read on {obj} in its profile "
                        "or permission set")
    if obj == "Task" and not (described.get("createable", True) and described.get("updateable", True)):
        problems.append("the integration user cannot create and edit Task records: give it Create and Edit on Task")
    if obj == "Account" and not described.get("updateable", True):
        problems.append("the integration user cannot edit Account records (update_account steps will fail): "
                        "give it Edit on Account")
    fields: Mapping[str, Mapping[str, Any]] = described.get("fields", {})
    written = {"Task": set(TASK_WRITES), "Account": set(fm.needed()["Account"])}.get(obj, set())
    for sf, name in fm.needed()[obj].items():
        info = fields.get(sf)
        is_key = obj == "Task" and sf == fm.task_key
        if info is None:
            create = f"create the custom field in Setup > Object Manager > {obj}, or " if sf.endswith("__c") else ""
            remap = f", or change field_map.{name} in csops.yaml" if name != "tasks" else ""
            problems.append(f"{obj} has no field {sf} (csops uses it for {name}), or the integration user cannot "
                            f"see it: {create}give the user field-level access to it{remap}")
        elif is_key and not (info.get("externalId") and info.get("unique")):
            problems.append(f"Task.{sf} must be marked External ID and Unique: csops upserts tasks by it, so that "
                            "a retried step cannot create a second task")
        elif (is_key and not info.get("createable")) or (sf in written and not info.get("updateable")):
            problems.append(f"the integration user cannot write {obj}.{sf}: give it Edit access in the field's "
                            "field-level security")
    return problems


def cancelled_status_problems(described: Mapping[str, Any], value: str) -> list[str]:
    """The Task describe's ``Status`` picklist lacks ``value`` (the status of cancelled tasks)?"""
    status: Mapping[str, Any] = (described.get("fields") or {}).get("Status") or {}
    values = [str(v.get("value")) for v in status.get("picklistValues") or () if v.get("active", True)]
    if not values or value in values:
        return []
    return [f"the Task Status picklist has no value {value!r} (crm.cancelled_task_status, given to tasks closed "
            "because their run ended): add it in Setup > Object Manager > Task > Fields > Status, marked Closed, "
            f"or set cancelled_task_status to one of {', '.join(values)}"]
