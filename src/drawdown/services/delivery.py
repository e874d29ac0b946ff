"""Webhook delivery (docs/webhooks.md, "Delivery"): a background task in every server process.

It claims due deliveries in a short transaction (store/deliveries.py), and only after that
commits sends each one with httpx, signed with the `standardwebhooks` package; the outcome is
written in a second short transaction. No transaction is open and no request waits while a
receiver answers. The process's own writes wake it as soon as they commit events
(`Coalescer.on_events`); it also polls for the rest: other processes' events, retries, claims
a dead process left.
"""

import asyncio
import contextlib
import functools
import logging
import os
import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import msgspec
from sqlalchemy.ext.asyncio import AsyncConnection
from standardwebhooks.webhooks import Webhook

from drawdown import __version__
from drawdown.errors import Unavailable
from drawdown.ledger.shapes import timestamp
from drawdown.services import pinned, url_rules
from drawdown.services.webhook_settings import WebhookSettings
from drawdown.store import deliveries
from drawdown.store.database import Database
from drawdown.store.deliveries import Claimed, Outcome, Recorded

log = logging.getLogger("drawdown.delivery")

_encoder = msgspec.json.Encoder()
USER_AGENT = f"drawdown-webhooks/{__version__}"


def event_body(
    event_id: str, event_type: str, occurred_at: datetime, actor: str, data: str
) -> bytes:
    """The event as `GET /events` shows it and a webhook carries it."""
    return _encoder.encode(
        {
            "id": event_id,
            "type": event_type,
            "timestamp": timestamp(occurred_at),
            "actor": actor,
            "data": msgspec.Raw(data.encode()),
        }
    )


def signed_headers(secrets: tuple[str, ...], event_id: str, body: bytes) -> dict[str, str]:
    """Standard Webhooks headers; one signature per secret that still signs."""
    sent_at = int(time.time())
    at = datetime.fromtimestamp(sent_at, UTC)
    text = body.decode()
    signatures = " ".join(Webhook(secret).sign(event_id, at, text) for secret in secrets)
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": signatures,
        "content-type": "application/json",
        "user-agent": USER_AGENT,
    }


# the longest wait between rounds while something keeps failing
MAX_BACKOFF_SECONDS = 30.0


def backoff_seconds(troubled: int, poll_seconds: float) -> float:
    """The wait before the next round after `troubled` failed ones in a row: doubling from the
    poll interval, at most MAX_BACKOFF_SECONDS."""
    return min(poll_seconds * 2.0 ** min(troubled, 32), MAX_BACKOFF_SECONDS)


def _wall_clock() -> datetime:
    return datetime.now(UTC)


