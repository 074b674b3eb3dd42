"""Problems found in playbooks, and the catalogue of rules that find them.

Every check reports a :class:`Problem` with a position, a rule id and, where it helps, a hint;
checks collect problems and never raise, and a formatter prints them at the end (the habit of
yamllint's ``LintProblem`` and actionlint's rule ids).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]

#: Every rule id with its default severity and what it catches (docs/validation.md lists them).
RULES: dict[str, tuple[Severity, str]] = {
    "yaml-syntax": ("error", "the file is not valid YAML (or not UTF-8 text)"),
    "duplicate-key": ("error", "a key appears twice in one mapping; YAML would keep the last"),
    "unquoted-template": ("error", "an unquoted {{ x }} that YAML read as a mapping"),
    "unknown-key": ("error", "a key the language does not have"),
    "unknown-value": ("error", "a value outside a closed set (priority, category, band...)"),
    "type": ("error", "a value of the wrong type"),
    "missing-key": ("error", "a required key is missing"),
    "exclusive-keys": ("error", "keys that cannot be given together"),
    "empty-value": ("error", "an empty list, mapping or text where content is needed"),
    "out-of-range": ("error", "a number outside its allowed range"),
    "id-format": ("error", "a playbook or step id that is not lower-kebab-case"),
    "step-action": ("error", "a step without an action key, or with more than one"),
    "trigger-kind": ("error", "a trigger without a kind, or with more than one"),
    "duplicate-step-id": ("error", "two steps share an id (nested steps included)"),
    "duplicate-playbook": ("error", "two files define the same playbook id"),
    "unknown-playbook": ("error", "start_playbook names a playbook that is not in the validated set"),
    "duration": ("error", "a duration that cannot be read"),
    "cron": ("error", "an invalid cron expression"),
    "timezone": ("error", "a time zone that is not an IANA name"),
    "date-field": ("error", "a contract_milestone field that is not a date field"),
    "update-field": ("error", "an update of an account field that does not exist"),
    "party": ("error", "a party (who) that is not one of the documented forms"),
    "party-context": ("error", "a party used where it cannot resolve (#channel as email recipient...)"),
    "event-type": ("error", "an event type that is not a dotted lower-case name"),
    "event-type-typo": ("warning", "a custom event type one typo away from a built-in one"),
    "expression": ("error", "an expression that does not compile"),
    "template": ("error", "a template that does not compile"),
    "braces-in-expression": ("error", "{{ }} inside an expression field"),
    "unknown-name": ("error", "a name or attribute outside the documented context"),
    "unknown-filter": ("error", "a filter or test Jinja2 does not have"),
    "step-reference": ("error", "steps.<id> that names no earlier step"),
    "constant-condition": ("error", "a condition that is always true or always false"),
    "unreachable-step": ("error", "a step after an unconditional exit"),
    "wait-for-timeout": ("error", "wait_for without timeout would wait forever"),
    "escalate-without-due": ("warning", "escalations on a task that has no due date"),
    "template-file": ("error", "an email template file that cannot be read"),
    "template-outside-folder": ("error", "an email template path that leads outside the playbook's folder"),
    "unbounded-expression": ("error", "an expression or template that would go over a documented limit"),
    "unsafe-attribute": ("error", "an attribute the sandbox refuses (__class__, _private, mro...)"),
    "schema": ("error", "anything else the JSON Schema rejects"),
    "internal-error": ("error", "the validator itself failed on this file (please report it)"),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem at one place in one file."""

    path: str
    """The file, as the user named it."""
    line: int
    """1-based line."""
    col: int
    """1-based column."""
    rule: str
    """The rule id (a key of :data:`RULES`)."""
    message: str
    """What is wrong, in plain words."""
    severity: Severity = "error"
    """``error`` fails validation; ``warning`` only with ``--strict``."""
    hint: str = ""
    """What to do about it, when the message alone does not say."""

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.rule)


def make(path: str, pos: tuple[int, int], rule: str, message: str, hint: str = "") -> Problem:
    """A problem with the rule's default severity; ``pos`` is 0-based (line, col)."""
    severity = RULES[rule][0]
    return Problem(path, pos[0] + 1, pos[1] + 1, rule, message, severity, hint)
