"""Claiming due deliveries and recording what an attempt did (services/delivery.py), on both
engines through SQLAlchemy.

A claim is short: it picks due deliveries of enabled endpoints (PostgreSQL: `FOR UPDATE SKIP
LOCKED`, so two processes never pick the same row; SQLite: its one writer), names the process
that sends them and pushes `next_attempt_at` to the claim's end, and commits. Nothing is sent
inside it. A process that dies holding a claim leaves the delivery due again when the claim
ends, for any process to send with the same `webhook-id`.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from drawdown.store.tables import events, webhook_attempts, webhook_deliveries, webhook_endpoints


@dataclass(frozen=True)
class Claimed:
    delivery_seq: int
    endpoint_seq: int
    url: str
    secrets: tuple[str, ...]  # the secret, and the previous one while it still signs
    event_id: str
    event_type: str
    occurred_at: datetime
    actor: str
    data: str  # the event's data, JSON text
    attempts: int  # made before this one


@dataclass(frozen=True)
class Outcome:
    delivery_seq: int
    endpoint_seq: int
    at: datetime
    status_code: int | None
    duration_ms: int
    error: str | None  # None: delivered

    @property
    def delivered(self) -> bool:
        return self.error is None


async def any_due(conn: AsyncConnection, now: datetime) -> bool:
    """Whether a claim would find anything (a read: an idle poll takes no write lock)."""
    d = webhook_deliveries.c
    query = select(d.seq).where(d.status == "PENDING", d.next_attempt_at <= now).limit(1)
    return (await conn.execute(query)).first() is not None


async def claim(
    conn: AsyncConnection, now: datetime, until: datetime, claimer: str, limit: int
) -> list[Claimed]:
    d, w, e = webhook_deliveries.c, webhook_endpoints.c, events.c
    due = (
        select(d.seq)
        .join(webhook_endpoints, w.seq == d.endpoint_seq)
        .where(d.status == "PENDING", d.next_attempt_at <= now, w.status == "ENABLED")
        .order_by(d.next_attempt_at)
        .limit(limit)
        .with_for_update(skip_locked=True, of=webhook_deliveries)
    )
    seqs = list((await conn.execute(due)).scalars())
    if not seqs:
        return []
    await conn.execute(
        update(webhook_deliveries)
        .where(d.seq.in_(seqs))
        .values(claimed_by=claimer, claimed_until=until, next_attempt_at=until)
    )
    rows = await conn.execute(
        select(
            d.seq,
            d.endpoint_seq,
            d.attempts,
            w.url,
            w.secret,
            w.previous_secret,
            w.previous_secret_until,
            e.id,
            e.type,
            e.occurred_at,
            e.actor,
            e.data,
        )
        .join(webhook_endpoints, w.seq == d.endpoint_seq)
        .join(events, e.seq == d.event_seq)
        .where(d.seq.in_(seqs))
        .order_by(d.seq)
    )
    claimed = []
    for row in rows:
        signing = [row.secret]
        if row.previous_secret and row.previous_secret_until and row.previous_secret_until > now:
            signing.append(row.previous_secret)
        claimed.append(
            Claimed(
                row.seq,
                row.endpoint_seq,
                row.url,
                tuple(signing),
                row.id,
                row.type,
                row.occurred_at,
                row.actor,
                row.data,
                row.attempts,
            )
        )
    return claimed


@dataclass(frozen=True)
class Recorded:
    """An attempt's outcome, and when the delivery is due again if it failed (None: FAILED,
    no retry left)."""

    outcome: Outcome
    retry_after: float | None


# The fate of one delivery, if its claim is still this process's (a claim that ended and was
# taken by another process is that process's to settle).
_FATE = (
    update(webhook_deliveries)
    .where(
        webhook_deliveries.c.seq == bindparam("b_seq"),
        webhook_deliveries.c.claimed_by == bindparam("b_claimer"),
        webhook_deliveries.c.status == "PENDING",
    )
    .values(
        status=bindparam("b_status"),
        next_attempt_at=bindparam("b_next"),
        finished_at=bindparam("b_finished"),
        attempts=webhook_deliveries.c.attempts + 1,
        claimed_by=None,
        claimed_until=None,
    )
)


async def record_all(
    conn: AsyncConnection, recorded: list[Recorded], claimer: str, disable_after: timedelta
) -> list[int]:
    """Write many attempts in one transaction (one commit for many deliveries): each attempt,
    each delivery's fate (done, due again after its `retry_after`, or FAILED), and each
    endpoint's failure streak. Returns the endpoints this disabled."""
    await conn.execute(
        webhook_attempts.insert(),
        [
            {
                "delivery_seq": r.outcome.delivery_seq,
                "attempted_at": r.outcome.at,
                "status_code": r.outcome.status_code,
                "duration_ms": r.outcome.duration_ms,
                "error": r.outcome.error,
            }
            for r in recorded
        ],
    )
    await conn.execute(_FATE, [_fate(r, claimer) for r in recorded])
    by_endpoint: dict[int, list[Outcome]] = {}
    for r in recorded:
        by_endpoint.setdefault(r.outcome.endpoint_seq, []).append(r.outcome)
    disabled = []
    for endpoint_seq, outcomes in sorted(by_endpoint.items()):
        if await _streak(conn, endpoint_seq, outcomes, disable_after):
            disabled.append(endpoint_seq)
    return disabled


def _fate(recorded: Recorded, claimer: str) -> dict[str, Any]:
    outcome = recorded.outcome
    if outcome.delivered:
        status, following, finished = "SUCCEEDED", None, outcome.at
    elif recorded.retry_after is None:
        status, following, finished = "FAILED", None, outcome.at
    else:
        status, finished = "PENDING", None
        following = outcome.at + timedelta(seconds=recorded.retry_after)
    return {
        "b_seq": outcome.delivery_seq,
        "b_claimer": claimer,
        "b_status": status,
        "b_next": following,
        "b_finished": finished,
    }


async def _streak(
    conn: AsyncConnection, endpoint_seq: int, outcomes: list[Outcome], disable_after: timedelta
) -> bool:
    """A success ends the endpoint's failure streak; failures after the last success start it
    (if none runs) and, once it has run `disable_after`, disable the endpoint, saying why.
    True when this disabled it."""
    w = webhook_endpoints.c
    endpoint = w.seq == endpoint_seq
    ordered = sorted(outcomes, key=lambda o: o.at)
    successes = [n for n, o in enumerate(ordered) if o.delivered]
    failures = ordered[successes[-1] + 1 :] if successes else ordered
    if successes:
        await conn.execute(update(webhook_endpoints).where(endpoint).values(failing_since=None))
    if not failures:
        return False
    await conn.execute(
        update(webhook_endpoints)
        .where(endpoint, w.failing_since.is_(None))
        .values(failing_since=failures[0].at)
    )
    last = failures[-1]
    since = (await conn.execute(select(w.failing_since).where(endpoint))).scalar()
    if since is None or last.at - since < disable_after:
        return False
    reason = (
        f"every delivery attempt failed from {since.isoformat()} to {last.at.isoformat()}; "
        f"the last: {last.error}"
    )[:1000]
    disabled = await conn.execute(
        update(webhook_endpoints)
        .where(endpoint, w.status == "ENABLED")
        .values(status="DISABLED", disabled_reason=reason, updated_at=last.at)
    )
    return bool(disabled.rowcount)
