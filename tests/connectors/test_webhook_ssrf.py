"""Webhook against SSRF: the hostile corpus is refused with the right reason before any connection;
allowed URLs go to the address that was checked; real loopback servers prove the whole path (the call
arrives, rebinding and redirects to internal addresses are refused, headers stay with their origin,
TLS checks the certificate for the name, answers map to retryable and permanent errors)."""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web
from hypothesis import assume, given
from hypothesis import strategies as st

from connectors.base import HttpResult, PermanentError, RetryableError
from connectors.netguard import KINDS, RefusedError, classify, parse_url
from connectors.webhook import Webhook
from tests.connectors.ssrf_corpus import ALLOWED, CASES, DNS, POSITIVE, StubDNS
from tests.fakes.http import FakeServer, Faults

KEY = "pb:hook:acme:once/tell-billing"
HINTS = {"not-allowed": "webhooks.allowed_hosts", "metadata": "may never call it",
         **{kind: "webhooks.allow_private" for kind in KINDS if kind != "metadata"}}
"""What each refusal must tell the user to do."""


# --- the corpus: no network, the resolver and the transport recorded --------------------------------

def recorder(sent: list[httpx.Request], redirect_to: str = "") -> httpx.MockTransport:
    """The network as the Webhook sees it: every request handed to the transport is recorded."""
    def answer(request: httpx.Request) -> httpx.Response:
        sent.append(request)
        if redirect_to and len(sent) == 1:
            return httpx.Response(302, headers={"Location": redirect_to})
        return httpx.Response(200, text="ok")
    return httpx.MockTransport(answer)


@pytest.mark.parametrize("name", list(CASES))
async def test_hostile_url_is_refused_before_connecting(name: str) -> None:
    case, dns = CASES[name], StubDNS(DNS)
    sent: list[httpx.Request] = []
    hook = Webhook(ALLOWED, allow_private=case.allow_private, transport=recorder(sent, case.redirect_to), resolver=dns)
    with pytest.raises(RefusedError) as caught:
        await hook.request("POST", case.url, headers={"Authorization": "Bearer s3cret"}, json={"a": 1},
                           idempotency_key=KEY)
    await hook.close()
    error = caught.value
    assert (error.reason, len(sent), bool(dns.calls)) == (case.reason, int(bool(case.redirect_to)), case.looks_up), \
        str(error)
    assert isinstance(error, PermanentError) and str(error).startswith("webhook refused: ")
    assert case.mentions in str(error) and HINTS.get(error.reason, "") in str(error)
    assert "s3cret" not in str(error)
    if case.redirect_to:
        assert "redirected" in str(error) and sent[0].headers["Authorization"] == "Bearer s3cret"


def test_the_corpus_is_large_and_covers_every_address_kind() -> None:
    reasons = {case.reason for case in CASES.values()}
    assert len(CASES) >= 90 and set(KINDS) <= reasons
    assert sum(1 for case in CASES.values() if case.redirect_to) >= 10


@pytest.mark.parametrize("name", list(POSITIVE))
async def test_allowed_url_goes_to_the_checked_address(name: str) -> None:
    url, allow_private, dialled, host, sni = POSITIVE[name]
    sent: list[httpx.Request] = []
    dns = StubDNS(DNS)
    hook = Webhook(ALLOWED, allow_private=allow_private, transport=recorder(sent), resolver=dns)
    result = await hook.request("POST", url, headers={"X-Signature": "sig"}, json={"a": 1}, idempotency_key=KEY)
    await hook.close()
    assert result == HttpResult(status=200, body="ok")
    [request] = sent
    assert ip_address(request.url.host) == ip_address(dialled)
    assert (request.headers["Host"], request.extensions.get("sni_hostname")) == (host, sni)
    assert (request.headers["Idempotency-Key"], request.headers["X-Signature"]) == (KEY, "sig")
    assert json.loads(request.content) == {"a": 1}
    assert len(dns.calls) == (0 if host.strip("[]") == dialled else 1)


def _spell(part: int, radix: str, upper: bool) -> str:
    text = {"dec": str(part), "oct": f"0{part:o}", "hex": f"0x{part:x}"}[radix]
    return text.upper() if upper else text


