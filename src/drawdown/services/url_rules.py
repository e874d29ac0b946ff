"""Which URLs webhooks may be sent to (docs/webhooks.md): https (http only when allowed), no
credentials, a host that resolves only to public addresses (loopback, private, link-local,
shared, multicast, reserved and unspecified ranges refused unless allowed). Checked when an
endpoint is registered or changed, and again before every attempt, since what a name resolves
to can change."""

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


def _refusal(address: str) -> str | None:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
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
    if not ip.is_global:
        return "reserved"
    return None


async def check_addresses(target: Target, settings: WebhookSettings) -> None:
    """Every address the host resolves to must be public (unless private ones are allowed)."""
    loop = asyncio.get_running_loop()
    try:
        found = await loop.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        raise RefusedUrl(f"the host '{target.host}' could not be resolved: {error}") from None
    if settings.allow_private:
        return
    for *_, address in found:
        why = _refusal(str(address[0]))
        if why is not None:
            raise RefusedUrl(
                f"the host '{target.host}' resolves to {address[0]}, a {why} address; webhooks "
                "go to public addresses only (DRAWDOWN_WEBHOOK_ALLOW_PRIVATE=1 allows others)"
            )


async def check(url: str, settings: WebhookSettings) -> None:
    await check_addresses(check_form(url, settings), settings)
