"""The compiled playbook: frozen dataclasses the runtime interprets.

A playbook is compiled only after validation found no errors, so every field here holds a value
of its declared type; defaults of the language (assign: owner, priority: normal, ...) are filled
in. ``Playbook.version`` is a hash of the canonical content: formatting and comments do not
change it, any change of meaning does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.language.durations import Duration
from engine.language.parties import Party
from engine.language.sendwindow import SendWindow


@dataclass(frozen=True, kw_only=True)
class HealthDrop:
    """``health_drop``: exactly one of ``below``, ``by`` + ``within``, ``to_band`` is set."""

    kind: ClassVar[str] = "health_drop"
    below: int | None = None
    """Fires when the score crosses from >= below to < below."""
    by: int | None = None
    """Fires when the score fell by at least this many points within ``within``."""
    within: Duration | None = None
    """The window for ``by``."""
    to_band: str | None = None
    """Fires when the band worsens to this band (red or yellow)."""


@dataclass(frozen=True, kw_only=True)
class ContractMilestone:
    """``contract_milestone``: exactly one of ``days_before`` and ``days_after`` is set."""

    kind: ClassVar[str] = "contract_milestone"
    field: str
    """``renewal_date``, ``contract_start`` or ``fields.NAME``."""
    days_before: int | None = None
    """Fire this many days before the date."""
    days_after: int | None = None
    """Fire this many days after the date."""
    business_days: bool = False
    """Count business days instead of calendar days."""


@dataclass(frozen=True, kw_only=True)
class NewUsage:
    """``new_usage``: exactly one of ``feature`` and ``product`` is set ("*" = any)."""

    kind: ClassVar[str] = "new_usage"
    feature: str | None = None
    """The feature whose first use fires the trigger."""
    product: str | None = None
    """The product whose first use fires the trigger."""


@dataclass(frozen=True, kw_only=True)
class LifecycleChange:
    """``lifecycle_change``."""

    kind: ClassVar[str] = "lifecycle_change"
    to: str
    """The new stage."""
    from_stage: str | None = None
    """Only when the previous stage was this one (``from`` in YAML)."""


@dataclass(frozen=True, kw_only=True)
class EventTrigger:
    """``event``."""

    kind: ClassVar[str] = "event"
    type: str
    """The event type."""
    where: str | None = None
    """A condition on ``event``."""


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """``schedule``."""

    kind: ClassVar[str] = "schedule"
    cron: str
    """Five-field cron expression or an @alias."""
    timezone: str = "UTC"
    """IANA time zone of the cron expression."""


@dataclass(frozen=True, kw_only=True)
class Manual:
    """``manual``: started by a person."""

    kind: ClassVar[str] = "manual"


Trigger = HealthDrop | ContractMilestone | NewUsage | LifecycleChange | EventTrigger | Schedule | Manual


@dataclass(frozen=True, kw_only=True)
class Escalation:
    """One escalation of a task; exactly one of ``notify``, ``reassign``, ``priority`` is set."""

    after: Duration
    """Measured from task creation."""
    notify: Party | None = None
    """Alert this party."""
    text: str = ""
    """The alert's template (with ``notify``)."""
    reassign: Party | None = None
    """Reassign the task to this person."""
    priority: str | None = None
    """Set the task's priority."""


@dataclass(frozen=True, kw_only=True)
class Task:
    """``task``: creates a CRM task."""

    kind: ClassVar[str] = "task"
    assign: Party
    """Who gets it (default owner)."""
    title: str
    """Subject template."""
    notes: str = ""
    """Body template."""
    due: Duration | None = None
    """Due this long after creation."""
    due_on: str | None = None
    """Due on this date expression."""
    priority: str = "normal"
    """low, normal or high."""
    wait_for_completion: bool = False
    """Wait at this step until the task is completed."""
    escalate: tuple[Escalation, ...] = ()
    """Escalations, in the order written."""


@dataclass(frozen=True, kw_only=True)
class Alert:
    """``alert``: a Slack message to each party."""

    kind: ClassVar[str] = "alert"
    to: tuple[Party, ...]
    """People (DM) and #channels."""
    text: str
    """Message template."""
    blocks: tuple[Any, ...] = ()
    """Block Kit blocks; strings in them are templates."""


@dataclass(frozen=True, kw_only=True)
class Email:
    """``email``: the body is always inline here; a ``template`` file is read at compile time."""

    kind: ClassVar[str] = "email"
    to: Party
    """The recipient."""
    sender: Party
    """``from`` in YAML (default owner)."""
    subject: str
    """Subject template."""
    body: str
    """Body template (the template file's content when ``template`` was given)."""
    template: str | None = None
    """The template file as written, for the record."""
    category: str = "operational"
    """operational or marketing."""
    send_window: SendWindow | None = None
    """Only send within these days and hours in the recipient's zone (None: the calendar's default, if any)."""


@dataclass(frozen=True, kw_only=True)
class Wait:
    """``wait``: exactly one of ``duration`` and ``until`` is set."""

    kind: ClassVar[str] = "wait"
    duration: Duration | None = None
    """A durable timer of this length."""
    until: str | None = None
    """A date expression to wait until."""


