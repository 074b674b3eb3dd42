"""How csops records map onto HubSpot CRM properties, and the value conversions both ways.

HubSpot sends and takes every property value as text. Its *date* properties hold a day: they are
written as the epoch milliseconds of midnight UTC that day (HubSpot refuses any other time of day)
and read back as ``YYYY-MM-DD`` (millisecond text is accepted on read too). Its *datetime*
properties, like a task's due time ``hs_timestamp``, hold an instant. A task's due day is written
as noon UTC, so the day shown is the same in every time zone from UTC-11 to UTC+11.

The mapping is one flat ``dict[str, str]`` (``property_map`` in csops.yaml), csops name → HubSpot
property name, over :data:`DEFAULT_MAP`:

- the account fields the playbook language knows (``name``, ``segment``, ``owner``, ``arr``...);
- ``contact.role`` and ``contact.primary``: contact properties for a contact's role and for
  "is the primary contact";
- ``task.idempotency_key`` and ``note.idempotency_key``: the task and note properties that hold
  the idempotency key (an empty name turns the remote dedupe off);
- ``fields.NAME`` and ``usage.NAME``: company properties read into ``account.fields.NAME`` /
  ``account.usage.NAME`` (``update`` may also write ``fields.NAME`` without a mapping: it goes
  to the property ``NAME``; a date scan filters only on a mapped one, which must be a date or
  datetime property);
- ``manager.OWNER``: HubSpot owners have no manager, so the manager of an owner (by owner id or
  email) is named here, by owner id or email.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time
from typing import Any

from connectors import fields
from connectors.base import Account, Contact, NewTask, PermanentError, TaskRecord

DEFAULT_MAP: dict[str, str] = {
    "name": "name",
    "segment": "csops_segment",
    "lifecycle_stage": "lifecyclestage",
    "owner": "hubspot_owner_id",
    "arr": "csops_arr",
    "renewal_date": "csops_renewal_date",
    "contract_start": "csops_contract_start",
    "renewal_status": "csops_renewal_status",
    "health_score": "csops_health_score",
    "health_band": "csops_health_band",
    "previous_health_score": "csops_previous_health_score",
    "contact.role": "csops_role",
    "contact.primary": "csops_primary_contact",
    "task.idempotency_key": "csops_idempotency_key",
    "note.idempotency_key": "csops_idempotency_key",
}
"""The mapping used where ``property_map`` says nothing; the ``csops_*`` properties are custom
ones to create in HubSpot (docs/connectors.md (HubSpot) lists them with their types)."""

ACCOUNT_FIELDS = (*fields.TEXT, *fields.INT, *fields.DATE, "arr", "owner")
_PREFIXED = re.compile(r"(fields|usage|manager)\.(.+)")
_CUSTOM = re.compile(r"fields\.([A-Za-z_][A-Za-z0-9_]*)")
CONTACT_PROPERTIES = ("email", "firstname", "lastname", "jobtitle", "phone")
TASK_PROPERTIES = ("hs_task_subject", "hs_task_status", "hs_task_priority", "hs_timestamp", "hubspot_owner_id",
                   "hs_task_body")
_STATUS_OUT = {"open": "NOT_STARTED", "completed": "COMPLETED", "closed": "COMPLETED", "cancelled": "COMPLETED"}
CANCELLED_NOTE = "Cancelled by csops, not done: "
"""HubSpot has no cancelled task status: a cancelled task is COMPLETED with this line and the reason
added to its body (``hs_task_body``), which is how csops reads it back as ``cancelled``."""
_PRIORITY_OUT = {"low": "LOW", "normal": "MEDIUM", "high": "HIGH"}
_PRIORITY_IN = {v: k for k, v in _PRIORITY_OUT.items()}


class PropertyMap:
    """The effective mapping: :data:`DEFAULT_MAP` with the configured overrides on top.

    Args:
        overrides: ``property_map`` from csops.yaml.

    Raises:
        ValueError: a key that names nothing csops knows, or an empty property name where one
            is needed.
    """

    def __init__(self, overrides: Mapping[str, str] | None = None) -> None:
        merged = {**DEFAULT_MAP, **(overrides or {})}
        for key, prop in merged.items():
            if key not in DEFAULT_MAP and not _PREFIXED.fullmatch(key):
                raise ValueError(f"property_map key {key!r} names nothing csops knows; use one of "
                                 f"{', '.join(DEFAULT_MAP)}, fields.NAME, usage.NAME or manager.OWNER")
            if not isinstance(prop, str) or (not prop and not key.endswith(".idempotency_key")):
                raise ValueError(f"property_map {key!r} needs a HubSpot property name, not {prop!r}")
        self.map = merged
        self.fields = {k[7:]: v for k, v in merged.items() if k.startswith("fields.")}
        self.usage = {k[6:]: v for k, v in merged.items() if k.startswith("usage.")}
        self.managers = {k[8:].lower(): v for k, v in merged.items() if k.startswith("manager.")}

    def key_property(self, kind: str) -> str:
        """The property of a task or note (``kind``) that holds its idempotency key ('' when off)."""
        return self.map[f"{kind}.idempotency_key"]

    # --- companies as accounts ----------------------------------------------------------------

    def company_properties(self, extra: Mapping[str, str] | None = None) -> list[str]:
        """Every company property an account read asks for."""
        names = [self.map[f] for f in ACCOUNT_FIELDS] + list(self.fields.values()) + list(self.usage.values())
        return sorted({*names, *(extra or {}).values()})

    def account(self, obj: Mapping[str, Any], extra: Mapping[str, str] | None = None) -> Account:
        """A HubSpot company object as an Account; ``extra`` adds custom fields (name → property)."""
        props: Mapping[str, Any] = obj.get("properties") or {}

        def text(name: str) -> str:
            return str(props.get(self.map[name]) or "")

        return Account(
            id=str(obj["id"]), name=text("name"), segment=text("segment"), lifecycle_stage=text("lifecycle_stage"),
            owner_id=text("owner") or None, arr=_read_number(text("arr")) or 0.0,
            renewal_date=read_date(text("renewal_date")), contract_start=read_date(text("contract_start")),
            renewal_status=text("renewal_status"), health_score=_read_int(text("health_score")),
            health_band=text("health_band"), previous_health_score=_read_int(text("previous_health_score")),
            usage={k: props.get(p) for k, p in self.usage.items()},
            fields={k: props.get(p) for k, p in {**self.fields, **(extra or {})}.items()})

    def date_property(self, name: str) -> str:
        """The company property a date scan filters on for the field ``name`` (``renewal_date``,
        ``contract_start`` or a mapped ``fields.NAME``).

        Raises:
            ValueError: not a date field, or a ``fields.NAME`` without a mapping (a scan cannot
                guess which property, or whether it holds dates).
        """
        if name in fields.DATE:
            return self.map[name]
        if m := _CUSTOM.fullmatch(name):
            if prop := self.fields.get(m.group(1)):
                return prop
            raise ValueError(f"{name} is not mapped to a HubSpot property, so a date scan cannot filter on it: add "
                             f"'{name}: <a date property of companies>' to property_map in csops.yaml")
        raise ValueError(f"{name!r} is not a date field of the account; use renewal_date, contract_start or "
                         "fields.NAME (mapped in property_map)")

    def company_update(self, changes: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, str]]:
        """The property values to PATCH for ``update_account`` changes, and the custom fields
        written (field name → property), so the account read back shows them.

        ``owner`` must already be an owner id (or '' to clear).

        Raises:
            PermanentError: an unknown field or a value of the wrong type.
        """
        out: dict[str, str] = {}
        custom: dict[str, str] = {}
        for name, value in changes.items():
            if m := _CUSTOM.fullmatch(name):
                prop = self.fields.get(m.group(1), m.group(1))
                custom[m.group(1)] = prop
                out[prop] = _custom_value(name, value)
            elif name in ("owner", "owner_id"):
                out[self.map["owner"]] = "" if value is None else str(value)
            elif name in ACCOUNT_FIELDS:
                out[self.map[name]] = _standard_value(name, value)
            else:
                raise PermanentError(f'"{name}" is not a field of the account; custom fields are fields.NAME')
        return out, custom

    # --- contacts, owners -----------------------------------------------------------------------

    def contact_properties(self) -> list[str]:
        """Every contact property a contact read asks for."""
        return [*CONTACT_PROPERTIES, self.map["contact.role"], self.map["contact.primary"]]

    def contact(self, obj: Mapping[str, Any], account_id: str) -> Contact:
        """A HubSpot contact object as a Contact of ``account_id``."""
        props: Mapping[str, Any] = obj.get("properties") or {}

        def text(prop: str) -> str:
            return str(props.get(prop) or "")

        return Contact(id=str(obj["id"]), account_id=account_id, email=text("email"), first_name=text("firstname"),
                       last_name=text("lastname"), title=text("jobtitle"), phone=text("phone"),
                       role=text(self.map["contact.role"]),
                       primary=text(self.map["contact.primary"]).lower() in ("true", "yes", "1"))

    def manager_of(self, owner_id: str, email: str) -> str | None:
        """The manager configured for an owner (by id, else by email), or None."""
        return self.managers.get(owner_id.lower()) or self.managers.get(email.lower())

    # --- tasks ------------------------------------------------------------------------------------

    def task_properties(self) -> list[str]:
        """Every task property a task read asks for."""
        return [*TASK_PROPERTIES, *([k] if (k := self.key_property("task")) else [])]

    def new_task(self, task: NewTask, key: str, now: datetime) -> dict[str, str]:
        """The properties of a task to create; ``hs_timestamp`` (required) is ``now`` without a due day."""
        _choice("priority", task.priority, _PRIORITY_OUT)
        when = datetime.combine(task.due, time(12), UTC) if task.due else now
        props = {"hs_task_subject": task.title, "hs_task_body": task.notes, "hs_task_status": "NOT_STARTED",
                 "hs_task_priority": _PRIORITY_OUT[task.priority], "hs_task_type": "TODO",
                 "hs_timestamp": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                 "hubspot_owner_id": task.assignee_id}
        if prop := self.key_property("task"):
            props[prop] = key
        return props

    def task_update(self, status: str | None, assignee_id: str | None, priority: str | None, *,
                    reason: str = "", body: str = "") -> dict[str, str]:
        """The properties to PATCH for update_task (``closed`` is written as COMPLETED; ``cancelled``
        as COMPLETED with :data:`CANCELLED_NOTE` and ``reason`` added to the task's ``body``)."""
        out: dict[str, str] = {}
        if status is not None:
            out["hs_task_status"] = _STATUS_OUT[_choice("status", status, _STATUS_OUT)]
            if status == "cancelled":
                line = CANCELLED_NOTE + (" ".join(reason.split()) or "the run ended")
                if not body.rstrip().endswith(line):  # a retried cancel adds the line once
                    out["hs_task_body"] = f"{body.rstrip()}\n\n{line}" if body.strip() else line
        if assignee_id is not None:
            out["hubspot_owner_id"] = assignee_id
        if priority is not None:
            out["hs_task_priority"] = _PRIORITY_OUT[_choice("priority", priority, _PRIORITY_OUT)]
        return out

    def task(self, obj: Mapping[str, Any], account_id: str) -> TaskRecord:
        """A HubSpot task object as a TaskRecord (any status but COMPLETED counts as open)."""
        props: Mapping[str, Any] = obj.get("properties") or {}
        status, reason = "completed" if props.get("hs_task_status") == "COMPLETED" else "open", ""
        body = str(props.get("hs_task_body") or "")
        if status == "completed" and CANCELLED_NOTE in body:
            status, reason = "cancelled", body.rsplit(CANCELLED_NOTE, 1)[1].strip()
        return TaskRecord(id=str(obj["id"]), account_id=account_id,
                          assignee_id=str(props.get("hubspot_owner_id") or ""),
                          title=str(props.get("hs_task_subject") or ""), status=status, reason=reason,
                          priority=_PRIORITY_IN.get(str(props.get("hs_task_priority") or ""), "normal"),
                          due=read_date(str(props.get("hs_timestamp") or "")))


def read_date(value: str) -> date | None:
    """A HubSpot date or datetime value (``YYYY-MM-DD``, ISO 8601 instant or epoch ms) as a UTC day."""
    value = value.strip()
    if not value:
        return None
    try:
        if value.isdigit():
            return datetime.fromtimestamp(int(value) / 1000, UTC).date()
        if len(value) == 10:
            return date.fromisoformat(value)
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC).date()
    except ValueError:
        return None  # a value HubSpot would not hold in a date property: treat as unset


