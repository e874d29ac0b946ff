"""The connections webhook delivery opens: each resolves the endpoint's host once, vets every
address it got (services/url_rules.py), and connects to those addresses only. httpx would
otherwise resolve the name again itself, and a name whose second answer is a private address
(DNS rebinding) would pass the check and reach the private address. The request is unchanged:
its `Host` header and its TLS server name (SNI, and the certificate's check) are still the
endpoint's host, since httpcore takes them from the URL, not from the socket."""

import asyncio
import typing

import httpcore
import httpx

from drawdown.services import url_rules
from drawdown.services.webhook_settings import WebhookSettings


class VettedBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network backend, connecting to vetted addresses only."""

    def __init__(self, settings: WebhookSettings) -> None:
        self.settings = settings
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            async with asyncio.timeout(timeout):
                target = url_rules.Target(host, port)
                addresses = await url_rules.vetted_addresses(target, self.settings)
                failed: httpcore.ConnectError | None = None
                for address in addresses:
                    try:
                        return await self._inner.connect_tcp(
                            address, port, None, local_address, socket_options
                        )
                    except httpcore.ConnectError as error:
                        failed = error  # the next address, as a resolver's caller would
                raise failed or httpcore.ConnectError(f"'{host}' has no address")
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"no connection within {timeout:g} s") from None

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: typing.Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.ConnectError("webhooks are not sent over unix sockets")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def transport(settings: WebhookSettings, limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's own transport (TLS verified, no proxy from the environment), on a connection
    pool whose connections go through `VettedBackend`."""
    # one TLS context (loading the CA bundle takes a tenth of a second), for both pools
    tls = httpx.create_ssl_context(trust_env=False)
    made = httpx.AsyncHTTPTransport(verify=tls, limits=limits, trust_env=False)
    made._pool = httpcore.AsyncConnectionPool(
        ssl_context=tls,
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=VettedBackend(settings),
    )
    return made
