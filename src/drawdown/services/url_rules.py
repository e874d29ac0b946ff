"""Which URLs webhooks may be sent to (docs/webhooks.md): https (http only when allowed), no
credentials, a host that resolves only to public addresses (loopback, private, link-local,
shared, multicast, reserved and unspecified ranges refused unless allowed). Checked when an
endpoint is registered or changed, and again by every connection delivery opens, which goes to
the addresses that check vetted (services/pinned.py), since what a name resolves to can
change."""

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from drawdown.services.webhook_settings import WebhookSettings

MAX_URL_LENGTH = 2000


class RefusedUrl(ValueError):
    """A URL webhooks may not be sent to; the message says why, in words a caller can act on."""


@dataclass(frozen=True)
class Target:
    host: str
    port: int


def check_form(url: str, settings: WebhookSettings) -> Target:
    """The URL's own form: scheme, host, no credentials, length."""
    if len(url) > MAX_URL_LENGTH:
        raise RefusedUrl(f"url must be at most {MAX_URL_LENGTH} characters")
    if any(ch.isspace() or ord(ch) < 32 for ch in url):
        raise RefusedUrl("url must not contain spaces or control characters")
    try:
        parts: SplitResult = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise RefusedUrl(f"url is not a valid URL: {error}") from None
    allowed = ("https", "http") if settings.allow_http else ("https",)
    if parts.scheme not in allowed:
        words = "https" if not settings.allow_http else "https or http"
        raise RefusedUrl(f"url must start with {words}://, not '{parts.scheme or url}'")
    if not parts.hostname:
        raise RefusedUrl("url must name a host")
    if parts.username is not None or parts.password is not None:
        raise RefusedUrl("url must not hold a user name or password")
    default = 443 if parts.scheme == "https" else 80
    return Target(parts.hostname, port or default)


# IPv6 ranges that carry an IPv4 address in their last 32 bits, which is what a packet to
# them reaches: NAT64 (RFC 6052) and the deprecated IPv4-compatible form
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_IPV4_COMPATIBLE = ipaddress.ip_network("::/96")


def _carried_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one stands for (mapped, 6to4, NAT64, compatible), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in _NAT64 or (ip in _IPV4_COMPATIBLE and int(ip) > 1):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def _refusal(address: str) -> str | None:
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.is_site_local:
            return "site-local"
        ip = _carried_ipv4(ip) or ip
    if ip.is_loopback:
        return "loopback"
    if ip.is_link_local:
        return "link-local"
    if ip.is_multicast:
        return "multicast"
    if ip.is_unspecified:
        return "unspecified"
    if ip.is_private:
        return "private"
    if ip.is_reserved or not ip.is_global:
        return "reserved"
    return None


async def vetted_addresses(target: Target, settings: WebhookSettings) -> list[str]:
    """The host's addresses, in the resolver's order, once each; every one must be public
    (unless private ones are allowed), else none is returned. Delivery connects to these and
    only these (services/pinned.py), so the name is resolved once per connection: a second
    answer (DNS rebinding) never reaches a socket."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedUrl(f"the host '{target.host}' could not be resolved: {error}") from None
    addresses = list(dict.fromkeys(str(address[0]) for *_, address in found))
    if not settings.allow_private:
        for address in addresses:
            why = _refusal(address)
            if why is not None:
                raise RefusedUrl(
                    f"the host '{target.host}' resolves to {address}, {_article(why)} {why} "
                    "address; webhooks go to public addresses only "
                    "(DRAWDOWN_WEBHOOK_ALLOW_PRIVATE=1 allows others)"
                )
    return addresses


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


async def check_addresses(target: Target, settings: WebhookSettings) -> None:
    """Every address the host resolves to must be public (unless private ones are allowed)."""
    await vetted_addresses(target, settings)


async def check(url: str, settings: WebhookSettings) -> None:
    await check_addresses(check_form(url, settings), settings)