def date_millis(day: date) -> str:
    """A day as HubSpot's date properties take it: epoch milliseconds of midnight UTC."""
    return str(int(datetime.combine(day, time(0), UTC).timestamp()) * 1000)


def _read_number(value: str) -> float | None:
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _read_int(value: str) -> int | None:
    number = _read_number(value)
    return int(number) if number is not None else None


def _choice(name: str, value: str, allowed: Mapping[str, str]) -> str:
    if value not in allowed:
        raise PermanentError(f"{name} must be one of {', '.join(a or '(empty)' for a in allowed)}, not {value!r}")
    return value


def _standard_value(name: str, value: Any) -> str:
    """A standard account field's value as HubSpot property text, checked as every CRM checks it."""
    typed = fields.coerce(name, value)
    if typed is None:
        return ""  # HubSpot clears a property set to the empty string
    if isinstance(typed, date):
        return date_millis(typed)
    if isinstance(typed, float):
        return _number_text(typed)
    return str(typed)


def _number_text(number: float) -> str:
    return str(int(number)) if number.is_integer() else repr(number)


def _custom_value(name: str, value: Any) -> str:
    """A custom field's value as property text: dates as ISO days, booleans as true/false, lists as
    HubSpot's ``a;b`` multi-select text."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return _number_text(float(value))
    if isinstance(value, str):
        return value
    if isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        return ";".join(value)
    raise PermanentError(f"{name}: a {type(value).__name__} cannot be stored in a HubSpot property")
