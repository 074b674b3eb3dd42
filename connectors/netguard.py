"""Where a webhook may go: strict URL parsing, the host allow-list, and the address check.

Used by connectors.webhook. The rules, in the order they apply:

1. The URL is plain ``http`` or ``https``: no spaces, control characters, backslashes, userinfo
   (``user@``), percent-encoded hosts or IPv6 zone ids; an IPv4 address only in dotted decimal
   (``2130706433``, ``0x7f.1``, ``0177.0.0.1`` and ``127.1`` are refused, not reinterpreted).
2. The host is on the allow-list (exact names, ``*.example.com`` for any subdomain), on the default
   port unless the entry names one; host names are compared lower-case, IDNA-encoded, without a
   trailing dot.
3. After DNS, every address is public, unless it lies in an ``allow_private`` range; cloud metadata
   services are refused whatever the configuration says. IPv4 addresses hidden inside IPv6 ones
   (mapped, compatible, 6to4, Teredo, NAT64) are judged by the IPv4 address.
"""

from __future__ import annotations

import asyncio
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network

import httpx

from connectors.base import PermanentError

IPAddress = IPv4Address | IPv6Address
Network = IPv4Network | IPv6Network
DEFAULT_PORTS = {"http": 80, "https": 443}

METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog", "instance-data",
                            "instance-data.ec2.internal", "metadata.tencentyun.com"})
"""Names of cloud metadata services: refused before any lookup."""
METADATA_ADDRESSES = frozenset(ip_address(a) for a in (
    "169.254.169.254",  # AWS, GCP, Azure, Oracle, DigitalOcean, Hetzner, OpenStack
    "169.254.170.2",  # AWS ECS task credentials
    "169.254.170.23",  # AWS EKS pod identity
    "169.254.0.23",  # Tencent Cloud
    "100.100.100.200",  # Alibaba Cloud
    "192.0.0.192",  # Oracle Cloud
    "168.63.129.16",  # Azure WireServer: a public address, so the range checks alone miss it
    "fd00:ec2::254",  # AWS IMDS over IPv6
    "fd00:ec2::23",  # AWS EKS pod identity over IPv6
    "fd20:ce::254",  # GCP metadata over IPv6
))

KINDS = {
    "metadata": "a cloud metadata service (it hands out this machine's credentials)",
    "loopback": "a loopback address (this machine)",
    "unspecified": "an unspecified address (it reaches this machine)",
    "private": "a private network address",
    "unique-local": "a unique local address (a private IPv6 network)",
    "site-local": "a site-local address (a private IPv6 network)",
    "link-local": "a link-local address",
    "cgnat": "a carrier-grade NAT address (100.64.0.0/10)",
    "multicast": "a multicast address",
    "reserved": "a reserved or special-purpose address, not on the public internet",
}
"""Address kinds a webhook may not reach, in plain words."""

_V4 = [(ip_network(n), kind) for n, kind in (
    ("0.0.0.0/8", "unspecified"), ("127.0.0.0/8", "loopback"), ("10.0.0.0/8", "private"),
    ("172.16.0.0/12", "private"), ("192.168.0.0/16", "private"), ("169.254.0.0/16", "link-local"),
    ("100.64.0.0/10", "cgnat"), ("224.0.0.0/4", "multicast"), ("240.0.0.0/4", "reserved"),
    ("192.0.0.0/24", "reserved"), ("192.88.99.0/24", "reserved"), ("198.18.0.0/15", "reserved"),
)]
_V6 = [(ip_network(n), kind) for n, kind in (
    ("::/128", "unspecified"), ("::1/128", "loopback"), ("fc00::/7", "unique-local"), ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local"), ("ff00::/8", "multicast"), ("2001:db8::/32", "reserved"),
    ("2001::/23", "reserved"), ("64:ff9b:1::/48", "reserved"), ("100::/64", "reserved"),
)]
_GLOBAL_UNICAST = ip_network("2000::/3")  # every public IPv6 address lies in it
_V4_COMPAT = ip_network("::/96")
_NAT64 = ip_network("64:ff9b::/96")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_NUMBER = {16: re.compile(r"[0-9a-f]*"), 8: re.compile(r"[0-7]*"), 10: re.compile(r"[0-9]+")}


class RefusedError(PermanentError):
    """A webhook call refused before anything was sent; ``reason`` names the rule (a key of
    :data:`KINDS`, or invalid-url, scheme, userinfo, encoded-host, zone-id, numeric-form,
    bad-host, port, not-allowed, dns, insecure-redirect, redirects)."""

    def __init__(self, reason: str, why: str) -> None:
        super().__init__(f"webhook refused: {why}")
        self.reason = reason
        self.why = why