@given(value=st.integers(0, 2**32 - 1), data=st.data())
def test_every_spelling_of_an_ipv4_address_but_dotted_decimal_is_refused(value: int, data: st.DataObject) -> None:
    parts = data.draw(st.integers(1, 4))
    numbers = [(value >> (8 * (3 - i))) & 0xFF for i in range(parts - 1)] + [value & ((1 << (8 * (5 - parts))) - 1)]
    spelling = ".".join(_spell(n, data.draw(st.sampled_from(["dec", "oct", "hex"])), data.draw(st.booleans()))
                        for n in numbers)
    address = IPv4Address(value)
    assume(spelling != str(address))
    assert socket.inet_aton(spelling) == address.packed  # the C library would dial this address
    with pytest.raises(RefusedError) as caught:
        parse_url(f"http://{spelling}/")
    assert caught.value.reason == "numeric-form" and str(address) in caught.value.why


NON_PUBLIC_V4 = ["10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10"]


@given(net=st.sampled_from(NON_PUBLIC_V4), offset=st.integers(0, 2**24), low=st.integers(0, 2**64 - 1),
       wrap=st.sampled_from(["mapped", "compat", "6to4", "nat64", "teredo"]))
def test_a_non_public_ipv4_address_stays_refused_inside_ipv6(net: str, offset: int, low: int, wrap: str) -> None:
    network = ip_network(net)
    inner = network[offset % network.num_addresses]
    assert isinstance(inner, IPv4Address)
    v4 = int(inner)
    v6 = IPv6Address({"mapped": 0xFFFF << 32 | v4, "compat": v4, "6to4": 0x2002 << 112 | v4 << 80 | low >> 48,
                      "nat64": int(IPv6Address("64:ff9b::")) | v4,
                      "teredo": 0x20010000 << 96 | int(IPv4Address("65.54.227.120")) << 64 | (~v4 & 0xFFFFFFFF)}[wrap])
    found, expected = classify(v6), classify(inner)
    assert found is not None and expected is not None
    assert found[0] == expected[0] and str(inner) in found[1]


@pytest.mark.parametrize("entry", ["http://hooks.example.com", "hooks.example.com/path", "user@hooks.example.com",
                                   "*.com", "*", "hooks.*.example.com", "2130706433", "2606:4700::1",
                                   "hooks.example.com:0", " ", "a..example.com"])
def test_bad_allow_list_entries_are_refused_in_plain_words(entry: str) -> None:
    with pytest.raises(ValueError, match=r"webhooks\.allowed_hosts entry"):
        Webhook([entry])


@pytest.mark.parametrize("network", ["0.0.0.0/0", "::/0", "10.0.0.0/4", "not-a-range", "10.0.0.300/32"])
def test_bad_or_too_broad_private_ranges_are_refused(network: str) -> None:
    with pytest.raises(ValueError, match=r"webhooks\.allow_private entry"):
        Webhook(["hooks.example.com"], allow_private=[network])


async def test_check_names_each_entry_that_cannot_be_called() -> None:
    entries = ["hooks.example.com", "internal.example.com", "nx.example.com", "*.partner.example", "169.254.169.254",
               "localhost", "[2606:4700:4700::1111]:8443"]
    dns = StubDNS(DNS)
    hook = Webhook(entries, resolver=dns)
    problems = await hook.check()
    assert [p.split(":")[0] for p in problems] == [f"webhooks.allowed_hosts entry {e!r}" for e in
                                                   ("internal.example.com", "nx.example.com", "169.254.169.254",
                                                    "localhost")]
    assert "10.0.0.5" in problems[0] and "webhooks.allow_private" in problems[0] and "does not resolve" in problems[1]
    assert [host for host, _ in dns.calls] == ["hooks.example.com", "internal.example.com", "nx.example.com",
                                               "localhost"]
    opened = Webhook(entries, allow_private=["10.0.0.0/24", "127.0.0.0/8", "::1/128"], resolver=dns)
    assert len(await opened.check()) == 2  # nx.example.com and the metadata address stay
    await hook.close()
    await opened.close()


# --- real servers on loopback --------------------------------------------------------------------------

def fixed(make: Callable[[], web.Response]) -> Callable[[web.Request], Awaitable[web.Response]]:
    """A handler answering ``make()``."""
    async def handler(_: web.Request) -> web.Response:
        return make()
    return handler


