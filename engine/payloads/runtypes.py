"""Payloads of the PlaybookRun workflow and its activities: one input dataclass each.

Everything here crosses Temporal's data converter, so fields are plain JSON-able types. No secret
ever goes in: connectors read theirs from the environment on the worker.

No ``from __future__ import annotations`` here: the converter reads each dataclass's type hints
every time it decodes one (typing.get_type_hints, uncached), and string annotations are compiled
and evaluated anew on each call, which made decoding a payload two to four times slower. So the
annotations are real objects, and a class is defined before the classes that name it.
"""

from dataclasses import dataclass, field, fields
from typing import Any

TASK_QUEUE = "csops-playbooks"


def run_id_for(playbook: str, account_id: str, occurrence: str = "") -> str:
    """``pb:{playbook}:{account}:{occurrence}``: starting the same id twice never makes two runs."""
    return f"pb:{playbook}:{account_id}:{occurrence or 'once'}"


def as_json(value: Any) -> Any:
    """A payload dataclass as the dict Temporal's JSON converter writes for it: the same JSON, byte
    for byte (it sorts keys), for less work; any other value as it is. The converter turns a
    dataclass into a dict with ``dataclasses.asdict``, which deep-copies every value inside; in the
    workflow sandbox each of those steps also pays the sandbox's wrapped ``isinstance``. Here only
    fields that are dataclasses become dicts; dicts and lists go to the encoder as they are (it
    writes them itself, and a dataclass deeper down through ``asdict`` as before). The receiver
    decodes into its own type hint, so it still gets the dataclass."""
    cls = type(value)
    if not hasattr(cls, "__dataclass_fields__"):
        return value
    out = {}
    for name in _names(cls):
        field_value = getattr(value, name)
        # Most fields are text, numbers or None: taken as they are, without a call per field (the
        # workflow writes four or more of these per run, each field once per step).
        out[name] = field_value if type(field_value) in _PLAIN else _field_json(field_value)
    return out


_PLAIN = frozenset({str, int, float, bool, type(None)})


def _field_json(value: Any) -> Any:
    """A field's value for ``as_json``: a dict or list whose items are dataclasses (RunOutcome.steps,
    RunState.open_tasks) gets them as dicts too, as the encoder would have them through ``asdict``;
    other dicts and lists stay as they are (the encoder writes them)."""
    kind = type(value)
    if kind is dict:
        if any(hasattr(type(v), "__dataclass_fields__") for v in value.values()):
            return {k: as_json(v) for k, v in value.items()}
        return value
    if kind is list:
        if any(hasattr(type(v), "__dataclass_fields__") for v in value):
            return [as_json(v) for v in value]
        return value
    return as_json(value)


_NAMES: dict[type, tuple[str, ...]] = {}


def _names(cls: type) -> tuple[str, ...]:
    """A dataclass's field names, read once per class (``dataclasses.fields`` walks them on every call)."""
    names = _NAMES.get(cls)
    if names is None:
        names = _NAMES[cls] = tuple(f.name for f in fields(cls))
    return names


RULES = 2
"""The rules new runs start under (RunInput.rules): an input field, not a patch marker, so a run's
history carries no extra event for it."""


@dataclass(kw_only=True)
class StepResult:
    """What one step did; ``steps.<id>`` in expressions reads ``status`` and ``result``."""

    status: str
    """done, skipped, failed, timed_out, received (wait_for got its event)."""
    result: Any = None
    """The step's output: task id, message id, the event, the branch case taken..."""
    at: str = ""
    """When it finished (ISO 8601, workflow time)."""
    kind: str = ""
    """The step's kind (task, email, alert, wait...; escalate for an escalation, task_completed and
    task_closed for a task's end) for the performance report; "" in runs recorded before it."""
    planned: str = ""
    """When the step was due by the plan (ISO 8601): the deadline of a ``wait``, else the time the
    run reached the step. "On schedule" compares ``at`` with it (docs/reporting.md)."""


@dataclass(kw_only=True)
class OpenTask:
    """A task this run created and has not seen completed."""

    task_id: str
    step_id: str
    created_at: str
    """ISO 8601 workflow time of creation: escalations are measured from it."""
    escalations_done: int = 0
    """How many of the step's escalations already fired."""


