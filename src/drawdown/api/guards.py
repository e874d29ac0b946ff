"""ASGI middleware around the whole app: the last-resort 500, the body size limit, and
URLs free of NUL.

The last resort sits inside Starlette's ServerErrorMiddleware and answers any unexpected
error itself, so that middleware never re-raises to the server (uvicorn drops a keep-alive
connection, unannounced, when the app raises after answering). A 500 also says
`Connection: close`: after a bug nothing about the connection is trusted.
"""

import logging
from collections.abc import Mapping

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from drawdown.api.errors import domain_error_response, error_response
from drawdown.errors import BadRequest, TooLarge

log = logging.getLogger("drawdown")

MAX_BODY_BYTES = 1024 * 1024
# /ingestBatch takes up to 1,000 events: 16 KiB each on average (docs/usage.md, "Body size")
MAX_BATCH_BODY_BYTES = 16 * 1024 * 1024


class LastResort:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as error:
            if started:  # half an answer is out: only closing the connection tells the caller
                raise
            log.exception("unhandled error", exc_info=error)
            response = error_response(
                500, "internal error; the request was not applied", {"Connection": "close"}
            )
            await response(scope, receive, send)


class NulFreeUrl:
    """NUL can be in no id, token or filter (PostgreSQL cannot even compare text with it), so
    a URL carrying one is refused with a 400 before any route sees it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and (
            "\x00" in scope["path"] or b"%00" in scope.get("query_string", b"")
        ):
            error = BadRequest("the URL must not contain the NUL character (%00)")
            await domain_error_response(error)(scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimit:
    """Bodies over `max_bytes` (or over the limit `per_path` gives their path, with the advice
    it gives) get a 413 before anything parses them, whether they announce their length or
    stream it in chunks. The body is read here, whole, and handed on."""

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int = MAX_BODY_BYTES,
        per_path: Mapping[str, tuple[int, str]] | None = None,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.per_path = dict(per_path or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        max_bytes, advice = self.per_path.get(scope["path"], (self.max_bytes, "send less"))
        too_large = TooLarge(
            f"the request body is larger than {max_bytes} bytes; {advice} per request"
        )
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_bytes:
            await self._refuse(too_large, scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > max_bytes:
                await self._refuse(too_large, scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _refuse(error: TooLarge, scope: Scope, receive: Receive, send: Send) -> None:
        # the rest of the body is never read, so the connection cannot carry another request
        response = domain_error_response(error)
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
