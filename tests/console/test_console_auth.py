"""Console sign-in over HTTP (ASGI): password hashing, bad users, the lock after wrong passwords, and the
trusted-header mode behind an identity proxy."""

from __future__ import annotations

import httpx
import pytest

from engine.api.console.web import ConsoleConfig
from engine.store.console_auth import add_user, hash_password, verify_password
from tests.console.conftest import BASE, Console
from tests.console.seed import CSM, OPS
from tests.console.test_console_http import _task_of, csrf_of, sign_in


async def test_trusted_header_mode_is_off_by_default(console: Console) -> None:
    r = await console.client.get("/console", headers={"X-Forwarded-Email": OPS})
    assert r.status_code == 303
    assert ConsoleConfig.from_env({}).trusted_header == ""


async def test_trusted_header_mode_believes_the_proxy_only(console: Console) -> None:
    console.app.state.console = ConsoleConfig.from_env({"CSOPS_CONSOLE_TRUSTED_HEADER": "X-Forwarded-Email",
                                                        "CSOPS_CONSOLE_TRUSTED_PROXIES": "127.0.0.1"})
    proxied = httpx.AsyncClient(transport=httpx.ASGITransport(app=console.app, client=("127.0.0.1", 5000)),
                                base_url=BASE)
    direct = httpx.AsyncClient(transport=httpx.ASGITransport(app=console.app, client=("10.1.2.3", 5000)),
                               base_url=BASE)
    async with proxied, direct:
        ok = await proxied.get("/console/inbox", headers={"X-Forwarded-Email": CSM.upper()})
        assert ok.status_code == 200 and "Carl CSM" in ok.text
        assert "Sign out" not in ok.text  # the proxy signs people out
        assert (await direct.get("/console", headers={"X-Forwarded-Email": OPS})).status_code == 403
        unknown = await proxied.get("/console", headers={"X-Forwarded-Email": "eve@example.com"})
        assert unknown.status_code == 403 and "not a console user" in unknown.text
        assert (await proxied.get("/console")).status_code == 403
        # Actions still need the CSRF token (the cookie's, in this mode).
        task = await _task_of(console, "u-carl")
        r = await proxied.post(f"/console/tasks/{task.id}/complete", data={},
                               headers={"X-Forwarded-Email": CSM})
        assert r.status_code == 403
        r = await proxied.post(f"/console/tasks/{task.id}/complete", data={"csrf": csrf_of(ok.text)},
                               headers={"X-Forwarded-Email": CSM})
        assert r.status_code == 303


def test_passwords_are_salted_scrypt_hashes() -> None:
    one, two = hash_password("correct horse battery"), hash_password("correct horse battery")
    assert one != two and one.startswith("scrypt$16384$8$1$")
    assert verify_password("correct horse battery", one)
    assert not verify_password("correct horse batterY", one)
    assert not verify_password("anything", "") and not verify_password("x", "scrypt$bad")


@pytest.mark.parametrize(("email", "role", "password", "said"), [
    ("not-an-email", "ops", "long enough password", "not an email address"),
    ("a b@example.com", "ops", "long enough password", "not an email address"),
    ("ann@example.com", "admin", "long enough password", "ops or csm"),
    ("ann@example.com", "ops", "short", "at least 12"),
])
async def test_bad_users_are_refused_with_the_reason(console: Console, email: str, role: str, password: str,
                                                     said: str) -> None:
    with pytest.raises(ValueError, match=said):
        await add_user(console.store, email, role=role, password=password)


async def test_repeated_wrong_passwords_lock_that_email_for_a_while(console: Console) -> None:
    from engine.api.console import routes

    for _ in range(routes.MAX_FAILURES):
        assert (await sign_in(console.client, CSM, "guessing, guessing")).status_code == 401
    locked = await sign_in(console.client, CSM)  # even the right password, for the rest of the window
    assert locked.status_code == 429 and "Too many failed sign-ins" in locked.text
    assert (await sign_in(console.client, OPS)).status_code == 303  # other people are not locked out