class Deliverer:
    def __init__(self, db: Database, settings: WebhookSettings) -> None:
        self.db = db
        self.settings = settings
        self.claimer = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._wake = asyncio.Event()
        self._sending: set[asyncio.Task[None]] = set()
        self._client: httpx.AsyncClient | None = None
        # outcomes waiting to be written, and whether a transaction is writing them
        self._outcomes: list[tuple[Recorded, asyncio.Future[None]]] = []
        self._unwritten: set[asyncio.Future[None]] = set()
        self._recording = False
        # rounds or outcome writes that failed in a row: the loop waits longer after each
        self.troubled = 0
        # for tests, the bench and the log: attempts made, delivered, and those that failed
        # through a fault of drawdown's (an exception no receiver caused)
        self.attempts = 0
        self.delivered = 0
        self.faults = 0

    def wake(self) -> None:
        """Look for due deliveries now (called after a commit that recorded events)."""
        self._wake.set()

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            limits = httpx.Limits(max_connections=self.settings.concurrency)
            self._client = httpx.AsyncClient(
                transport=pinned.transport(self.settings, limits),
                timeout=self.settings.timeout_seconds,
                follow_redirects=False,
                trust_env=False,
            )
        return self._client

    async def run(self) -> None:
        while True:
            if self.troubled:
                # a fault that repeats is logged at a falling rate, never in a tight loop
                await asyncio.sleep(backoff_seconds(self.troubled, self.settings.poll_seconds))
            else:
                # asyncio.timeout, not wait_for, which on Python 3.11 can swallow the
                # cancellation that stops this loop when it arrives as the wake does
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.settings.poll_seconds):
                        await self._wake.wait()
            if self._wake.is_set():
                # what commits or finishes sending meanwhile is taken by the same claim
                await asyncio.sleep(self.settings.gather_seconds)
            self._wake.clear()
            try:
                await self._claim_and_start()
                self.troubled = 0
            except Unavailable as error:
                self.troubled += 1
                log.warning("webhook delivery skipped this round: %s", error.message)
            except Exception:
                self.troubled += 1
                log.exception(
                    "webhook delivery failed to claim deliveries (%d rounds in a row)",
                    self.troubled,
                )

    async def drain(self) -> int:
        """Send everything due now and wait for the outcomes, until nothing is due (tests);
        returns how many attempts were made."""
        before = self.attempts
        while True:
            started = await self._claim_and_start()
            while self._sending or self._unwritten:
                await asyncio.gather(*self._sending, *self._unwritten, return_exceptions=True)
            if not started:
                return self.attempts - before

    async def stop(self) -> None:
        for task in list(self._sending):
            task.cancel()
        for task in list(self._sending):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _claim_and_start(self) -> int:
        """Claim as many due deliveries as there is room for, and start sending them."""
        started = 0
        while True:
            room = self.settings.concurrency - len(self._sending)
            if room <= 0:
                return started
            async with self.db.read() as conn:
                if not await deliveries.any_due(conn, _wall_clock()):
                    return started
            claimed = await self.db.transact(functools.partial(self._claim, limit=room))
            for delivery in claimed:
                task = asyncio.get_running_loop().create_task(self._deliver(delivery))
                self._sending.add(task)
                task.add_done_callback(self._sent)
            started += len(claimed)
            if len(claimed) < room:
                return started

    async def _claim(self, conn: AsyncConnection, limit: int) -> list[Claimed]:
        now = _wall_clock()
        until = now + timedelta(seconds=self.settings.claim_seconds)
        return await deliveries.claim(conn, now, until, self.claimer, limit)

    def _sent(self, task: asyncio.Task[None]) -> None:
        self._sending.discard(task)
        self._wake.set()  # room for more

    async def _deliver(self, delivery: Claimed) -> None:
        at = _wall_clock()
        try:
            outcome = await self._attempt(delivery)
        except Exception as fault:
            # drawdown's fault, not the receiver's: a failed attempt like any other, so the
            # delivery follows the schedule and ends FAILED instead of being claimed forever
            self.faults += 1
            log.exception(
                "webhook attempt of delivery %d failed in drawdown", delivery.delivery_seq
            )
            error = f"not sent: drawdown failed ({type(fault).__name__}); see the server log"
            outcome = Outcome(delivery.delivery_seq, delivery.endpoint_seq, at, None, 0, error)
        self.attempts += 1
        if outcome.delivered:
            self.delivered += 1
        schedule = self.settings.retry_schedule
        made = delivery.attempts + 1
        retry_after = schedule[made - 1] if made <= len(schedule) else None
        self._record(Recorded(outcome, retry_after))

    def _record(self, recorded: Recorded) -> None:
        """Outcomes are written many to a transaction: those that finish while one is being
        written go together in the next. The attempt's room is free at once (its claim holds
        until the outcome is written), so a slow commit never slows sending."""
        done = asyncio.get_running_loop().create_future()
        self._outcomes.append((recorded, done))
        self._unwritten.add(done)
        done.add_done_callback(self._unwritten.discard)
        if not self._recording:
            self._recording = True
            asyncio.get_running_loop().create_task(self._write_outcomes())

    async def _write_outcomes(self) -> None:
        disable_after = timedelta(seconds=self.settings.disable_after_seconds)
        try:
            while self._outcomes:
                batch, self._outcomes = self._outcomes, []
                recorded = [item for item, _ in batch]
                try:
                    disabled = await self.db.transact(
                        functools.partial(
                            deliveries.record_all,
                            recorded=recorded,
                            claimer=self.claimer,
                            disable_after=disable_after,
                        )
                    )
                    for endpoint_seq in disabled:
                        log.warning("webhook endpoint %d disabled after failing", endpoint_seq)
                    self.troubled = 0
                except Exception:
                    # the claims end and the deliveries are sent again: at least once; the
                    # loop backs off meanwhile, so a fault here does not resend in a tight loop
                    self.troubled += 1
                    log.exception("could not record %d webhook attempts", len(batch))
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)
        finally:
            self._recording = False

    async def _attempt(self, delivery: Claimed) -> Outcome:
        client = self._http()  # made once; its TLS set-up is not the attempt's time
        at = _wall_clock()
        began = time.monotonic()
        status: int | None = None
        error: str | None
        try:
            # the host's addresses are vetted by the connection itself (services/pinned.py)
            url_rules.check_form(delivery.url, self.settings)
            body = event_body(
                delivery.event_id,
                delivery.event_type,
                delivery.occurred_at,
                delivery.actor,
                delivery.data,
            )
            headers = signed_headers(delivery.secrets, delivery.event_id, body)
            response = await client.post(delivery.url, content=body, headers=headers)
            status = response.status_code
            error = None if 200 <= status < 300 else f"the endpoint answered {status}"
        except url_rules.RefusedUrl as refused:
            error = f"not sent: {refused}"
        except httpx.TimeoutException:
            error = f"no answer within {self.settings.timeout_seconds:g} s"
        except httpx.HTTPError as failed:
            error = f"{type(failed).__name__}: {failed}" if str(failed) else type(failed).__name__
        duration = int((time.monotonic() - began) * 1000)
        return Outcome(
            delivery.delivery_seq,
            delivery.endpoint_seq,
            at,
            status,
            duration,
            error and error[:500],
        )
