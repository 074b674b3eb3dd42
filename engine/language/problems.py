"""Problems found in the files csops reads, and the one catalogue of the rules that find them.

Every check reports a :class:`Problem` with a position, a rule id and, where it helps, a hint;
checks collect problems and never raise, and a formatter prints them at the end (the habit of
yamllint's ``LintProblem`` and actionlint's rule ids).

Engine code builds a problem only through this module's factory (:func:`make` at a position,
:func:`problem_at` at a path of a document, :func:`file_problem` for a file that cannot be read):
it takes the severity from :data:`CATALOGUE` and refuses a rule id that is not there, so a new
rule cannot skip the catalogue, nor docs/validation.md, which lists it (tests/unit/test_rules.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Protocol

__all__ = ["ALL_RULES", "CATALOGUE", "RULES", "Located", "Problem", "Severity", "file_problem", "make",
           "problem_at", "severity_of"]

Severity = Literal["error", "warning"]

#: Every rule id, by the kind of file it is reported in, with its severity and what it catches
#: (docs/validation.md lists them all). An id is in one group only. The schema walker's rules (the
#: playbook group's ``yaml-syntax`` to ``out-of-range`` and ``schema``) are reported in every YAML
#: file checked against a schema: playbooks, csops.yaml, coverage.yaml and health.yaml; test files
#: and calendar files are read with the same YAML loader, so they can have ``yaml-syntax`` and
#: ``duplicate-key`` too.
CATALOGUE: dict[str, dict[str, tuple[Severity, str]]] = {
    "playbook": {
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
    },
    "config": {
        "secret-in-file": ("error", "a secret written out in csops.yaml instead of ${VARIABLE}"),
        "env-var": ("error", "a ${VARIABLE} that is not set or malformed, or a secret variable that is empty"),
        "calendar": ("error", "a calendar: time zone this machine does not know, a send window that closes "
                              "before it opens, a holiday that is no date"),
        "insecure-smtp": ("error", "security: none with an SMTP password to a host that is not this machine"),
    },
    "coverage": {
        "coverage-file": ("error", "the coverage file cannot be read, or is empty"),
        "fallback-owner": ("error", "a fallback owner that is not an email address"),
        "role-field": ("error", "a role field that is not owner or fields.NAME"),
        "date": ("error", "an absence date that is not YYYY-MM-DD, or ends before it starts"),
        "unknown-team": ("error", "a team (of a segment, or team:NAME in a playbook) that coverage.yaml does not "
                                  "define"),
        "unknown-role": ("error", "a role (owner_role of a segment, or role:NAME in a playbook) that coverage.yaml "
                                  "does not define"),
        "duplicate-member": ("error", "a person listed twice in one team"),
        "self-backup": ("error", "a person named as their own backup"),
    },
    "health": {
        "health-file": ("error", "the health model (or a health test file) cannot be read, or is empty"),
        "health-field": ("error", "a field source that is not an account field with a number"),
        "weights-total": ("error", "weights that do not add up to weights_total"),
        "band-order": ("error", "band cut-offs out of order (red_below must be below yellow_below)"),
        "duplicate-measure": ("error", "two measures of one name (in two buckets)"),
        "unknown-measure": ("error", "an override (or a health test case) naming a measure the model does not have"),
        "override-match": ("error", "an override that names neither a segment nor a lifecycle stage"),
        "range": ("error", "a range whose from and to are the same value"),
        "thresholds": ("error", "a threshold that never holds, or steps after one that always holds"),
        "no-weight": ("error", "every bucket or every measure of a bucket weighs 0"),
    },
    "test file": {
        "test-type": ("error", "a playbook test file, case or entry of the wrong type"),
        "test-missing": ("error", "a test file without playbook: or cases:, a case without a name or anything to "
                                  "check"),
        "test-unknown-key": ("error", "a key a test file, case or expect entry does not have"),
        "test-value": ("error", "an unknown outcome, a due that is no date, a trigger event that is not valid"),
        "test-playbook": ("error", "the playbook a test file names is missing or does not validate"),
        "calendar-type": ("error", "a test's or simulation's calendar (or one of its keys) of the wrong type"),
        "calendar-unknown-key": ("error", "a calendar key other than timezone, workdays and holidays"),
        "calendar-value": ("error", "a calendar time zone, workday or holiday that cannot be read"),
    },
    "sources": {
        "source": ("error", "a webhook source of csops.yaml that cannot work: no kind csops knows, no secret, "
                            "generic without map: or signature:, map: or signature: on a vendor kind"),
    },
}

RULES: dict[str, tuple[Severity, str]] = CATALOGUE["playbook"]
"""The playbook validator's rules (``csops validate`` on a playbook)."""
ALL_RULES: dict[str, tuple[Severity, str]] = {rule: entry for group in CATALOGUE.values()
                                              for rule, entry in group.items()}
"""Every rule id of :data:`CATALOGUE`, whatever its group."""


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
    """The rule id (a key of :data:`ALL_RULES`)."""
    message: str
    """What is wrong, in plain words."""
    severity: Severity = "error"
    """``error`` fails validation; ``warning`` only with ``--strict``."""
    hint: str = ""
    """What to do about it, when the message alone does not say."""

    def sort_key(self) -> tuple[str, int, int, str]:
        return (self.path, self.line, self.col, self.rule)


class Located(Protocol):
    """A parsed file that knows where each value is (engine.language.yamlpos.Document)."""

    path: str

    def pos(self, p: tuple[Any, ...]) -> tuple[int, int]:
        """0-based (line, col) of the value at ``p``."""

    def key_pos(self, p: tuple[Any, ...]) -> tuple[int, int]:
        """0-based (line, col) of the key of the value at ``p``."""


def severity_of(rule: str) -> Severity:
    """The rule's severity.

    Raises:
        ValueError: the rule id is not in :data:`CATALOGUE`.
    """
    try:
        return ALL_RULES[rule][0]
    except KeyError:
        raise ValueError(f"rule {rule!r} is not in the catalogue: add it to engine.language.problems.CATALOGUE "
                         "and to docs/validation.md") from None


def make(path: str, pos: tuple[int, int], rule: str, message: str, hint: str = "") -> Problem:
    """A problem with the rule's severity; ``pos`` is 0-based (line, col)."""
    return Problem(path, pos[0] + 1, pos[1] + 1, rule, message, severity_of(rule), hint)


def problem_at(doc: Located, p: tuple[Any, ...], rule: str, message: str, hint: str = "", *,
               key: bool = False) -> Problem:
    """A problem at the value at path ``p`` of ``doc`` (with ``key``, at its key)."""
    return make(doc.path, doc.key_pos(p) if key else doc.pos(p), rule, message, hint)


def file_problem(name: str, rule: str, message: str, hint: str = "") -> Problem:
    """A problem with a whole file, e.g. one that cannot be read: at 1:1."""
    return make(name, (0, 0), rule, message, hint)