@dataclass(frozen=True, kw_only=True)
class Target:
    """A URL that passed :func:`parse_url`."""

    url: httpx.URL
    """The URL with its host normalized."""
    scheme: str
    """http or https."""
    host: str
    """Lower-case ASCII (IDNA) host name without a trailing dot, or an IP address without brackets."""
    port: int
    """The port, the scheme's default filled in."""
    ip: IPAddress | None = None
    """The address when the host is an IP literal."""

    @property
    def netloc(self) -> str:
        """``host[:port]`` as the Host header carries it (the port only when not the default)."""
        host = f"[{self.host}]" if isinstance(self.ip, IPv6Address) else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"

    @property
    def origin(self) -> tuple[str, str, int]:
        """Scheme, host and port: headers meant for one origin never go to another."""
        return self.scheme, self.host, self.port


def parse_url(raw: str) -> Target:
    """Parse and normalize a webhook URL; raise :class:`RefusedError` for any odd form."""
    if any(c.isspace() or not c.isprintable() for c in raw):
        raise RefusedError("invalid-url", "the URL contains spaces or control characters")
    if "\\" in raw:
        raise RefusedError("invalid-url", "the URL contains a backslash")
    scheme, sep, rest = raw.partition("://")
    if not sep or scheme.lower() not in DEFAULT_PORTS:
        shown = f" (not {scheme.lower()}://)" if sep and scheme.isalnum() else ""
        raise RefusedError("scheme", f"the URL must start with http:// or https://{shown}")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority:
        raise RefusedError("userinfo", "the URL carries a user name or password before '@'; put credentials "
                           "in headers instead")
    if "%" in authority:
        if authority.startswith("["):
            raise RefusedError("zone-id", "IPv6 addresses with a zone id (%) cannot be called")
        raise RefusedError("encoded-host", "the URL's host is percent-encoded; write it plainly")
    written = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
    if not written.startswith("["):
        _as_ipv4(written.lower().removesuffix("."), written)  # before httpx, which rejects some forms vaguely
    try:
        url = httpx.URL(raw)
    except httpx.InvalidURL as exc:
        raise RefusedError("invalid-url", f"the URL is not valid ({exc})") from None
    host, scheme = url.raw_host.decode("ascii").lower(), url.scheme
    port = DEFAULT_PORTS[scheme] if url.port is None else url.port
    if not host or url.userinfo:
        raise RefusedError("invalid-url", "the URL has no host" if not host else "the URL carries a user name")
    if not 0 < port < 65536:
        raise RefusedError("port", f"port {port} is out of range")
    if authority.startswith("["):
        try:
            ip: IPAddress | None = IPv6Address(host)
        except ValueError:
            raise RefusedError("bad-host", f"[{host}] is not an IPv6 address") from None
        host = str(ip)
    else:
        host, ip = _host_name(host, written)
    return Target(url=url.copy_with(host=host), scheme=scheme, host=host, port=port, ip=ip)


def _host_name(host: str, as_written: str) -> tuple[str, IPAddress | None]:
    name = host.removesuffix(".")
    labels = name.split(".")
    if not name or "" in labels or len(name) > 253:
        raise RefusedError("bad-host", f"{host!r} is not a valid host name (empty label)")
    ip = _as_ipv4(name, as_written)
    if ip is None and not all(_LABEL.fullmatch(label) for label in labels):
        raise RefusedError("bad-host", f"{host!r} is not a valid host name")
    return name, ip


def _as_ipv4(name: str, as_written: str) -> IPv4Address | None:
    """The address when ``name`` ends in a number, None when it is a name; refuses any spelling but
    dotted decimal. Browsers and inet_aton read every host ending in a number as an IPv4 address
    (``0x7f.1``, ``2130706433``), so no spelling of 127.0.0.1 may pass as a "name"."""
    last = name.rsplit(".", 1)[-1]
    if not (last.isdigit() or re.fullmatch(r"0x[0-9a-f]*", last)):
        return None
    value = _ipv4_value(name.split("."))
    if value is None:
        raise RefusedError("numeric-form", f"{as_written!r} is neither a host name nor an IPv4 address")
    ip = IPv4Address(value)
    if name != str(ip) or as_written.lower() != str(ip):
        raise RefusedError("numeric-form", f"{as_written!r} is the IPv4 address {ip} written in an unusual form; "
                           f"write it as {ip}")
    return ip


def _ipv4_value(labels: list[str]) -> int | None:
    """The WHATWG URL Standard's IPv4 parser (hex, octal, fewer than four parts), or None."""
    if len(labels) > 4:
        return None
    numbers: list[int] = []
    for part in labels:
        if part.startswith("0x"):
            base, digits = 16, part[2:]
        elif len(part) > 1 and part.startswith("0"):
            base, digits = 8, part[1:]
        else:
            base, digits = 10, part
        if not _NUMBER[base].fullmatch(digits):
            return None
        numbers.append(int(digits, base) if digits else 0)
    if any(n > 255 for n in numbers[:-1]) or numbers[-1] >= 1 << (8 * (5 - len(numbers))):
        return None
    return numbers[-1] + sum(n << (8 * (3 - i)) for i, n in enumerate(numbers[:-1]))


