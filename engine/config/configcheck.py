"""Checking ``csops.yaml`` against ``schemas/config.schema.json``, with positions and hints.

The playbook validator's schema walker (engine.language.structure) does the structural work with the config
schema's ``$defs``; hooks here cover what a schema cannot say well: ``kind`` picks the definition of
crm, email and chat; a secret must be ``${VAR}`` with the variable set; a database URL must not
carry a password written out; hosts and unsubscribe URLs get a suggestion. ``${VAR}`` in other
values is replaced from the environment first (a whole ``${VAR}`` in a number or boolean field is
read as one). Messages never repeat a secret's value.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import date
from functools import cache
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from engine.language.problems import Problem, make, problem_at
from engine.language.schemafiles import parsed_schema, schema_file
from engine.language.structure import Hook, Walker, describe, walk_top_level
from engine.language.yamlpos import Document, Path

VAR = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
"""A whole ``${NAME}``."""
SCHEMA_FILE = schema_file("config.schema.json")
_REF = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Each secret field: what a message calls it, and the variable a hint suggests.
SECRETS: dict[tuple[str, ...], tuple[str, str]] = {
    ("crm", "token"): ("HubSpot token", "HUBSPOT_TOKEN"),
    ("crm", "access_token"): ("Salesforce access token", "SALESFORCE_ACCESS_TOKEN"),
    ("crm", "client_secret"): ("Salesforce client secret", "SALESFORCE_CLIENT_SECRET"),
    ("crm", "api_token"): ("Pipedrive API token", "PIPEDRIVE_API_TOKEN"),
    ("email", "password"): ("SMTP password", "SMTP_PASSWORD"),
    ("email", "unsubscribe", "secret"): ("unsubscribe secret", "CSOPS_UNSUBSCRIBE_SECRET"),
    ("chat", "token"): ("Slack token", "SLACK_BOT_TOKEN"),
    ("temporal", "api_key"): ("Temporal API key", "CSOPS_TEMPORAL_API_KEY"),
}
_LOOPBACK = ("localhost", "127.0.0.1", "::1")


def hide_password(url: str) -> str:
    """A database URL as messages and reprs show it: the password as ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a database URL)"


def config_schema() -> dict[str, Any]:
    """The config schema, parsed once per process."""
    return parsed_schema("config.schema.json")


@cache
def _typed_keys() -> dict[str, str]:
    """Keys whose value is a number or boolean: a whole ``${VAR}`` there is read as one."""
    schema, found = config_schema(), {}
    for node in [schema, *schema["$defs"].values()]:
        for name, sub in node.get("properties", {}).items():
            sub = schema["$defs"][sub["$ref"].rsplit("/", 1)[-1]] if "$ref" in sub else sub
            if sub.get("type") in ("integer", "number", "boolean"):
                found[name] = sub["type"]
    return found


@dataclass
class _Ctx:
    env: Mapping[str, str]
    raw: dict[Path, str]
    """What the file says at each path where ``${VAR}`` was replaced."""


def _dotted(p: Path) -> str:
    return "".join(f"[{k}]" if isinstance(k, int) else f".{k}" for k in p).lstrip(".")


def check_document(doc: Document, env: Mapping[str, str]) -> tuple[Any, list[Problem], Mapping[str, str]]:
    """Every problem of a parsed config file; the data with ``${VAR}`` replaced (secrets excepted)."""
    problems = [_syntax_hint(doc, p) for p in doc.problems]
    data = doc.data
    if data is None:
        return {}, problems, env  # an empty file (or comments only) means the defaults
    if not isinstance(data, dict):
        problems.append(problem_at(doc, (), "type", f"the configuration must be a mapping (key: value lines), "
                                   f"found {describe(data)}", "start with crm:, email:, chat: or webhooks:"))
        return None, problems, env
    ctx = _Ctx(env, {})
    problems.extend(_substitute(doc, data, (), ctx))
    schema = config_schema()
    walker = Walker(doc, _HOOKS, ctx)
    problems.extend(walk_top_level(walker, doc, data, schema, "the configuration"))
    if not problems:
        problems.extend(_cross_checks(doc, data))
    return data, list(dict.fromkeys(problems)), env


def _syntax_hint(doc: Document, problem: Problem) -> Problem:
    lines = doc.text.splitlines()
    line = lines[problem.line - 1] if problem.rule == "yaml-syntax" and 0 < problem.line <= len(lines) else ""
    if "${" in line and "{" in line.split("${", 1)[0]:
        return replace(problem, hint='inside { } quote the variable: {kind: slack, token: "${SLACK_BOT_TOKEN}"}, '
                                     "or write one key per line")
    return problem


