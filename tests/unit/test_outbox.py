"""The email and chat outboxes: real files, read back the way a person or a test would."""

from __future__ import annotations

import asyncio
import hashlib
import json
import multiprocessing
from pathlib import Path

import pytest

from connectors.base import Chat, ChatMessage, Mailer, OutgoingEmail, PermanentError
from connectors.outbox import ChatOutbox, EmailOutbox


def email(**kw: object) -> OutgoingEmail:
    fields: dict[str, object] = {"to": ("ann@acme.test",), "sender": "cara@example.com", "sender_name": "Cara CSM",
                                 "subject": "Your renewal – next steps", "body": "Hi Ann,\n\nLet's talk.\n"}
    return OutgoingEmail(**{**fields, **kw})  # type: ignore[arg-type]


def test_outboxes_are_connectors(tmp_path: Path) -> None:
    mailer: Mailer = EmailOutbox(tmp_path / "mail")  # mypy checks the Protocols
    chat: Chat = ChatOutbox(tmp_path / "chat.jsonl")
    assert mailer and chat


async def test_email_is_written_as_parseable_eml(tmp_path: Path) -> None:
    outbox = EmailOutbox(tmp_path / "mail")
    message_id = await outbox.send(email(to=("ann@acme.test", "zed@acme.test"), category="marketing"), "wf-1/email")
    digest = hashlib.sha256(b"wf-1/email").hexdigest()[:32]
    assert message_id == f"<{digest}@csops.local>"
    assert [p.name for p in (tmp_path / "mail").iterdir()] == [f"{digest}.eml"]
    raw = (tmp_path / "mail" / f"{digest}.eml").read_bytes()
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")  # RFC 5322 line ends throughout
    [msg] = outbox.messages()
    assert msg["Message-ID"] == message_id
    assert msg["From"] == "Cara CSM <cara@example.com>"
    assert [a.addr_spec for a in msg["To"].addresses] == ["ann@acme.test", "zed@acme.test"]
    assert msg["Subject"] == "Your renewal – next steps"  # non-ASCII survives the encoded-word round trip
    assert msg["Date"] is not None
    assert msg["X-Csops-Category"] == "marketing"
    assert msg["X-Csops-Idempotency-Key"] == "wf-1/email"
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().replace("\r\n", "\n") == "Hi Ann,\n\nLet's talk.\n"


async def test_message_id_is_deterministic_across_instances(tmp_path: Path) -> None:
    a = await EmailOutbox(tmp_path / "one").send(email(), "wf-2/email")
    b = await EmailOutbox(tmp_path / "two").send(email(subject="other"), "wf-2/email")
    assert a == b == EmailOutbox.message_id("wf-2/email")
    assert a != EmailOutbox.message_id("wf-2/email-2")


async def test_repeated_key_writes_one_file(tmp_path: Path) -> None:
    outbox = EmailOutbox(tmp_path / "mail")
    first = await outbox.send(email(), "wf-3/email")
    results = await asyncio.gather(*(outbox.send(email(subject="Changed"), "wf-3/email") for _ in range(5)))
    assert set(results) == {first}
    [msg] = outbox.messages()
    assert msg["Subject"] == "Your renewal – next steps"  # the first send's file stands
    await outbox.send(email(), "wf-3/email-2")
    assert len(outbox.messages()) == 2
    assert not list((tmp_path / "mail").glob("*.tmp"))  # no temp file left behind


@pytest.mark.parametrize("bad", [
    {"subject": "Hello\r\nBcc: victim@example.com"},
    {"subject": "Hello\nthere"},
    {"to": ("ann@acme.test\r\nBcc: victim@example.com",)},
    {"sender": "cara@example.com\n"},
    {"sender_name": "Cara\rBcc: x@y.z"},
    {"to": ("not an address",)},
    {"to": ("",)},
    {"to": ()},
])
async def test_bad_headers_are_rejected_and_nothing_is_written(tmp_path: Path, bad: dict[str, object]) -> None:
    outbox = EmailOutbox(tmp_path / "mail")
    with pytest.raises(PermanentError):
        await outbox.send(email(**bad), "wf-4/email")
    assert outbox.messages() == []


async def test_key_with_line_break_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(PermanentError):
        await EmailOutbox(tmp_path / "mail").send(email(), "wf-4\r\nX-Evil: 1")


async def test_chat_lines_and_idempotency(tmp_path: Path) -> None:
    outbox = ChatOutbox(tmp_path / "out" / "chat.jsonl")
    blocks = ({"type": "section", "text": {"type": "mrkdwn", "text": "*Acme* is at risk"}},)
    to_channel = await outbox.post(ChatMessage(channel="cs-alerts", text="Acme is at risk", blocks=blocks), "wf-5/a")
    dm = await outbox.post(ChatMessage(user_email="cara@example.com", text="Please call Acme"), "wf-5/b")
    assert to_channel.startswith("cs-alerts:") and dm.startswith("cara@example.com:")
    assert await outbox.post(ChatMessage(channel="other", text="changed"), "wf-5/a") == to_channel
    first, second = outbox.messages()
    assert first == {"id": to_channel, "channel": "cs-alerts", "user_email": "", "text": "Acme is at risk",
                     "blocks": list(blocks), "idempotency_key": "wf-5/a", "ts": to_channel.split(":", 1)[1]}
    assert (second["user_email"], second["channel"], second["idempotency_key"]) == ("cara@example.com", "", "wf-5/b")
    # A new instance (another worker) reads the keys already in the file.
    assert await ChatOutbox(tmp_path / "out" / "chat.jsonl").post(ChatMessage(user_email="x@y.z", text="t"),
                                                                  "wf-5/b") == dm
    assert len(outbox.messages()) == 2


async def test_chat_concurrent_posts_with_one_key_append_once(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    outboxes = [ChatOutbox(path) for _ in range(3)]
    ids = await asyncio.gather(*(o.post(ChatMessage(channel="c", text="hi"), "wf-6/a") for o in outboxes * 4))
    assert len(set(ids)) == 1
    assert len(path.read_text().splitlines()) == 1


def _post_from_process(path: str, key: str) -> None:
    asyncio.run(ChatOutbox(path).post(ChatMessage(channel="c", text="hi"), key))


def test_chat_two_processes_append_a_key_once(tmp_path: Path) -> None:
    path = str(tmp_path / "chat.jsonl")
    ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no lock shared through fork
    procs = [ctx.Process(target=_post_from_process, args=(path, f"wf-7/{i % 3}")) for i in range(6)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    keys = [json.loads(line)["idempotency_key"] for line in Path(path).read_text().splitlines()]
    assert sorted(keys) == ["wf-7/0", "wf-7/1", "wf-7/2"]


async def test_chat_survives_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "chat.jsonl"
    path.write_bytes(b'{"id": "c:1", "idempotency_key": "old", "chan')  # a writer died mid-line
    outbox = ChatOutbox(path)
    new = await outbox.post(ChatMessage(channel="c", text="hi"), "wf-8/a")
    assert [m["id"] for m in outbox.messages()] == [new]


@pytest.mark.parametrize("message", [
    ChatMessage(text="nobody"),
    ChatMessage(channel="c", user_email="x@y.z", text="both"),
    ChatMessage(channel="c", text="  "),
])
async def test_chat_rejects_bad_messages(tmp_path: Path, message: ChatMessage) -> None:
    outbox = ChatOutbox(tmp_path / "chat.jsonl")
    with pytest.raises(PermanentError):
        await outbox.post(message, "k")
    assert outbox.messages() == []
