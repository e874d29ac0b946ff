"""The appliers' seats (PostgreSQL; docs/usage.md, "How it runs"): each applier holds one seat,
a session advisory lock on a connection of its own, so the seats held are exactly the live
appliers of this database, and a crashed one's seat is free the moment its session ends. An
applier also holds its seat's "behind" lock while its accounts' events wait too long, so the
others can hold their answers too (backpressure is shared, not per process)."""

from dataclasses import dataclass

import asyncpg

# the two int4 keys of the advisory locks: (class, seat). 'draw' in ASCII, and the next.
SEAT_CLASS = 0x64726177
BEHIND_CLASS = SEAT_CLASS + 1
MAX_SEATS = 256

_TRY = "SELECT pg_try_advisory_lock($1::int, $2::int)"
_RELEASE = "SELECT pg_advisory_unlock($1::int, $2::int)"
# the seats and behind-marks held on this database (the locks of other databases on the same
# server are other deployments'); a lock taken with two int4 keys has objsubid 2
_HELD = """
SELECT classid::bigint AS class, objid::bigint AS seat FROM pg_locks
WHERE locktype = 'advisory' AND granted AND objsubid = 2
  AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND classid::bigint IN ($1::bigint, $2::bigint)
"""


@dataclass(frozen=True)
class Held:
    seats: tuple[int, ...]  # in order
    behind: frozenset[int]  # seats whose applier is behind


async def take_seat(conn: asyncpg.Connection) -> int | None:
    """The lowest free seat, now held by this session; None when all are taken."""
    for seat in range(MAX_SEATS):
        if await conn.fetchval(_TRY, SEAT_CLASS, seat):
            return seat
    return None


async def mark_behind(conn: asyncpg.Connection, seat: int, behind: bool) -> None:
    """Hold (or let go of) the seat's behind-mark. The caller tracks whether it holds it:
    session advisory locks stack, so each mark must be let go of exactly once."""
    await conn.fetchval(_TRY if behind else _RELEASE, BEHIND_CLASS, seat)


async def held(conn: asyncpg.Connection) -> Held:
    rows = await conn.fetch(_HELD, SEAT_CLASS, BEHIND_CLASS)
    seats = sorted(row["seat"] for row in rows if row["class"] == SEAT_CLASS)
    behind = frozenset(row["seat"] for row in rows if row["class"] == BEHIND_CLASS)
    return Held(tuple(seats), behind)