def _substitute(doc: Document, value: Any, p: Path, ctx: _Ctx) -> list[Problem]:
    """Replace ``${VAR}`` in place in every value except secrets (their hook checks and keeps them)."""
    problems: list[Problem] = []
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in list(children):
        kp = (*p, key)
        if isinstance(item, (dict, list)):
            problems.extend(_substitute(doc, item, kp, ctx))
        elif isinstance(item, str) and "${" in item and kp not in SECRETS and not _source_secret(kp):
            ctx.raw[kp] = item
            value[key] = _expand(doc, item, kp, ctx, problems)
    return problems


def _source_secret(p: Path) -> bool:
    """sources.NAME.secret: a secret too (checked and kept as ${VAR} by its hook)."""
    return len(p) == 3 and p[0] == "sources" and p[2] == "secret"


def _expand(doc: Document, text: str, p: Path, ctx: _Ctx, problems: list[Problem]) -> Any:
    def one(match: re.Match[str]) -> str:
        name = match.group(1)
        at = doc.find(p, match.group(0))
        if not _NAME.match(name):
            problems.append(make(doc.path, at, "env-var", f'"{match.group(0)}" is not an environment variable '
                                 f"reference", "write ${NAME}: letters, digits and _, not starting with a digit"))
        elif name not in ctx.env:
            problems.append(make(doc.path, at, "env-var", f"environment variable {name} is not set (used in "
                                 f"{_dotted(p)})", f"set {name} where csops runs, or write the value in the file"))
        else:
            return ctx.env[name]
        doc.flagged.add(p)  # the schema walker stays quiet about a value already reported
        return match.group(0)

    out = _REF.sub(one, text)
    kind = _typed_keys().get(str(p[-1])) if _REF.fullmatch(text) and p in doc.values else None
    try:
        if kind == "integer" and re.fullmatch(r"[+-]?\d+", out.strip()):
            return int(out)
        if kind == "number":
            return float(out)
    except ValueError:
        pass
    if kind == "boolean" and out.strip().lower() in ("true", "false", "yes", "no", "1", "0"):
        return out.strip().lower() in ("true", "yes", "1")
    return out


def _report(walker: Walker, p: Path, rule: str, message: str, hint: str = "") -> None:
    walker.flagged.append(p)
    walker.problems.append(problem_at(walker.doc, p, rule, message, hint))


