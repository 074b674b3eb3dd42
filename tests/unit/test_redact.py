"""connectors.redact and the places that use it: the encoded forms of a secret, log records, the
activity boundary (engine.runtime.activities.redacting) and check-config (engine.wiring.check_parts)."""

from __future__ import annotations

import base64
import logging
from pathlib import Path
from urllib.parse import quote

import pytest
from temporalio import activity
from temporalio.exceptions import ApplicationError, CancelledError

from connectors import redact
from connectors.base import PermanentError, RetryableError
from engine.config.settings import Settings
from engine.runtime.activities import _call
from engine.runtime.redaction import redacting
from engine.wiring import BuildError, Part, check_parts, register_secrets

SECRET = "Zq-unit-redact-8e1f2a"
redact.register(SECRET)


@pytest.mark.parametrize("shown", [
    SECRET, f"password={SECRET}!", quote(f"p/{SECRET}?x", safe=""), repr(f"a'{SECRET}"),
    base64.b64encode(SECRET.encode()).decode(), base64.b64encode(SECRET.encode()).decode().rstrip("="),
    base64.urlsafe_b64encode(f"??{SECRET}".encode()).decode(),
    *(base64.b64encode(f"\0{user}\0{SECRET}".encode()).decode() for user in ("", "a", "ab", "csops", "ops-team@x")),
])
def test_every_form_of_a_secret_is_redacted(shown: str) -> None:
    """As given, URL-encoded, escaped, and base64 at any alignment (AUTH PLAIN is \\0login\\0password)."""
    out = redact.redact(f"535 5.7.8 said: {shown} end")
    assert out.startswith("535 5.7.8 said: ") and out.endswith(" end") and redact.REDACTED in out
    assert SECRET not in out
    for offset in range(3):  # no run of the secret's base64 survives, at any alignment
        core = base64.b64encode(b"\0" * offset + SECRET.encode()).decode()[4:16]
        assert core not in out


def test_short_and_unregistered_values_are_left_alone() -> None:
    redact.register("abc", "")  # too short: would blank out ordinary words
    assert redact.redact("abc abcdef and an ordinary sentence") == "abc abcdef and an ordinary sentence"
    assert redact.redact_value({"k": [SECRET, 3, (f"x{SECRET}",)], SECRET: b"y"}) == {
        "k": ["[redacted]", 3, ("x[redacted]",)], "[redacted]": b"y"}


def test_log_records_are_redacted_whatever_handler_writes_them(caplog: pytest.LogCaptureFixture) -> None:
    redact.install_logging()
    redact.install_logging()  # idempotent
    caplog.set_level(logging.DEBUG)
    log = logging.getLogger("csops.test.redact")
    log.debug("token %s in args", SECRET)
    try:
        raise RuntimeError(f"server said {SECRET}")
    except RuntimeError:
        log.exception("call failed: %r", {"auth": f"Bearer {SECRET}"})
    assert SECRET not in caplog.text
    assert "token [redacted] in args" in caplog.text and "RuntimeError: server said [redacted]" in caplog.text
    assert "'Bearer [redacted]'" in caplog.text


def test_a_record_keeps_its_shape() -> None:
    """Formatters such as uvicorn's access log read ``args`` as a tuple: a record without a secret is
    untouched, one with a secret keeps its arguments (redacted, numbers as numbers)."""
    plain = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s" %d',
                              ("1.2.3.4", "GET", "/", 200), None)
    args = plain.args
    redact.RedactFilter().filter(plain)
    assert plain.args is args
    echoed = logging.LogRecord("x", logging.INFO, __file__, 1, "%s answered %d: %s", (
        "smtp", 535, RuntimeError(f"bad {SECRET}")), None)
    redact.RedactFilter().filter(echoed)
    assert echoed.args == ("smtp", 535, "bad [redacted]") and echoed.getMessage() == "smtp answered 535: bad [redacted]"


@activity.defn(name="echoing")
async def echoing(kind: str) -> str:
    if kind == "connector":
        try:
            raise OSError(f"535 login with {SECRET} failed")
        except OSError as exc:
            cause = exc
        await _call(lambda: _raise(PermanentError(f"rejected ({SECRET})", detail=f"said {SECRET}"), cause))
    if kind == "retryable":
        await _call(lambda: _raise(RetryableError(f"busy {SECRET}", retry_after=7), None))
    if kind == "plain":
        raise ValueError(f"bad {SECRET}")
    if kind == "clean":
        raise ApplicationError("nothing secret", "d", type="PermanentError", non_retryable=True)
    raise CancelledError(f"cancelled {SECRET}")


async def _raise(exc: Exception, cause: BaseException | None) -> str:
    raise exc from cause


def _chain(exc: BaseException | None) -> list[str]:
    out = []
    while exc is not None:
        out.append(str(exc))
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return out


async def test_activity_failures_are_redacted_through_the_cause_chain() -> None:
    run = redacting(echoing)
    with pytest.raises(ApplicationError) as info:
        await run("connector")
    err = info.value
    assert (err.message, err.type, err.non_retryable) == ("rejected ([redacted])", "PermanentError", True)
    assert err.details == ("said [redacted]",)
    chain = _chain(err)
    assert len(chain) == 3 and "535 login with [redacted] failed" in chain[2] and SECRET not in "".join(chain)
    assert err.__traceback__ is not None  # the stack Temporal records is kept (frames only: no values)

    with pytest.raises(ApplicationError) as info:
        await run("retryable")
    assert (info.value.message, info.value.non_retryable) == ("busy [redacted]", False)
    assert info.value.next_retry_delay is not None and info.value.next_retry_delay.total_seconds() == 7

    with pytest.raises(ApplicationError) as info:
        await run("plain")
    assert (info.value.message, info.value.type, info.value.non_retryable) == ("bad [redacted]", "ValueError", False)


async def test_failures_without_a_secret_and_cancellation_are_untouched() -> None:
    run = redacting(echoing)
    with pytest.raises(ApplicationError) as info:
        await run("clean")
    assert info.value.message == "nothing secret" and info.value.__traceback__ is not None
    with pytest.raises(CancelledError):
        await run("other")


def test_the_wrapped_activity_keeps_its_temporal_definition() -> None:
    from temporalio.activity import _Definition

    defn = _Definition.must_from_callable(redacting(echoing))
    assert defn.name == "echoing" and defn.fn is not echoing


async def test_check_config_problems_and_build_errors_are_redacted(tmp_path: Path) -> None:
    config = tmp_path / "csops.yaml"
    config.write_text('chat: {kind: slack, token: "${CANARY_CHAT_TOKEN}"}\n')
    token = "xoxb-check-config-canary-1b2c"
    settings = Settings.load(env={"CANARY_CHAT_TOKEN": token, "CSOPS_HOME": str(tmp_path)}, config_file=str(config))
    assert redact.redact(token) == token  # not known before the settings are registered
    register_secrets(settings)

    async def check() -> list[str]:
        return [f"Slack said invalid_auth for {token}"]

    async def close() -> None:
        return None

    [problems] = await check_parts([Part("chat", "slack", None, check, close)])
    assert problems == ["Slack said invalid_auth for [redacted]"]
    assert str(BuildError("chat", "slack", f"token {token} refused")) == "chat (slack): token [redacted] refused"
