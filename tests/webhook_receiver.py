"""A real webhook receiver on loopback for the tests: a threaded HTTP server that verifies
every delivery's signature with the `standardwebhooks` package and keeps what it received.

It answers what `answer(webhook_id, attempt)` says (default 204), after `delay` seconds; a
delivery whose signature does not verify is answered 400 and counted in `unverified`."""

import json
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError


@dataclass(frozen=True)
class Received:
    webhook_id: str
    timestamp: str
    signature: str
    event: dict[str, Any]  # the body, numbers read exactly
    at: float  # time.time() when it arrived
    answered: int
    host: str = ""  # the request's Host header


@dataclass
class Receiver:
    url: str
    secrets: list[str] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    unverified: list[str] = field(default_factory=list)
    answer: Callable[[str, int], int] = lambda _id, _attempt: 204
    delay: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)
    attempts: dict[str, int] = field(default_factory=dict)

    def verify(self, body: bytes, headers: dict[str, str]) -> bool:
        for secret in self.secrets:
            try:
                Webhook(secret).verify(body, headers, json_parse=False)
                return True
            except WebhookVerificationError:
                continue
        return False

    def delivered(self) -> list[Received]:
        """What was answered with a 2xx."""
        with self.lock:
            return [r for r in self.received if 200 <= r.answered < 300]

    def types(self) -> list[str]:
        return [r.event["type"] for r in self.delivered()]

    def of_type(self, kind: str) -> list[dict[str, Any]]:
        return [r.event for r in self.delivered() if r.event["type"] == kind]

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        """Until `count` deliveries were answered with a 2xx (or the time is up)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.delivered()
            if len(found) >= count:
                return found
            time.sleep(0.02)
        return self.delivered()


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length)
            if len(body) < length:
                return  # the sender died mid-request (kill -9): nothing was delivered
            headers = {key.lower(): value for key, value in self.headers.items()}
            webhook_id = headers.get("webhook-id", "")
            arrived = time.time()
            if not receiver.verify(body, headers):
                with receiver.lock:
                    receiver.unverified.append(webhook_id)
                self._reply(400)
                return
            with receiver.lock:
                attempt = receiver.attempts.get(webhook_id, 0) + 1
                receiver.attempts[webhook_id] = attempt
            if receiver.delay:
                time.sleep(receiver.delay)
            status = receiver.answer(webhook_id, attempt)
            event = json.loads(body, parse_float=Decimal)
            with receiver.lock:
                receiver.received.append(
                    Received(
                        webhook_id,
                        headers["webhook-timestamp"],
                        headers["webhook-signature"],
                        event,
                        arrived,
                        status,
                        headers.get("host", ""),
                    )
                )
            self._reply(status)

        def _reply(self, status: int) -> None:
            self.send_response(status)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


class _Server(ThreadingHTTPServer):
    # the default backlog (5) refuses connections when a deliverer sends 32 at once
    request_queue_size = 256


@contextmanager
def receiver(path: str = "/hooks", tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    """With `tls`, a server's TLS context, it answers https only."""
    server = _Server(("127.0.0.1", 0), _handler(Receiver("")))
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "http" if tls is None else "https"
    got = Receiver(f"{scheme}://127.0.0.1:{server.server_address[1]}{path}")
    server.RequestHandlerClass = _handler(got)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got
    finally:
        server.shutdown()
        server.server_close()