@dataclass(kw_only=True)
class RunState:
    """The durable state carried across continue-as-new."""

    steps: dict[str, StepResult] = field(default_factory=dict)
    open_tasks: list[OpenTask] = field(default_factory=list)
    started_at: str = ""


@dataclass(kw_only=True)
class RunInput:
    """What a run starts with; the playbook itself is in it, so a run is pinned to its version."""

    playbook: dict[str, Any]
    """The validated playbook data (canonical form, as compiled)."""
    files: dict[str, str] = field(default_factory=dict)
    """Email template files the playbook uses, as they were read at start."""
    version: str
    """The playbook's content hash."""
    account_id: str
    """The account this run is for."""
    occurrence: str = ""
    """The entry key value of this occurrence (part of the workflow id)."""
    trigger: dict[str, Any] = field(default_factory=dict)
    """What started it: ``type`` and details (``trigger`` in expressions)."""
    calendar: dict[str, Any] = field(default_factory=dict)
    """Business calendar: ``holidays`` (ISO dates), ``workdays`` (0=Mon..6), ``timezone``."""
    resume: None | RunState = None  # noqa: RUF036 - None first: see below
    """Set when the run continues as new: what is already done. None is named first because the
    converter tries a union's types in order, and a new run (nearly every one) carries None: tried
    first, it matches at once, where RunState first raised and caught an error on every start."""
    rules: int = 1
    """The interpreter's rules the run started under, carried across continue-as-new: 2 (new runs,
    RULES) honours a pending stop before every step and wakes every wait at once; 1 is the older
    behaviour, kept for runs whose histories began before it (their input has no such field)."""
    history_limit: int = 8_000
    """Continue as new past this many history events (Temporal's hard limit is far above; the
    10,240-event budget per run leaves room for a step's worth of events after the check)."""


@dataclass(kw_only=True)
class Event:
    """An event for this account (SPEC section 8)."""

    id: str
    type: str
    account_id: str = ""
    occurred_at: str = ""
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(kw_only=True)
class RunStatus:
    """The answer of the ``status`` query."""

    current_step: str
    """The step running now ("" when none)."""
    steps: dict[str, StepResult]
    """Steps done so far."""
    open_tasks: list[str]
    """Ids of tasks this run opened that are still open."""
    outcome: str = ""
    """success, failure, neutral or cancelled, once the run ended."""
    held: str = ""
    """Set while an email waits for its send window: step, window and until when (local time)."""


@dataclass(kw_only=True)
class RunOutcome:
    """What a finished run returns."""

    outcome: str
    reason: str = ""
    steps: dict[str, StepResult] = field(default_factory=dict)


# --- activity inputs ---------------------------------------------------------------------------

@dataclass(kw_only=True)
class ContextInput:
    account_id: str


@dataclass(kw_only=True)
class ResolveInput:
    account_id: str
    party: str
    """A party as written (owner, owner.manager, role:ae, user:x@y, team:pool, #channel...)."""


@dataclass(kw_only=True)
class Recipient:
    """A resolved party: a user, a contact or a channel."""

    kind: str
    """user, contact or channel."""
    id: str = ""
    email: str = ""
    name: str = ""
    channel: str = ""
    fallback: str = ""
    """Why the party fell back to someone else ("" when it did not)."""
    path: list[str] = field(default_factory=list)
    """How the party resolved, step by step (coverage model), for the run's record."""
    data: dict[str, Any] = field(default_factory=dict)
    """The person's fields for templates (``contact`` in email steps)."""


@dataclass(kw_only=True)
class StepScope:
    """What an effect step's activity checks and renders against the account it re-reads.

    The activity loads the account (with owner, manager and contacts) and adds this, the
    workflow's part of the context: checking the conditions and rendering the texts where the
    account is read costs one activity per step instead of a context read plus the effect.
    """

    now: str
    """Workflow time, ISO 8601 (``now``; ``today`` is its date in the calendar's time zone)."""
    trigger: dict[str, Any] = field(default_factory=dict)
    run: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)
    """Earlier steps' status and result; sent only when the step's texts mention ``steps``."""
    calendar: dict[str, Any] = field(default_factory=dict)
    exit_when: str = ""
    """The playbook's exit criteria: when true the step is not done and the run exits."""
    when: str = ""
    """The step's own ``when``: when false the step is skipped."""
    people: bool = True
    """Whether the step needs the account's people (owner, manager, contacts): for its parties or
    because its texts name them. When not, the activity reads the account alone (one CRM call)."""