class Receiver(FakeServer):
    """A webhook receiver: records every call to /hook; /bounce answers ``status`` to ``location``."""

    def __init__(self, faults: Faults | None = None) -> None:
        super().__init__(faults)
        self.seen: list[dict[str, Any]] = []
        self.clients: list[int] = []
        self.location, self.status = "", 307
        self.release = asyncio.Event()

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    def routes(self, app: web.Application) -> None:
        app.router.add_route("*", "/hook", self.hook)
        app.router.add_route("*", "/bounce", self.bounce)
        app.router.add_post("/missing", fixed(lambda: web.Response(status=404, text="no such hook")))
        app.router.add_post("/big", fixed(lambda: web.Response(text="x" * 100_000)))
        app.router.add_post("/busy", fixed(lambda: web.Response(status=503, headers={"Retry-After": format_datetime(
            datetime.now(UTC) + timedelta(seconds=30), usegmt=True)})))
        app.router.add_post("/hang", self.hang)

    async def hook(self, request: web.Request) -> web.Response:
        text = await request.text()
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.clients.append(peer[1] if peer else 0)
        self.seen.append({"method": request.method, "host": request.host, "key": request.headers.get("Idempotency-Key"),
                          "sig": request.headers.get("X-Signature"), "body": json.loads(text) if text else None})
        return web.json_response({"ok": True})

    async def bounce(self, request: web.Request) -> web.Response:
        await self.hook(request)
        return web.Response(status=self.status, headers={"Location": self.location})

    async def hang(self, request: web.Request) -> web.Response:
        await self.release.wait()
        return web.Response()


@dataclass
class Trap:
    """A listener on 127.0.0.2 standing for an internal service; a test passes when it saw no connection."""

    port: int
    connections: int = 0
    server: asyncio.Server | None = field(default=None, repr=False)

    async def accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\nConnection: close\r\n\r\nsecret")
        await writer.drain()
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    server = Receiver()  # FakeServer.__aenter__ is typed as the base class
    async with server:
        try:
            yield server
        finally:
            server.release.set()


@pytest.fixture
async def trap(receiver: Receiver) -> AsyncIterator[Trap]:
    trap = Trap(port=receiver.port)  # the same port: a call moved to 127.0.0.2 would land here
    trap.server = await asyncio.start_server(trap.accept, "127.0.0.2", trap.port)
    try:
        yield trap
    finally:
        trap.server.close()
        await trap.server.wait_closed()


LOOPBACK_DNS = {"hooks.test": ["127.0.0.1"], "other.test": ["127.0.0.1"], "internal.test": ["127.0.0.2"]}


def loopback_hook(port: int, *extra: str, dns: StubDNS | None = None, **options: Any) -> Webhook:
    """A Webhook allowing hooks.test and other.test on ``port``, and 127.0.0.1 (only) as a private address."""
    options.setdefault("allow_private", ["127.0.0.1/32"])
    return Webhook([f"hooks.test:{port}", f"other.test:{port}", *extra], resolver=dns or StubDNS(LOOPBACK_DNS),
                   **options)


async def call(hook: Webhook, url: str, key: str = KEY) -> HttpResult:
    try:
        return await hook.request("POST", url, headers={"X-Signature": "sig-acme"}, json={"account": "acme"},
                                  idempotency_key=key)
    finally:
        await hook.close()


async def test_an_allowed_call_arrives_once_with_its_key(receiver: Receiver) -> None:
    dns = StubDNS(LOOPBACK_DNS)
    result = await call(loopback_hook(receiver.port, dns=dns), f"http://hooks.test:{receiver.port}/hook")
    assert result == HttpResult(status=200, body='{"ok": true}')
    assert receiver.seen == [{"method": "POST", "host": f"hooks.test:{receiver.port}", "key": KEY, "sig": "sig-acme",
                              "body": {"account": "acme"}}]
    assert dns.calls == [("hooks.test", receiver.port)]


async def test_a_loopback_receiver_needs_allow_private(receiver: Receiver) -> None:
    with pytest.raises(RefusedError, match=r"hooks\.test resolves to 127\.0\.0\.1, a loopback address") as caught:
        await call(loopback_hook(receiver.port, allow_private=[]), f"http://hooks.test:{receiver.port}/hook")
    assert caught.value.reason == "loopback" and receiver.requests == []


