"""The ``sources:`` section of csops.yaml, typed: one :class:`SourceConfig` per webhook source.

The schema (schemas/config.schema.json, ``source``) checks each key's form; :func:`source_problems`
adds what it cannot say: a name that is no vendor needs ``kind``, a source other than a generic one
without a secret is refused (every delivery must be verified), a generic source needs ``map``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.language.problems import Problem, problem_at

if TYPE_CHECKING:
    from engine.config.config import Secret
    from engine.language.yamlpos import Document

__all__ = ["KINDS", "GenericMap", "GenericSignature", "SourceConfig", "parse_sources", "source_problems"]

KINDS = ("stripe", "zendesk", "intercom", "freshdesk", "typeform", "delighted", "segment", "generic")
"""The vendors csops knows, and ``generic``."""


@dataclass(frozen=True, kw_only=True)
class GenericSignature:
    """How a generic source signs a delivery (HMAC of the body, or of ``timestamp.body``)."""

    header: str
    """The header with the signature."""
    algorithm: str = "sha256"
    """sha256 or sha1."""
    encoding: str = "hex"
    """hex or base64."""
    prefix: str = ""
    """Text before the signature in the header (sha256=)."""
    timestamp_header: str = ""
    """A header with the Unix signing time; empty: the body alone is signed."""


@dataclass(frozen=True, kw_only=True)
class GenericMap:
    """Payload paths to event fields."""

    id: str
    """Path of the sender's event id."""
    type: str
    """The event type, or ``path:PATH``."""
    account_id: str
    """Path of the account id."""
    occurred_at: str = ""
    """Path of the time; empty: when received."""
    data: Mapping[str, str] = field(default_factory=dict)
    """Data field name to path."""


@dataclass(frozen=True, kw_only=True)
class SourceConfig:
    """One webhook source: ``POST /v1/sources/{name}``."""

    name: str
    """The name in the URL."""
    kind: str
    """The vendor (KINDS)."""
    secret: Secret | None = None
    """The signing or shared secret."""
    tolerance: int = 300
    """Seconds a signed timestamp may differ from now."""
    account_path: str = ""
    """Where the payload names the account; empty: the vendor's default."""
    group_key: str = "context.groupId"
    """segment: the path of the group (account) id."""
    signature: GenericSignature | None = None
    """generic: the HMAC settings (None: unsigned, refused by the config check)."""
    map: GenericMap | None = None
    """generic: the mapping."""


def parse_sources(data: Mapping[str, Any], secret: Callable[[str | None], Secret | None]) -> dict[str, SourceConfig]:
    """The typed sources of checked config data (``secret`` resolves ``${VAR}``)."""
    out = {}
    for name, raw in (data or {}).items():
        raw = dict(raw or {})
        sig = raw.get("signature")
        mapping = raw.get("map")
        out[name] = SourceConfig(
            name=name, kind=raw.get("kind", name), secret=secret(raw.get("secret")),
            tolerance=int(raw.get("tolerance", 300)), account_path=raw.get("account_path", ""),
            group_key=raw.get("group_key", "context.groupId"),
            signature=GenericSignature(**sig) if sig else None,
            map=GenericMap(**{**mapping, "data": dict(mapping.get("data") or {})}) if mapping else None)
    return out


def source_problems(doc: Document, data: Mapping[str, Any]) -> list[Problem]:
    """What the schema lets through but a source cannot work with."""
    problems: list[Problem] = []

    def report(p: tuple[str | int, ...], message: str, hint: str, key: bool = True) -> None:
        problems.append(problem_at(doc, p, "source", message, hint, key=key))

    for name, raw in (data.get("sources") or {}).items():
        raw = raw or {}
        kind = raw.get("kind", name)
        if kind not in KINDS:
            report(("sources", name), f'source "{name}" is not a vendor csops knows, so it needs a kind',
                   f"add kind: generic (with map: and signature:), or one of {', '.join(KINDS[:-1])}")
            continue
        if "secret" not in raw:
            report(("sources", name), f'source "{name}" has no secret: its deliveries could not be verified',
                   f"add secret: ${{{name.upper().replace('-', '_')}_WEBHOOK_SECRET}} (docs/sources.md says where "
                   "the vendor shows it)")
        if kind == "generic":
            for need in ("map", "signature"):
                if need not in raw:
                    report(("sources", name), f'generic source "{name}" needs {need}:',
                           "see docs/sources.md, the generic source")
        else:
            for only in ("map", "signature"):
                if only in raw:
                    report(("sources", name, only), f'{only}: is for kind: generic; {kind} has its own',
                           f"remove {only}: or write kind: generic")
    return problems