@dataclass(kw_only=True)
class StepOutcome:
    """What an effect activity did: ``done`` (with its result), ``skipped`` or ``exited``."""

    status: str
    result: Any = None
    detail: str = ""
    """Why it exited (the exit criteria that held)."""


def step_outcome(raw: Any) -> StepOutcome:
    """An effect activity's result, decoded as plain JSON (no result type), as a StepOutcome.

    Given ``result_type=StepOutcome`` the converter reads the class's type hints and converts field
    by field on every result; the workflow decodes four or more of these per run, so it builds the
    same value from the dict itself."""
    if isinstance(raw, StepOutcome):
        return raw
    return StepOutcome(status=raw["status"], result=raw.get("result"), detail=raw.get("detail", ""))


@dataclass(kw_only=True)
class TaskInput:
    key: str
    """Idempotency key: workflow-id/step-path."""
    account_id: str
    assignee: str
    """A party (internal person)."""
    title: str
    """A template when ``scope`` is set, else literal (as all texts below)."""
    notes: str = ""
    due: str = ""
    """ISO date or ""."""
    due_on: str = ""
    """A date expression, evaluated by the activity (when ``due`` is empty)."""
    priority: str = "normal"
    scope: StepScope | None = None


@dataclass(kw_only=True)
class TaskChangeInput:
    key: str
    task_id: str
    status: str = ""
    """open, completed, or cancelled (closed because the run ended: the task was not done)."""
    reason: str = ""
    """Why a task is cancelled (kept with the task in the CRM)."""
    assignee: str = ""
    """A party to reassign to ("" to keep)."""
    account_id: str = ""
    priority: str = ""


@dataclass(kw_only=True)
class AlertInput:
    key: str
    account_id: str
    to: list[str]
    """Parties: people (DM) and #channels."""
    text: str
    """A template when ``scope`` is set; literal (the engine's own messages) when not."""
    blocks: list[dict[str, Any]] = field(default_factory=list)
    scope: StepScope | None = None


@dataclass(kw_only=True)
class EmailInput:
    """An email step: the activity resolves the parties and renders for each recipient."""

    key: str
    account_id: str
    to: str
    """A party: one recipient or several (``contacts:ROLE``), each with its own ``contact``."""
    sender: str
    """A party."""
    subject: str
    body: str
    category: str = "operational"
    scope: StepScope | None = None


@dataclass(kw_only=True)
class WindowInput:
    """An email step with a send window, before it sends: who it goes to and the window to read."""

    key: str
    account_id: str
    to: str
    """A party, as EmailInput.to."""
    category: str = "operational"
    window: dict[str, Any] = field(default_factory=dict)
    """engine.language.sendwindow.SendWindow.as_dict()."""
    now: str = ""
    """Workflow time (ISO): the opening is the next one after it."""
    zone: str = "UTC"
    """The calendar's zone: the last fallback."""
    scope: StepScope | None = None
    """The step's ``when`` and the exit criteria: a step that would not send does not wait."""


@dataclass(kw_only=True)
class UpdateInput:
    key: str
    account_id: str
    changes: dict[str, Any]
    scope: StepScope | None = None


@dataclass(kw_only=True)
class NoteInput:
    key: str
    account_id: str
    text: str
    scope: StepScope | None = None


@dataclass(kw_only=True)
class HttpInput:
    key: str
    method: str
    url: str
    headers: dict[str, str] = field(default_factory=dict)
    json: Any = None
    account_id: str = ""
    scope: StepScope | None = None


@dataclass(kw_only=True)
class StartInput:
    key: str
    account_id: str
    playbook: str
    trigger: dict[str, Any] = field(default_factory=dict)
    scope: StepScope | None = None
