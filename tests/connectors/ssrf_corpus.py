"""Hostile webhook URLs and DNS answers, each with the rule that must refuse it (a RefusedError reason).

The corpus Webhook allows :data:`ALLOWED` and resolves through :class:`StubDNS` over :data:`DNS`
(there is no DNS server here; the resolver is injected). Some entries of ALLOWED are deliberately
dangerous (localhost, 10.1.2.3, 169.254.169.254): they prove the address check still refuses what an
allow-list entry lets through. Public addresses are real public ones (93.184.216.34 is example.com);
documentation ranges such as 203.0.113.0/24 are not public and would be refused.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from dataclasses import dataclass

PUBLIC = "93.184.216.34"
PUBLIC6 = "2606:4700:4700::1111"

ALLOWED = (
    "hooks.example.com", "api.example.com:8443", "*.partner.example", "localhost", "internal.example.com",
    "mixed.example.com", "nx.example.com", PUBLIC, f"[{PUBLIC6}]", "10.1.2.3", "[::1]", "[::ffff:127.0.0.1]",
    "[64:ff9b::a00:1]", "169.254.169.254", "[fd00:ec2::254]", "[2002:a9fe:a9fe::]",
)

DNS: dict[str, list[str]] = {
    "hooks.example.com": [PUBLIC],
    "api.example.com": [PUBLIC],
    "localhost": ["127.0.0.1", "::1"],
    "internal.example.com": ["10.0.0.5"],
    "mixed.example.com": [PUBLIC, "192.168.1.10"],
    "good.partner.example": [PUBLIC],
    "deep.sub.partner.example": [PUBLIC],
    "good6.partner.example": [PUBLIC6],
    "xn--bcher-kva.partner.example": [PUBLIC],
    "aws.partner.example": ["169.254.169.254"],
    "ecs.partner.example": ["169.254.170.2"],
    "alibaba.partner.example": ["100.100.100.200"],
    "oracle.partner.example": ["192.0.0.192"],
    "azure-wire.partner.example": ["168.63.129.16"],
    "imds6.partner.example": ["fd00:ec2::254"],
    "gcp6.partner.example": ["fd20:ce::254"],
    "v6loop.partner.example": ["::1"],
    "mapped.partner.example": ["::ffff:127.0.0.1"],
    "mapped-meta.partner.example": ["::ffff:169.254.169.254"],
    "sixtofour.partner.example": ["2002:c0a8:101::1"],
    "teredo.partner.example": ["2001:0:4136:e378:8000:63bf:f5ff:fffe"],
    "nat64.partner.example": ["64:ff9b::7f00:1"],
    "compat.partner.example": ["::7f00:1"],
    "cgnat.partner.example": ["100.64.0.7"],
    "ula.partner.example": ["fd12:3456::1"],
    "linklocal.partner.example": ["fe80::1"],
    "linklocal4.partner.example": ["169.254.10.10"],
    "multicast.partner.example": ["224.0.0.251"],
    "multicast6.partner.example": ["ff02::1"],
    "zero.partner.example": ["0.0.0.0"],
    "unspec6.partner.example": ["::"],
    "doc.partner.example": ["192.0.2.10"],
    "bench.partner.example": ["198.18.0.1"],
    "broadcast.partner.example": ["255.255.255.255"],
    "sitelocal.partner.example": ["fec0::1"],
    "rfc1918.partner.example": ["172.16.5.5"],
    "garbage.partner.example": ["not-an-address"],
    "empty.partner.example": [],
}
"""Every other name does not exist (the stub answers like getaddrinfo's EAI_NONAME)."""


class StubDNS:
    """An injected resolver over a table; records every lookup. ``later`` answers every lookup after
    the first (a rebinding DNS server: the first answer passes the check, the next would not)."""

    def __init__(self, table: dict[str, list[str]], later: dict[str, list[str]] | None = None) -> None:
        self.table, self.later = table, later or {}
        self.calls: list[tuple[str, int]] = []

    async def __call__(self, host: str, port: int) -> list[str]:
        seen_before = any(h == host for h, _ in self.calls)
        self.calls.append((host, port))
        answer = self.later.get(host) if seen_before else None
        answer = answer if answer is not None else self.table.get(host)
        if answer is None:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return list(answer)


@dataclass(frozen=True, kw_only=True)
class Case:
    """One hostile URL."""

    url: str
    """What the http step asks for."""
    reason: str
    """The RefusedError reason expected."""
    looks_up: bool = False
    """Whether the refusal comes after a DNS lookup (False: refused before any lookup)."""
    redirect_to: str = ""
    """When set, ``url`` is fine and answers 302 with this Location; the refusal is at the second hop."""
    allow_private: Sequence[str] = ()
    """``webhooks.allow_private`` for this case."""
    mentions: str = ""
    """Text the error must name (the host or address refused)."""


def _dns(host: str, reason: str, mentions: str = "", allow_private: Sequence[str] = ()) -> Case:
    return Case(url=f"https://{host}/hook", reason=reason, looks_up=True, mentions=mentions or DNS[host][-1],
                allow_private=allow_private)


def _bounce(location: str, reason: str, start: str = "http://hooks.example.com/r") -> Case:
    return Case(url=start, redirect_to=location, reason=reason, looks_up=True)


CASES: dict[str, Case] = {
    # schemes and malformed URLs
    "ftp-scheme": Case(url="ftp://hooks.example.com/x", reason="scheme"),
    "file-scheme": Case(url="file:///etc/passwd", reason="scheme"),
    "gopher-scheme": Case(url="gopher://hooks.example.com:70/_SET", reason="scheme"),
    "no-scheme": Case(url="hooks.example.com/hook", reason="scheme"),
    "leading-space": Case(url=" http://hooks.example.com/", reason="invalid-url"),
    "trailing-newline": Case(url="http://hooks.example.com/\n", reason="invalid-url"),
    "tab-in-host": Case(url="http://hooks.example.com\t.evil.com/", reason="invalid-url"),
    "crlf-in-path": Case(url="http://hooks.example.com/a\r\nHost: evil", reason="invalid-url"),
    "zero-width-space": Case(url="http://hooks.example.com\u200b.evil.com/", reason="invalid-url"),
    "backslash-userinfo": Case(url="http://hooks.example.com\\@evil.com/", reason="invalid-url"),
    "backslash-path": Case(url="http://evil.com\\hooks.example.com/", reason="invalid-url"),
    # userinfo and encodings
    "at-trick": Case(url="http://hooks.example.com@evil.com/", reason="userinfo"),
    "user-password": Case(url="https://user:pw@hooks.example.com/", reason="userinfo"),
    "encoded-at": Case(url="http://hooks.example.com%40evil.com/", reason="encoded-host"),
    "percent-host": Case(url="http://%68ooks.example.com/", reason="encoded-host"),
    "percent-dot": Case(url="http://hooks%2eexample.com/", reason="encoded-host"),
    "zone-id": Case(url="http://[fe80::1%25eth0]/", reason="zone-id"),
    "empty-label": Case(url="https://a..partner.example/", reason="bad-host"),
    "port-out-of-range": Case(url="http://hooks.example.com:99999/", reason="port"),
    # IPv4 in odd spellings: refused, not reinterpreted
    "decimal-ip": Case(url="http://2130706433/", reason="numeric-form", mentions="127.0.0.1"),
    "hex-short-ip": Case(url="http://0x7f.1/", reason="numeric-form", mentions="127.0.0.1"),
    "octal-ip": Case(url="http://017700000001/", reason="numeric-form", mentions="127.0.0.1"),
    "hex-ip": Case(url="http://0x7f000001/", reason="numeric-form", mentions="127.0.0.1"),
    "octal-dotted": Case(url="http://0177.0.0.1/", reason="numeric-form", mentions="127.0.0.1"),
    "two-part-ip": Case(url="http://127.1/", reason="numeric-form", mentions="127.0.0.1"),
    "zero-ip": Case(url="http://0/", reason="numeric-form", mentions="0.0.0.0"),
    "metadata-decimal": Case(url="http://2852039166/latest/", reason="numeric-form", mentions="169.254.169.254"),
    "ideographic-dots": Case(url="http://127\u30020\u30020\u30021/", reason="numeric-form", mentions="127.0.0.1"),
    "ip-trailing-dot": Case(url=f"http://{PUBLIC}./", reason="numeric-form"),
    "five-part-number": Case(url="http://1.2.3.4.5/", reason="numeric-form"),
    # the allow-list
    "other-host": Case(url="http://evil.com/", reason="not-allowed", mentions="evil.com"),
    "suffix-trick": Case(url="http://hooks.example.com.evil.com/", reason="not-allowed"),
    "prefix-trick": Case(url="http://evilhooks.example.com/", reason="not-allowed"),
    "wildcard-apex": Case(url="https://partner.example/", reason="not-allowed"),
    "wildcard-no-dot": Case(url="https://evilpartner.example/", reason="not-allowed"),
    "other-port": Case(url="http://hooks.example.com:8080/", reason="not-allowed", mentions="8080"),
    "entry-port-only": Case(url="https://api.example.com/", reason="not-allowed"),
    "homoglyph": Case(url="https://hooks.ex\u0430mple.com/", reason="not-allowed", mentions="xn--"),
    "loopback-literal": Case(url="http://127.0.0.1/", reason="not-allowed"),
    "metadata-name": Case(url="http://metadata.google.internal/computeMetadata/v1/", reason="metadata"),
    "metadata-name-odd": Case(url="http://METADATA.Google.Internal./computeMetadata/v1/", reason="metadata"),
    "metadata-short-name": Case(url="http://metadata/computeMetadata/v1/", reason="metadata"),
    # allow-listed IP literals that are still not public
    "listed-private-ip": Case(url="http://10.1.2.3/", reason="private", mentions="10.1.2.3"),
    "listed-v6-loopback": Case(url="http://[::1]/", reason="loopback"),
    "listed-mapped": Case(url="http://[::ffff:127.0.0.1]/", reason="loopback", mentions="127.0.0.1"),
    "listed-mapped-hex": Case(url="http://[::ffff:7f00:1]/", reason="loopback", mentions="127.0.0.1"),
    "listed-nat64": Case(url="http://[64:ff9b::a00:1]/", reason="private", mentions="10.0.0.1"),
    "listed-metadata-ip": Case(url="http://169.254.169.254/latest/meta-data/", reason="metadata"),
    "listed-metadata-v6": Case(url="http://[fd00:ec2::254]/latest/", reason="metadata"),
    "listed-6to4-metadata": Case(url="http://[2002:a9fe:a9fe::]/", reason="metadata", mentions="169.254.169.254"),
    "metadata-despite-allow-private": Case(url="http://169.254.169.254/", reason="metadata",
                                           allow_private=("169.254.0.0/16",)),
    # names that resolve to addresses a webhook may not reach
    "localhost": _dns("localhost", "loopback", mentions="127.0.0.1"),
    "internal": _dns("internal.example.com", "private"),
    "one-bad-address": _dns("mixed.example.com", "private"),
    "aws-metadata": _dns("aws.partner.example", "metadata"),
    "ecs-credentials": _dns("ecs.partner.example", "metadata"),
    "alibaba-metadata": _dns("alibaba.partner.example", "metadata"),
    "oracle-metadata": _dns("oracle.partner.example", "metadata"),
    "azure-wireserver": _dns("azure-wire.partner.example", "metadata"),
    "aws-imds-v6": _dns("imds6.partner.example", "metadata"),
    "gcp-metadata-v6": _dns("gcp6.partner.example", "metadata"),
    "metadata-despite-wide-range": _dns("aws.partner.example", "metadata", allow_private=("169.254.0.0/16",)),
    "v6-loopback": _dns("v6loop.partner.example", "loopback"),
    "v4-mapped": _dns("mapped.partner.example", "loopback", mentions="127.0.0.1"),
    "v4-mapped-metadata": _dns("mapped-meta.partner.example", "metadata", mentions="169.254.169.254"),
    "6to4-private": _dns("sixtofour.partner.example", "private", mentions="192.168.1.1"),
    "teredo-private": _dns("teredo.partner.example", "private", mentions="10.0.0.1"),
    "nat64-loopback": _dns("nat64.partner.example", "loopback", mentions="127.0.0.1"),
    "v4-compatible": _dns("compat.partner.example", "loopback", mentions="127.0.0.1"),
    "cgnat": _dns("cgnat.partner.example", "cgnat"),
    "unique-local": _dns("ula.partner.example", "unique-local"),
    "link-local-v6": _dns("linklocal.partner.example", "link-local"),
    "link-local-v4": _dns("linklocal4.partner.example", "link-local"),
    "multicast": _dns("multicast.partner.example", "multicast"),
    "multicast-v6": _dns("multicast6.partner.example", "multicast"),
    "zero-address": _dns("zero.partner.example", "unspecified"),
    "unspecified-v6": _dns("unspec6.partner.example", "unspecified"),
    "documentation-range": _dns("doc.partner.example", "reserved"),
    "benchmark-range": _dns("bench.partner.example", "reserved"),
    "broadcast": _dns("broadcast.partner.example", "reserved"),
    "site-local": _dns("sitelocal.partner.example", "site-local"),
    "rfc1918-172": _dns("rfc1918.partner.example", "private"),
    "wrong-range-allowed": _dns("internal.example.com", "private", allow_private=("10.1.0.0/16",)),
    "resolver-garbage": Case(url="https://garbage.partner.example/", reason="dns", looks_up=True),
    "no-addresses": Case(url="https://empty.partner.example/", reason="dns", looks_up=True),
    "no-such-host": Case(url="https://nx.example.com/", reason="dns", looks_up=True, mentions="nx.example.com"),
    # redirects: the first hop is fine, the Location is not
    "redirect-metadata": _bounce("http://169.254.169.254/latest/meta-data/iam/", "metadata"),
    "redirect-loopback-ip": _bounce("http://127.0.0.1/admin", "not-allowed"),
    "redirect-localhost": _bounce("http://localhost/admin", "loopback"),
    "redirect-scheme-relative": _bounce("//internal.example.com/x", "private"),
    "redirect-other-port": _bounce("http://hooks.example.com:6379/", "not-allowed"),
    "redirect-decimal-ip": _bounce("http://2130706433/", "numeric-form"),
    "redirect-userinfo": _bounce("http://hooks.example.com@evil.com/", "userinfo"),
    "redirect-backslash": _bounce("/\\evil.com/", "invalid-url"),
    "redirect-gopher": _bounce("gopher://hooks.example.com:70/_", "scheme"),
    "redirect-file": _bounce("file:///etc/passwd", "scheme"),
    "redirect-mapped": _bounce("https://mapped.partner.example/", "loopback"),
    "redirect-downgrade": _bounce("http://hooks.example.com/plain", "insecure-redirect",
                                  start="https://hooks.example.com/r"),
}

POSITIVE: dict[str, tuple[str, Sequence[str], str, str, str | None]] = {
    # name: (url, allow_private, dialled address, Host header, TLS server name)
    "plain": ("https://hooks.example.com/hook", (), PUBLIC, "hooks.example.com", "hooks.example.com"),
    "odd-case-trailing-dot": ("HTTPS://Hooks.Example.COM./hook", (), PUBLIC, "hooks.example.com", "hooks.example.com"),
    "default-port-written": ("https://hooks.example.com:443/hook", (), PUBLIC, "hooks.example.com",
                             "hooks.example.com"),
    "wildcard-deep": ("https://deep.sub.partner.example/x", (), PUBLIC, "deep.sub.partner.example",
                      "deep.sub.partner.example"),
    "entry-port": ("https://api.example.com:8443/v1", (), PUBLIC, "api.example.com:8443", "api.example.com"),
    "idna": ("https://b\u00fccher.partner.example/", (), PUBLIC, "xn--bcher-kva.partner.example",
             "xn--bcher-kva.partner.example"),
    "ip-literal": (f"http://{PUBLIC}/hook", (), PUBLIC, PUBLIC, None),
    "ipv6-literal": (f"https://[{PUBLIC6}]/", (), PUBLIC6, f"[{PUBLIC6}]", None),
    "ipv6-by-name": ("https://good6.partner.example/", (), PUBLIC6, "good6.partner.example", "good6.partner.example"),
    "allowed-private": ("http://internal.example.com/", ("10.0.0.0/24",), "10.0.0.5", "internal.example.com", None),
    "allowed-mapped": ("http://mapped.partner.example/", ("127.0.0.1/32",), "127.0.0.1", "mapped.partner.example",
                       None),
}
"""URLs that must go through, to the checked address, with the Host header and SNI on the name."""