def _secret(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    what, suggested = SECRETS.get(tuple(str(k) for k in p), ("secret", "A_VARIABLE"))
    if _source_secret(p):
        what, suggested = f"{p[1]} webhook secret", f"{str(p[1]).upper().replace('-', '_')}_WEBHOOK_SECRET"
    write = f"put the {what} in an environment variable and write ${{{suggested}}}"
    match = VAR.match(value.strip()) if isinstance(value, str) else None
    if value is None or value == "":
        _report(walker, p, "secret-in-file", f"the {what} is empty", f"write ${{{suggested}}} and set that variable")
    elif match is None and isinstance(value, str) and "${" in value:
        _report(walker, p, "secret-in-file", f"the {what} must be exactly one ${{VARIABLE}} and nothing else", write)
    elif match is None:  # never repeat the value: it is the secret
        _report(walker, p, "secret-in-file", f"the {what} is written out in the file; secrets must come from "
                "environment variables", write)
    elif match.group(1) not in walker.ctx.env:
        _report(walker, p, "env-var", f"environment variable {match.group(1)} is not set (used for the {what} "
                f"at {_dotted(p)})", f"set {match.group(1)} where csops runs (the worker and csops check-config)")
    elif not walker.ctx.env[match.group(1)].strip():
        _report(walker, p, "env-var", f"environment variable {match.group(1)} is empty (used for the {what} "
                f"at {_dotted(p)})", f"set {match.group(1)} to the {what}")


def _kinded(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    """crm, email and chat: ``kind`` picks the definition to check the rest against."""
    section = str(p[-1])
    branches = {ref["$ref"].rsplit("/", 1)[-1].split("_", 1)[1]: ref["$ref"].rsplit("/", 1)[-1]
                for ref in schema["oneOf"]}
    default = next(iter(branches))
    if not isinstance(value, dict):
        walker.check_type(value, {"type": "object"}, p)
        return
    kind = value.get("kind", default)
    if not isinstance(kind, str) or kind not in branches:
        near = difflib.get_close_matches(str(kind).lower(), list(branches), n=1, cutoff=0.5)
        walker.report((*p, "kind"), "unknown-value", f"{section} kind must be one of {', '.join(branches)}; found "
                      f"{describe(kind)}", f'did you mean "{near[0]}"?' if near else "")
        return
    definition = walker.defs[branches[kind]]
    strays = set(value) - set(definition["properties"])
    owners = [k for k, name in branches.items() if strays and strays <= set(walker.defs[name]["properties"])]
    if "kind" not in value and owners:
        walker.report(p, "missing-key", f'{section} is missing "kind" (without it, it is {default})',
                      f"add kind: {owners[0]}", key=True)
        return
    walker.walk(value, definition, p, branches[kind])


def _database_url(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p):
        return
    raw = walker.ctx.raw.get(p, value)
    userinfo = re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://([^@/?#]*)@", raw)
    password = userinfo.group(1).partition(":")[2] if userinfo else ""
    if password and not VAR.match(password):
        _report(walker, p, "secret-in-file", "the database password is written out in the file; secrets must come "
                "from environment variables", "write it as postgresql+psycopg://user:${PGPASSWORD}@host/db, or put "
                "the whole URL in a variable: database_url: ${CSOPS_DATABASE_URL}")
        return
    try:
        make_url(value)
    except ArgumentError:
        walker.report(p, "schema", f"{p[-1]} is not a database URL",
                      "e.g. sqlite:///.csops/csops.db or postgresql+psycopg://csops@db.example.com:5432/csops")


def _unsubscribe_url(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p):
        return
    if not value.startswith("https://"):
        walker.report(p, "schema", f'url "{value}" is not an https:// address', "write https://example.com/u/{token}")
    elif "{token}" not in value:
        walker.report(p, "schema", "url must contain {token}, where each recipient's signed token goes",
                      f"e.g. {value.rstrip('/')}/{{token}}")


def _host(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p):
        return
    if not re.match(schema["pattern"], value):
        host = urlsplit(value if "://" in value else "//" + value).netloc.rpartition("@")[2]
        fits = host and host != value and re.match(schema["pattern"], host)
        walker.report(p, "schema", f'"{value}" is not a host name',
                      f'did you mean "{host}"?' if fits else "write a host such as hooks.example.com, or "
                      "*.example.org for all its subdomains (no scheme or path)")
        return
    from connectors.netguard import HostRule  # the webhook connector's own reading of an entry

    try:
        HostRule.parse(value)
    except ValueError as exc:
        walker.report(p, "schema", str(exc).split(": ", 1)[-1])


def _network(walker: Walker, value: Any, p: Path, schema: dict[str, Any]) -> None:
    if not walker.check_type(value, schema, p):
        return
    from connectors.netguard import parse_network

    try:
        parse_network(value)
    except ValueError as exc:
        if "not an address" in str(exc):
            walker.report(p, "schema", f'"{value}" is not an address range', "write it in CIDR form: 10.20.0.0/16")
        else:
            walker.report(p, "schema", str(exc))


_HOOKS: dict[str, Hook] = {"secret": _secret, "crm": _kinded, "email": _kinded, "chat": _kinded,
                           "database_url": _database_url, "unsubscribe_url": _unsubscribe_url, "host_pattern": _host,
                           "network": _network}


def _calendar_problems(doc: Document, data: dict[str, Any]) -> list[Problem]:
    """What the schema's patterns let through but the calendar cannot count with: an unknown zone, a
    holiday that is no date (2027-02-30)."""
    cal = data.get("calendar") or {}
    problems = []
    zone = cal.get("timezone")
    if isinstance(zone, str):
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(problem_at(doc, ("calendar", "timezone"), "calendar",
                                       f"calendar.timezone {zone!r} is not a time zone this machine knows",
                                       "write an IANA name such as Europe/Berlin or America/New_York"))
    hours = (cal.get("send_window") or {}).get("hours") if isinstance(cal.get("send_window"), dict) else None
    if isinstance(hours, str) and hours.partition("-")[2] <= hours.partition("-")[0]:
        problems.append(problem_at(doc, ("calendar", "send_window", "hours"), "calendar",
                                   f"calendar.send_window hours {hours} close before they open",
                                   "write the opening first, e.g. 09:00-17:00 (a window cannot span midnight)"))
    for i, day in enumerate(cal.get("holidays") or ()):
        try:
            date.fromisoformat(str(day))
        except ValueError:
            problems.append(problem_at(doc, ("calendar", "holidays", i), "calendar",
                                       f"calendar.holidays: {day!r} is not a date", 'write "YYYY-MM-DD"'))
    return problems


def _cross_checks(doc: Document, data: dict[str, Any]) -> list[Problem]:
    calendar = _calendar_problems(doc, data)
    if calendar:
        return calendar
    from engine.config.sourceconfig import source_problems

    sources = source_problems(doc, data)
    if sources:
        return sources
    email = data.get("email") or {}
    if email.get("kind") == "smtp" and email.get("security") == "none" and email.get("username") \
            and email.get("host") not in _LOOPBACK:
        return [problem_at(doc, ("email", "security"), "insecure-smtp",
                           f"security: none would send the SMTP password unencrypted to {email['host']}",
                           "use security: starttls (port 587) or tls (port 465); none is only for a relay on this "
                           "machine")]
    return []