@dataclass(frozen=True, kw_only=True)
class WaitFor:
    """``wait_for``: an event for this account, at most ``timeout``."""

    kind: ClassVar[str] = "wait_for"
    event: str
    """The event type."""
    timeout: Duration
    """How long to wait at most."""
    where: str | None = None
    """A condition on ``event``."""
    on_timeout: tuple[Step, ...] = ()
    """Steps run when the timeout passes."""


@dataclass(frozen=True, kw_only=True)
class Case:
    """One case of a branch."""

    when: str
    """The case's condition."""
    steps: tuple[Step, ...]
    """Its steps."""


@dataclass(frozen=True, kw_only=True)
class Branch:
    """``branch``: the first case whose ``when`` holds runs, else ``default``."""

    kind: ClassVar[str] = "branch"
    cases: tuple[Case, ...]
    """The cases in order."""
    default: tuple[Step, ...] = ()
    """Steps when no case holds."""


@dataclass(frozen=True, kw_only=True)
class Update:
    """``update``: account fields to write (values are templates when text)."""

    kind: ClassVar[str] = "update"
    account: Mapping[str, Any]
    """Field → value."""


@dataclass(frozen=True, kw_only=True)
class Note:
    """``note``: an activity on the account's timeline."""

    kind: ClassVar[str] = "note"
    text: str
    """Note template."""


@dataclass(frozen=True, kw_only=True)
class Http:
    """``http``: a webhook call."""

    kind: ClassVar[str] = "http"
    url: str
    """URL template."""
    method: str = "POST"
    """HTTP method."""
    headers: Mapping[str, str] = field(default_factory=dict)
    """Header templates."""
    json: Any = None
    """JSON body; strings are templates."""


@dataclass(frozen=True, kw_only=True)
class StartPlaybook:
    """``start_playbook``: enrol the account in another playbook."""

    kind: ClassVar[str] = "start_playbook"
    playbook: str
    """The other playbook's id."""


@dataclass(frozen=True, kw_only=True)
class Exit:
    """``exit``: end the run."""

    kind: ClassVar[str] = "exit"
    outcome: str
    """success, failure or neutral."""
    reason: str = ""
    """Reason template."""


Action = Task | Alert | Email | Wait | WaitFor | Branch | Update | Note | Http | StartPlaybook | Exit


@dataclass(frozen=True, kw_only=True)
class Step:
    """One step: its id, optional guard and error policy, and its action."""

    id: str
    """Unique in the playbook."""
    action: Action
    """What it does."""
    when: str | None = None
    """Skip the step unless this condition holds."""
    on_error: str = "fail"
    """fail or continue."""

    def children(self) -> Iterator[Step]:
        """Nested steps (branch cases, default, on_timeout), in document order."""
        act = self.action
        if isinstance(act, Branch):
            for case in act.cases:
                yield from case.steps
            yield from act.default
        elif isinstance(act, WaitFor):
            yield from act.on_timeout


@dataclass(frozen=True, kw_only=True)
class Audience:
    """Who a trigger may start a run for."""

    segments: tuple[str, ...] = ()
    """Allowed segments (empty: any)."""
    lifecycle_stages: tuple[str, ...] = ()
    """Allowed stages (empty: any)."""
    when: str | None = None
    """A condition on the account."""


@dataclass(frozen=True, kw_only=True)
class Entry:
    """Re-entry rules."""

    key: str | None = None
    """Occurrence key expression (None: the trigger's default)."""
    cooldown: Duration | None = None
    """Quiet time after a run ended."""


@dataclass(frozen=True, kw_only=True)
class ExitCriteria:
    """When a run ends early."""

    when: str | None = None
    """Condition checked before every step and on every event."""
    on_events: tuple[str, ...] = ()
    """Event types that end the run."""
    close_open_tasks: bool = False
    """Close the run's open tasks on exit."""


@dataclass(frozen=True, kw_only=True)
class Playbook:
    """A validated, compiled playbook."""

    id: str
    """The playbook id."""
    title: str
    """Human title."""
    version: str
    """Hash of the canonical content (and of email template files)."""
    triggers: tuple[Trigger, ...]
    """Any one starts a run."""
    steps: tuple[Step, ...]
    """Top-level steps."""
    description: str = ""
    """Free text."""
    enabled: bool = True
    """False: no new runs."""
    owner: Party | None = None
    """Alerted when a run fails."""
    audience: Audience = Audience()
    """Who may enter."""
    entry: Entry = Entry()
    """Re-entry rules."""
    exit: ExitCriteria = ExitCriteria()
    """Exit criteria."""
    source: str = ""
    """The file it was compiled from."""
    data: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    """The validated data it was compiled from: what a run carries, so it stays pinned to this version."""
    files: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    """Email template files as read (path as written → text)."""

    def all_steps(self) -> Iterator[Step]:
        """Every step, nested ones included, in document order."""
        stack = list(reversed(self.steps))
        while stack:
            step = stack.pop()
            yield step
            stack.extend(reversed(list(step.children())))

    def step(self, step_id: str) -> Step:
        """The step with this id; KeyError if there is none."""
        for step in self.all_steps():
            if step.id == step_id:
                return step
        raise KeyError(step_id)
