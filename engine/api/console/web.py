"""Sign-in checks, CSRF, cookies and page rendering shared by the console's routes.

Two ways to know who is there. By default a session cookie from the sign-in form (``csops_session``:
HttpOnly, SameSite=Lax, Secure when the request came over https or a proxy says so in
X-Forwarded-Proto). With ``CSOPS_CONSOLE_TRUSTED_HEADER`` set, an identity proxy in front names
the person in that header; it is believed only from the addresses in ``CSOPS_CONSOLE_TRUSTED_PROXIES``
(default loopback), and the person must still be a console user (for their role).

Every POST must carry the form field ``csrf`` equal to the session's token (trusted-header mode
and the sign-in form: equal to the ``csops_csrf`` cookie) and, when the browser sends an Origin,
come from this site's own host: anything else is 403.
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from engine.api.console import PREFIX
from engine.errors import CsopsError
from engine.store.console_auth import Person, find_user, session_person

__all__ = ["CSRF_COOKIE", "SESSION_COOKIE", "ConsoleConfig", "Forbidden", "SignInNeeded", "deps", "form",
           "is_secure", "person", "render", "set_cookie"]

SESSION_COOKIE = "csops_session"
CSRF_COOKIE = "csops_csrf"
MAX_FORM = 16_384
"""Largest form body accepted (bytes); the console's forms are a few fields."""
HERE = Path(__file__).resolve().parent


@dataclass(frozen=True, kw_only=True)
class ConsoleConfig:
    """How the console knows who is there."""

    trusted_header: str = ""
    """The header an identity proxy puts the signed-in email in ("" = off, the default)."""
    trusted_proxies: tuple[str, ...] = field(default=("127.0.0.1", "::1"))
    """Client addresses the header is believed from (the proxy's)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ConsoleConfig:
        """From CSOPS_CONSOLE_TRUSTED_HEADER and CSOPS_CONSOLE_TRUSTED_PROXIES (comma-separated)."""
        env = os.environ if env is None else env
        proxies = tuple(p.strip() for p in env.get("CSOPS_CONSOLE_TRUSTED_PROXIES", "").split(",") if p.strip())
        return cls(trusted_header=env.get("CSOPS_CONSOLE_TRUSTED_HEADER", "").strip(),
                   trusted_proxies=proxies or ("127.0.0.1", "::1"))


class SignInNeeded(CsopsError):
    """No one is signed in: the answer is the sign-in page (routes.py turns it into a redirect)."""


class Forbidden(CsopsError):
    """Signed in, but not allowed (or a POST without its CSRF token): 403 with the reason."""


def deps(request: Request) -> Any:
    """The API's parts (engine.api.Deps): store, CRM, playbooks, workflows, ingestor, calendar, clock."""
    return request.app.state.deps


def config(request: Request) -> ConsoleConfig:
    """The console's settings for this app."""
    found: ConsoleConfig = request.app.state.console
    return found


def is_secure(request: Request) -> bool:
    """Whether the browser reached us over https (directly, or through a proxy that says so)."""
    forwarded = request.headers.get("x-forwarded-proto", "").split(",")[0].strip().lower()
    return request.url.scheme == "https" or forwarded == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    """Set a console cookie: HttpOnly, SameSite=Lax, path /console, Secure over https."""
    response.set_cookie(name, value, max_age=max_age, path=PREFIX, httponly=True, samesite="lax",
                        secure=is_secure(request))


async def person(request: Request) -> Person:
    """Who is signed in.

    Raises:
        SignInNeeded: no one (or an unknown person in trusted-header mode: Forbidden).
    """
    cfg, d = config(request), deps(request)
    if cfg.trusted_header:
        host = request.client.host if request.client else ""
        email = request.headers.get(cfg.trusted_header, "").strip()
        if host not in cfg.trusted_proxies or not email:
            raise Forbidden(f"this console is served behind an identity proxy ({cfg.trusted_header}); "
                            "open it through the proxy")
        found = await find_user(d.store, email)
        if found is None:
            raise Forbidden(f"{email} is not a console user; ask an ops user to run "
                            f"`csops console user add {email} --role csm`")
        token = request.cookies.get(CSRF_COOKIE, "")
        return Person(email=found.email, name=found.name, role=found.role, crm_user=found.crm_user, csrf=token)
    token = request.cookies.get(SESSION_COOKIE, "")
    found = await session_person(d.store, token, now=datetime.now(UTC)) if token else None
    if found is None:
        raise SignInNeeded()
    return found


def same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin, else Referer)."""
    said = request.headers.get("origin") or request.headers.get("referer") or ""
    if not said:
        return True  # no header (older clients, privacy settings): the CSRF token decides alone
    if said == "null":
        return False
    return urlsplit(said).netloc.lower() == request.headers.get("host", "").lower()


async def form(request: Request, token: str) -> dict[str, str]:
    """The POSTed form's fields (first value of each), once its origin and CSRF token check out.

    Raises:
        Forbidden: another site's form, no or a wrong ``csrf`` field, or a body over MAX_FORM bytes.
    """
    if not same_origin(request):
        raise Forbidden("this form was sent from another site; use the console's own pages")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM:
            raise Forbidden(f"the form is over {MAX_FORM} bytes")
    fields = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True).items()}
    sent = fields.get("csrf", "")
    if not token or not sent or not hmac.compare_digest(sent.encode(), token.encode()):
        raise Forbidden("the form's security token is missing or out of date; reload the page and try again")
    return fields


@cache
def _env() -> Environment:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(default=True),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["when"] = lambda t: "" if t is None else t.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    env.filters["day"] = lambda t: "" if t is None else t.isoformat()[:10]
    env.filters["detail"] = _detail
    env.globals["prefix"] = PREFIX
    return env


def _detail(text: str) -> str:
    """A step's recorded result in words: a JSON object as ``key: value · ...``, anything else as it is."""
    try:
        value = json.loads(text)
    except ValueError:
        return text
    if not isinstance(value, dict):
        return text
    parts = [f"{k.replace('_', ' ')}: {', '.join(map(str, v)) if isinstance(v, list) else v}"
             for k, v in value.items() if v not in ("", None, [], {})]
    return " · ".join(parts)


def render(request: Request, name: str, who: Person | None, status: int = 200, **context: Any) -> HTMLResponse:
    """The page ``templates/name`` for ``who``; a fresh CSRF cookie is set when none is there yet."""
    csrf = who.csrf if who is not None and who.csrf else request.cookies.get(CSRF_COOKIE, "")
    fresh = ""
    if not csrf:
        csrf = fresh = secrets.token_urlsafe(32)
    page = _env().get_template(name).render(who=who, csrf=csrf, path=request.url.path,
                                            proxied=bool(config(request).trusted_header), **context)
    response = HTMLResponse(page, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY", "Referrer-Policy": "same-origin",
        "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                   "script-src 'self'; form-action 'self'; frame-ancestors 'none'"})
    if fresh:
        set_cookie(request, response, CSRF_COOKIE, fresh)
    return response