async def test_dns_rebinding_cannot_move_a_checked_call(receiver: Receiver, trap: Trap) -> None:
    dns = StubDNS(LOOPBACK_DNS, later={"hooks.test": ["127.0.0.2"]})
    hook = loopback_hook(receiver.port, dns=dns)
    url = f"http://hooks.test:{receiver.port}/hook"
    assert (await hook.request("POST", url, headers={}, json=None, idempotency_key=KEY)).status == 200
    with pytest.raises(RefusedError) as caught:  # the next lookup answers 127.0.0.2: that answer is checked too
        await call(hook, url)
    assert caught.value.reason == "loopback" and "127.0.0.2" in str(caught.value)
    assert (len(receiver.seen), trap.connections, len(dns.calls)) == (1, 0, 2)


@pytest.mark.parametrize(("location", "extra", "reason"), [
    ("http://127.0.0.2:{port}/steal", "127.0.0.2:{port}", "loopback"),
    ("http://internal.test:{port}/steal", "internal.test:{port}", "loopback"),
    ("http://127.0.0.2:{port}/steal", "", "not-allowed"),
    ("http://[::ffff:127.0.0.2]:{port}/steal", "[::ffff:127.0.0.2]:{port}", "loopback"),
    ("http://2130706434:{port}/steal", "", "numeric-form"),
    ("http://hooks.test:{port}@127.0.0.2:{port}/steal", "", "userinfo"),
])
async def test_a_redirect_to_an_internal_address_is_refused(receiver: Receiver, trap: Trap, location: str,
                                                            extra: str, reason: str) -> None:
    receiver.location = location.format(port=trap.port)
    hook = loopback_hook(receiver.port, *([extra.format(port=trap.port)] if extra else []))
    with pytest.raises(RefusedError) as caught:
        await call(hook, f"http://hooks.test:{receiver.port}/bounce")
    assert caught.value.reason == reason and f"hooks.test:{receiver.port} redirected" in str(caught.value)
    assert (len(receiver.seen), trap.connections) == (1, 0)


@pytest.mark.parametrize(("status", "location", "method", "same_origin"), [
    (307, "/hook", "POST", True),
    (308, "http://hooks.test:{port}/hook", "POST", True),
    (307, "http://other.test:{port}/hook", "POST", False),
    (303, "/hook", "GET", True),
    (302, "http://other.test:{port}/hook", "GET", False),
])
async def test_redirects_keep_headers_only_on_the_first_origin(receiver: Receiver, status: int, location: str,
                                                               method: str, same_origin: bool) -> None:
    receiver.status, receiver.location = status, location.format(port=receiver.port)
    result = await call(loopback_hook(receiver.port), f"http://hooks.test:{receiver.port}/bounce")
    host = "hooks.test" if same_origin else "other.test"
    assert result.status == 200 and len(receiver.seen) == 2
    assert receiver.seen[1] == {"method": method, "host": f"{host}:{receiver.port}",
                                "key": KEY if same_origin else None, "sig": "sig-acme" if same_origin else None,
                                "body": {"account": "acme"} if method == "POST" else None}


async def test_a_redirect_loop_stops_after_max_redirects(receiver: Receiver) -> None:
    receiver.location = "/bounce"
    with pytest.raises(RefusedError, match="still redirected after 2 redirects") as caught:
        await call(loopback_hook(receiver.port, max_redirects=2), f"http://hooks.test:{receiver.port}/bounce")
    assert caught.value.reason == "redirects" and len(receiver.seen) == 3


async def test_no_connection_is_reused_across_calls(receiver: Receiver) -> None:
    hook = loopback_hook(receiver.port)
    for name in ("hooks.test", "other.test", "other.test"):
        await hook.request("POST", f"http://{name}:{receiver.port}/hook", headers={}, json=None, idempotency_key=KEY)
    await hook.close()
    assert len(set(receiver.clients)) == 3  # a new connection (client port) each time


