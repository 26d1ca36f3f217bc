"""Which subscriber URLs nps-sync may call: https, resolving only to public addresses.

Checked when a subscription is registered and again before every delivery, on the addresses
the delivery then connects to (delivery.py pins the connection to a vetted address, so a DNS
answer that changes between the check and the connection - DNS rebinding - cannot steer it).
Local mode (ALLOW_LOCAL_SUBSCRIBERS) also allows loopback receivers, http or https.
"""

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from nps_sync.core.errors import BlockedUrl

MAX_URL_LENGTH = 2048
# Public-looking addresses that still reach a provider's own services.
METADATA = {
    ipaddress.ip_address("169.254.169.254"),  # AWS, GCP, Azure instance metadata
    ipaddress.ip_address("fd00:ec2::254"),  # AWS instance metadata over IPv6
    ipaddress.ip_address("169.254.170.2"),  # ECS task metadata
    ipaddress.ip_address("100.100.100.200"),  # Alibaba Cloud metadata
    ipaddress.ip_address("168.63.129.16"),  # Azure wire server
}
NAT64 = ipaddress.ip_network("64:ff9b::/96")

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str  # https, or http for a local receiver
    host: str  # as written (the Host header, TLS SNI and the certificate's name)
    port: int
    path: str  # path and query
    addresses: tuple[str, ...]  # every address the name resolved to, all vetted


def resolve(host: str, port: int) -> list[str]:
    """Every address the name resolves to (A and AAAA)."""
    try:
        answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise BlockedUrl(f"url: host {host!r} does not resolve") from error
    return list(dict.fromkeys(str(answer[4][0]).split("%", 1)[0] for answer in answers))


def _embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def refusal(address: Address, allow_loopback: bool = False) -> str | None:
    """Why nps-sync must not connect to this address (None: it may)."""
    embedded = _embedded_ipv4(address)
    if embedded is not None:
        reason = refusal(embedded, allow_loopback)
        return f"{reason} (embedded in {address})" if reason else None
    if address in METADATA:
        return f"{address} is a cloud metadata address"
    if address.is_loopback:
        return None if allow_loopback else f"{address} is a loopback address"
    for name in ("link_local", "multicast", "private", "reserved", "unspecified"):
        if getattr(address, f"is_{name}"):
            return f"{address} is a {name.replace('_', '-')} address"
    if not address.is_global:
        return f"{address} is not a public address"
    return None


def vet_addresses(addresses: Iterable[str], allow_loopback: bool = False) -> tuple[str, ...]:
    """All must pass: one bad answer among several refuses the name."""
    vetted = tuple(addresses)
    if not vetted:
        raise BlockedUrl("url: host has no address")
    for text in vetted:
        reason = refusal(ipaddress.ip_address(text), allow_loopback)
        if reason:
            raise BlockedUrl(f"url: {reason}")
    return vetted


def vet(url: str, allow_local: bool = False, resolver: Resolver = resolve) -> Target:
    """Parse, resolve and check a subscriber URL; BlockedUrl says why it is refused."""
    if len(url) > MAX_URL_LENGTH:
        raise BlockedUrl(f"url: longer than {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise BlockedUrl("url: not a valid URL") from error
    host = (parts.hostname or "").rstrip(".").lower()
    if parts.scheme not in ("https", "http") or not host:
        raise BlockedUrl("url: must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise BlockedUrl("url: must not carry credentials")
    if parts.fragment:
        raise BlockedUrl("url: must not have a fragment")
    port = port or (443 if parts.scheme == "https" else 80)
    try:
        literal: Address | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    addresses = [str(literal)] if literal is not None else resolver(host, port)
    vetted = vet_addresses(addresses, allow_loopback=allow_local)
    if parts.scheme == "http":
        loopback = all(ipaddress.ip_address(a).is_loopback for a in vetted)
        if not (allow_local and loopback):
            raise BlockedUrl("url: must be an https URL")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(url, parts.scheme, host, port, path, vetted)