@dataclass(frozen=True, kw_only=True)
class HostRule:
    """One entry of ``webhooks.allowed_hosts``."""

    entry: str
    """As configured."""
    host: str
    """Normalized host, or the domain under ``*.``."""
    wildcard: bool = False
    """``*.host``: any subdomain of ``host`` (at any depth), not ``host`` itself."""
    port: int | None = None
    """The one port allowed; None: the scheme's default port."""
    ip: IPAddress | None = None
    """The address when the entry is an IP literal."""

    @classmethod
    def parse(cls, entry: str) -> HostRule:
        """Parse ``host``, ``host:port``, ``*.domain[:port]``, ``1.2.3.4[:port]`` or ``[v6][:port]``."""
        text = entry.strip().lower()
        if not text or any(c in text for c in "/@?#"):
            raise ValueError(f"webhooks.allowed_hosts entry {entry!r}: write a host name, optionally with "
                             ":port, without scheme or path (for example hooks.example.com or *.example.com)")
        wildcard = text.startswith("*.")
        rest = text.removeprefix("*.")
        port = None
        if re.search(r":\d+$", rest) and (rest.startswith("[") or rest.count(":") == 1):
            rest, _, digits = rest.rpartition(":")
            port = int(digits)
        if "*" in rest or (rest.count(":") > 1 and not rest.startswith("[")):
            raise ValueError(f"webhooks.allowed_hosts entry {entry!r}: wildcards only as a leading '*.', and "
                             "IPv6 addresses in brackets ([2001:db8::1])")
        try:
            target = parse_url(f"http://{rest}/")
        except RefusedError as exc:
            raise ValueError(f"webhooks.allowed_hosts entry {entry!r}: {exc.why}") from None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"webhooks.allowed_hosts entry {entry!r}: port {port} is out of range")
        if wildcard and (target.ip is not None or "." not in target.host):
            raise ValueError(f"webhooks.allowed_hosts entry {entry!r}: a wildcard needs a domain of at least "
                             "two labels (*.example.com)")
        return cls(entry=entry, host=target.host, wildcard=wildcard, port=port, ip=target.ip)

    def matches(self, target: Target) -> bool:
        """Whether the rule lets ``target`` through (host and port)."""
        if target.port != (self.port or DEFAULT_PORTS[target.scheme]):
            return False
        return target.host.endswith(f".{self.host}") if self.wildcard else target.host == self.host


def parse_network(text: str) -> Network:
    """One ``webhooks.allow_private`` range; refuses nonsense and ranges wide enough to open everything."""
    try:
        net = ip_network(text.strip(), strict=False)
    except ValueError:
        raise ValueError(f"webhooks.allow_private entry {text!r} is not an address range like 10.20.0.0/16") from None
    if net.prefixlen < (8 if net.version == 4 else 7):
        raise ValueError(f"webhooks.allow_private entry {text!r} is too broad: name the receivers' own range")
    return net


def classify(ip: IPAddress) -> tuple[str, str] | None:
    """(kind, plain words) when ``ip`` is not a public address, None when it is."""
    if isinstance(ip, IPv6Address):
        ip = IPv6Address(int(ip))  # drop a zone id
        if ip.ipv4_mapped is not None:
            return _embedded("an IPv4-mapped form of", ip.ipv4_mapped)
    if ip in METADATA_ADDRESSES:
        return "metadata", KINDS["metadata"]
    if isinstance(ip, IPv4Address):
        kind = next((k for net, k in _V4 if ip in net), None) or (None if ip.is_global else "reserved")
        return (kind, KINDS[kind]) if kind else None
    for how, inner in _embedded_v4(ip):
        if (found := _embedded(how, inner)) is not None:
            return found
    kind = next((k for net, k in _V6 if ip in net), None) or (None if ip in _GLOBAL_UNICAST else "reserved")
    return (kind, KINDS[kind]) if kind else None


def _embedded(how: str, inner: IPv4Address) -> tuple[str, str] | None:
    found = classify(inner)
    return None if found is None else (found[0], f"{how} {inner}, {found[1]}")


def _embedded_v4(ip: IPv6Address) -> list[tuple[str, IPv4Address]]:
    found = []
    if ip in _V4_COMPAT and int(ip) > 1:
        found.append(("an IPv4-compatible form of", IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip in _NAT64:
        found.append(("a NAT64 address embedding", IPv4Address(int(ip) & 0xFFFFFFFF)))
    if ip.sixtofour is not None:
        found.append(("a 6to4 address embedding", ip.sixtofour))
    if ip.teredo is not None:
        found += [("a Teredo address embedding", ip.teredo[0]), ("a Teredo address embedding", ip.teredo[1])]
    return found


def refusal(ip: IPAddress, allow_private: Sequence[Network]) -> tuple[str, str] | None:
    """Why ``ip`` may not be connected to, or None; ``allow_private`` opens all but metadata services."""
    found = classify(ip)
    if found is None or found[0] == "metadata":
        return found
    plain = connect_address(ip)
    return None if any(plain in net for net in allow_private) else found


def connect_address(ip: IPAddress) -> IPAddress:
    """The address to dial: an IPv4-mapped IPv6 address is the IPv4 address itself."""
    mapped = ip.ipv4_mapped if isinstance(ip, IPv6Address) else None
    return mapped if mapped is not None else ip


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo): every address of ``host``, in its order."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))
