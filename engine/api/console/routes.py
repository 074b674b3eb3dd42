"""Mounting the console on the API app: static files, sign-in and sign-out, and the page routers.

Anonymous visitors get a redirect to the sign-in page (303, with where they were going), never data.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import quote

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from engine.api.console import PREFIX
from engine.api.console.web import (
    CSRF_COOKIE,
    SESSION_COOKIE,
    ConsoleConfig,
    Forbidden,
    SignInNeeded,
    config,
    deps,
    form,
    person,
    render,
    set_cookie,
)
from engine.store.console_auth import SESSION_HOURS, audit, end_session, new_session

__all__ = ["mount"]

router = APIRouter(prefix=PREFIX, include_in_schema=False)
MAX_FAILURES = 5
"""Failed sign-ins for one email within FAILURE_WINDOW after which it is refused for the rest of the window."""
FAILURE_WINDOW = timedelta(minutes=15)


def _failures(request: Request) -> dict[str, list[datetime]]:
    """Recent failed sign-ins by email, kept by the app (this process's memory: a restart forgets them)."""
    found: dict[str, list[datetime]] = request.app.state.console_failures
    return found


def _throttled(failures: dict[str, list[datetime]], email: str, now: datetime) -> bool:
    recent = [t for t in failures.get(email, []) if now - t < FAILURE_WINDOW]
    failures[email] = recent
    return len(recent) >= MAX_FAILURES


def mount(app: FastAPI, cfg: ConsoleConfig | None) -> None:
    """Add the console's routes, static files and error pages to ``app``."""
    from engine.api.console import actions, pages, pages_more

    app.state.console = cfg or ConsoleConfig.from_env()
    app.state.console_failures = {}
    app.mount(f"{PREFIX}/static", StaticFiles(directory=str(_static())), name="console-static")
    app.include_router(router)
    app.include_router(pages.router)
    app.include_router(pages_more.router)
    app.include_router(actions.router)

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, exc: SignInNeeded) -> Response:
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        if request.method != "GET":
            back = PREFIX
        return RedirectResponse(f"{PREFIX}/login?next={quote(back, safe='')}", status_code=303)

    @app.exception_handler(Forbidden)
    async def forbidden(request: Request, exc: Forbidden) -> Response:
        return render(request, "error.html", None, status=403, title="Not allowed", message=str(exc))


def _static() -> object:
    from engine.api.console.web import HERE

    return HERE / "static"


def _safe_next(target: str) -> str:
    """Only a path of the console itself (no other site, no scheme-relative //host)."""
    return target if target.startswith(PREFIX) and not target.startswith("//") and "\\" not in target else PREFIX


@router.get("/login")
async def login_page(request: Request, next: str = PREFIX) -> Response:
    if config(request).trusted_header:
        return RedirectResponse(PREFIX, status_code=303)
    return render(request, "login.html", None, next=_safe_next(next), error="")


@router.post("/login")
async def login(request: Request) -> Response:
    fields = await form(request, request.cookies.get(CSRF_COOKIE, ""))
    email, password = fields.get("email", "").strip(), fields.get("password", "")
    target = _safe_next(fields.get("next", PREFIX))
    now = datetime.now(UTC)
    key = email.lower()
    if _throttled(_failures(request), key, now):
        return render(request, "login.html", None, status=429, next=target, email=email,
                      error=f"Too many failed sign-ins for this email: try again in {FAILURE_WINDOW.seconds // 60} "
                            "minutes.")
    opened = await new_session(deps(request).store, email, password, now=now) if email and password else None
    if opened is None:
        _failures(request).setdefault(key, []).append(now)
        return render(request, "login.html", None, status=401, next=target, email=email,
                      error="That email and password do not match a console user.")
    token, who = opened
    await audit(deps(request).store, actor=who.email, action="sign_in", target=who.email, at=now)
    response = RedirectResponse(target, status_code=303)
    set_cookie(request, response, SESSION_COOKIE, token, max_age=SESSION_HOURS * 3600)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    who = await person(request)
    await form(request, who.csrf)
    token = request.cookies.get(SESSION_COOKIE, "")
    if token:
        await end_session(deps(request).store, token)
    await audit(deps(request).store, actor=who.email, action="sign_out", target=who.email)
    response = RedirectResponse(f"{PREFIX}/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path=PREFIX)
    return response