@pytest.mark.parametrize("kind", ["429", "5xx", "drop_before", "drop_after"])
async def test_faults_are_retryable_and_a_retry_sends_the_same_key(kind: str) -> None:
    receiver = Receiver(Faults(rate=1.0, kinds=(kind,)))
    async with receiver:
        hook = loopback_hook(receiver.port)
        url = f"http://hooks.test:{receiver.port}/hook"
        with pytest.raises(RetryableError) as caught:
            await hook.request("POST", url, headers={}, json={"n": 1}, idempotency_key=KEY)
        receiver.faults = Faults()
        assert (await call(hook, url)).status == 200
    assert not isinstance(caught.value, PermanentError) and len(receiver.requests) == 2
    assert caught.value.retry_after == (1.0 if kind == "429" else None)
    assert [seen["key"] for seen in receiver.seen] == [KEY] * (2 if kind == "drop_after" else 1)


async def test_answers_map_to_results_and_errors(receiver: Receiver) -> None:
    hook = loopback_hook(receiver.port, max_body=50, timeout=0.5)
    base = f"http://hooks.test:{receiver.port}"
    with pytest.raises(PermanentError) as missing:
        await hook.request("POST", f"{base}/missing", headers={}, json=None, idempotency_key=KEY)
    with pytest.raises(RetryableError) as busy:
        await hook.request("POST", f"{base}/busy", headers={}, json=None, idempotency_key=KEY)
    with pytest.raises(RetryableError, match="ReadTimeout"):
        await hook.request("POST", f"{base}/hang", headers={}, json=None, idempotency_key=KEY)
    big = await call(hook, f"{base}/big")
    assert not isinstance(missing.value, RefusedError) and missing.value.detail == "no such hook"
    assert busy.value.retry_after is not None and 25 < busy.value.retry_after <= 30
    assert big == HttpResult(status=200, body="x" * 50)


# --- TLS: the certificate is checked for the name while the checked address is dialled -------------------

@dataclass
class TLSReceiver:
    ca: Path
    port: int = 0
    server_names: list[str | None] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A test CA and a certificate for hooks.test and other.test (not wrong.test), made with openssl."""
    d = tmp_path_factory.mktemp("tls")
    key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl("req", "-x509", *key, "-keyout", str(d / "ca.key"), "-out", str(d / "ca.pem"), "-days", "2",
             "-subj", "/CN=csops test CA", "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign")
    _openssl("req", *key, "-keyout", str(d / "leaf.key"), "-out", str(d / "leaf.csr"), "-subj", "/CN=hooks.test")
    (d / "ext.cnf").write_text("subjectAltName=DNS:hooks.test,DNS:other.test\nextendedKeyUsage=serverAuth\n")
    _openssl("x509", "-req", "-in", str(d / "leaf.csr"), "-CA", str(d / "ca.pem"), "-CAkey", str(d / "ca.key"),
             "-CAcreateserial", "-out", str(d / "leaf.pem"), "-days", "2", "-extfile", str(d / "ext.cnf"))
    yield d


@pytest.fixture
async def tls_receiver(tls_files: Path) -> AsyncIterator[TLSReceiver]:
    state = TLSReceiver(ca=tls_files / "ca.pem")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tls_files / "leaf.pem", tls_files / "leaf.key")
    context.sni_callback = lambda _sock, name, _ctx: state.server_names.append(name)

    async def hook(request: web.Request) -> web.Response:
        state.hosts.append(request.host)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    state.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield state
    finally:
        await runner.cleanup()


async def test_tls_verifies_the_name_on_the_pinned_address(tls_receiver: TLSReceiver,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SSL_CERT_FILE", str(tls_receiver.ca))  # the default transport trusts the test CA
    port = tls_receiver.port
    hook = loopback_hook(port, f"wrong.test:{port}", dns=StubDNS({**LOOPBACK_DNS, "wrong.test": ["127.0.0.1"]}))
    for name in ("hooks.test", "other.test"):
        result = await hook.request("POST", f"https://{name}:{port}/hook", headers={}, json=None, idempotency_key=KEY)
        assert result.status == 200
    with pytest.raises(RetryableError, match="certificate verify failed"):
        await call(hook, f"https://wrong.test:{port}/hook")
    assert tls_receiver.server_names == ["hooks.test", "other.test", "wrong.test"]
    assert tls_receiver.hosts == [f"hooks.test:{port}", f"other.test:{port}"]
